// The live half of the browser client against the server: topic pub/sub
// between pages, and resubscription after the server comes back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { useServerAndBrowser } from "../lib/fixture.mjs";
import { openTodo, polled, waitLive } from "../lib/browser.mjs";

const env = useServerAndBrowser();

/** Makes `page` collect every message on `topic` into window.got[topic]. */
async function listen(page, topic) {
  await page.evaluate((topic) => {
    window.got = window.got || {};
    window.got[topic] = [];
    window.todoApp.live.subscribe(topic, (data) => window.got[topic].push(data));
  }, topic);
}

async function waitGot(page, topic, want, timeout = 5000) {
  await page.waitForFunction(
    ({ topic, want }) => JSON.stringify(window.got[topic]) === JSON.stringify(want),
    { topic, want },
    polled(timeout),
  );
}

/**
 * Waits until `page`'s subscription to `topic` is active on the server: it
 * publishes a probe there itself and waits for it to come back (publishers
 * receive their own messages when subscribed; one connection is ordered).
 */
async function subscribed(page, topic) {
  const probe = `probe-${Math.random()}`;
  await page.evaluate(({ topic, probe }) => window.todoApp.live.publish(topic, probe), { topic, probe });
  await page.waitForFunction(({ topic, probe }) => window.got[topic].includes(probe), { topic, probe }, polled());
  await page.evaluate((topic) => (window.got[topic] = []), topic);
}

test("pages publish to each other's topics and resubscribe after a server restart", async () => {
  const { server, browser } = env;
  const a = await openTodo(await browser.newContext(), server.baseUrl);
  const b = await openTodo(await browser.newContext(), server.baseUrl);
  await listen(b, "chat");
  await listen(a, "chat");
  await subscribed(b, "chat");
  await subscribed(a, "chat");
  await b.evaluate(() => (window.got.chat = []));
  assert.equal(await a.evaluate(() => window.todoApp.live.publish("chat", { text: "hello" })), true);
  await waitGot(b, "chat", [{ text: "hello" }]);
  await waitGot(a, "chat", [{ text: "hello" }]);

  // After B unsubscribes, A's message reaches A only. B's barrier topic gets
  // a message after it: had B still been subscribed, "only a" would be there first.
  await listen(b, "barrier");
  await subscribed(b, "barrier");
  await b.evaluate(() => window.todoApp.live.unsubscribe("chat"));
  await b.evaluate(() => window.todoApp.live.publish("chat", "b left")); // ordered after the unsubscribe
  await waitGot(a, "chat", [{ text: "hello" }, "b left"]);
  await a.evaluate(() => window.todoApp.live.publish("chat", "only a"));
  await a.evaluate(() => window.todoApp.live.publish("barrier", "end"));
  await waitGot(b, "barrier", ["end"]);
  assert.deepEqual(await b.evaluate(() => window.got.chat), [{ text: "hello" }]);

  await listen(b, "news");
  await server.kill();
  await b.waitForFunction(() => window.todoApp.live.state !== "open", null, polled());
  assert.equal(await a.evaluate(() => window.todoApp.live.publish("news", "lost")), false);
  await server.start();
  await waitLive(a, 20000);
  await waitLive(b, 20000);
  // B subscribed to "news" before the crash and never again by hand.
  await subscribed(b, "news");
  await a.evaluate(() => window.todoApp.live.publish("news", "after restart"));
  await waitGot(b, "news", ["after restart"]);
});
