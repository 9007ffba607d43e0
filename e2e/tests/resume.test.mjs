// A page's live client resumes a topic with history by itself: its network
// is cut (a relay between it and the server drops the connection and refuses
// new ones) while 20 messages are published; once it is back, the page shows
// all 20 once and in order. When the server restarts instead (its history,
// kept in memory, is gone), the page hears `recoveryfailed`.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { useServerAndBrowser } from "../lib/fixture.mjs";
import { openTodo, polled } from "../lib/browser.mjs";
import { startProxy } from "../lib/proxy.mjs";

const env = useServerAndBrowser({ serverArgs: ["--history", "hist:*=100"] });
let proxy;
after(async () => {
  await proxy?.stop();
});

/**
 * Starts a live client of its own in `page` on `wsUrl`, subscribed to
 * `topic`: each message is shown as a line of `#resume-log` and kept in
 * `window.resume.got`; its events are kept in `window.resume.events`.
 */
async function resumingPage(page, wsUrl, topic) {
  await page.evaluate(
    async ({ wsUrl, topic }) => {
      const { LiveClient } = await import("/live-sync.js");
      const live = new LiveClient({ url: wsUrl, backoffBase: 200, backoffMax: 1000 });
      const log = document.createElement("ol");
      log.id = "resume-log";
      document.body.append(log);
      const r = (window.resume = { live, got: [], events: [] });
      live.on("subscribed", (e) => r.events.push(["subscribed", e]));
      live.on("recoveryfailed", (e) => r.events.push(["recoveryfailed", e]));
      live.subscribe(topic, (data) => {
        r.got.push(data);
        const li = document.createElement("li");
        li.textContent = String(data);
        log.append(li);
      });
    },
    { wsUrl, topic },
  );
}

/** Waits until the page's client has seen an event `name` (the n-th one). */
async function waitEvent(page, name, n = 1, timeout = 15000) {
  await page.waitForFunction(
    ({ name, n }) => window.resume.events.filter(([e]) => e === name).length >= n,
    { name, n },
    polled(timeout),
  );
  return page.evaluate(({ name, n }) => window.resume.events.filter(([e]) => e === name)[n - 1][1], { name, n });
}

async function waitGotCount(page, count, timeout = 15000) {
  await page.waitForFunction((count) => window.resume.got.length >= count, count, polled(timeout));
}

/** What the page shows in its log, line by line. */
function shownLog(page) {
  return page.$$eval("#resume-log li", (lis) => lis.map((li) => li.textContent));
}

test("a page cut off while 20 messages are published shows all 20 once and in order when it is back", async () => {
  const { server, browser } = env;
  const topic = "hist:feed";
  proxy = await startProxy(server.port);
  // The reader goes through the relay (page and socket alike); the writer
  // talks to the server directly and is subscribed too, so it knows when
  // the server has handled its publishes.
  const reader = await openTodo(await browser.newContext(), proxy.baseUrl);
  const writer = await openTodo(await browser.newContext(), server.baseUrl);
  await resumingPage(reader, `ws://127.0.0.1:${proxy.port}/ws`, topic);
  await resumingPage(writer, `ws://127.0.0.1:${server.port}/ws`, topic);
  const first = await waitEvent(reader, "subscribed");
  await waitEvent(writer, "subscribed");
  assert.equal(first.recovered, false);
  assert.notEqual(first.epoch, "", "the topic has a history");

  await writer.evaluate((topic) => window.resume.live.publish(topic, "before"), topic);
  await waitGotCount(reader, 1);

  proxy.cut();
  await reader.waitForFunction(() => window.resume.live.state !== "open", null, polled(10000));
  for (let n = 1; n <= 20; n++) {
    assert.equal(await writer.evaluate(({ topic, n }) => window.resume.live.publish(topic, `m${n}`), { topic, n }), true);
  }
  await waitGotCount(writer, 21);
  assert.ok((await reader.evaluate(() => window.resume.got.length)) === 1, "nothing reached the cut-off page");

  proxy.heal();
  const again = await waitEvent(reader, "subscribed", 2, 20000);
  assert.equal(again.recovered, true, JSON.stringify(again));
  assert.equal(again.epoch, first.epoch);
  await waitGotCount(reader, 21);
  // A live message after the replay: nothing old may come again before it.
  await writer.evaluate((topic) => window.resume.live.publish(topic, "after"), topic);
  await waitGotCount(reader, 22);
  const want = ["before", ...Array.from({ length: 20 }, (_, i) => `m${i + 1}`), "after"];
  assert.deepEqual(await reader.evaluate(() => window.resume.got), want);
  assert.deepEqual(await shownLog(reader), want);
  const events = await reader.evaluate(() => window.resume.events.map(([e]) => e));
  assert.ok(!events.includes("recoveryfailed"), JSON.stringify(events));
  assert.deepEqual(await reader.evaluate((topic) => window.resume.live.position(topic), topic), {
    epoch: first.epoch,
    offset: first.offset + 22,
  });
  await reader.context().close();
  await writer.context().close();
});

test("after a server restart (a new epoch) the page hears recoveryfailed and reads on", async () => {
  const { server, browser } = env;
  const topic = "hist:restart";
  const page = await openTodo(await browser.newContext(), server.baseUrl);
  await resumingPage(page, `ws://127.0.0.1:${server.port}/ws`, topic);
  const first = await waitEvent(page, "subscribed");
  await page.evaluate((topic) => window.resume.live.publish(topic, "one"), topic);
  await waitGotCount(page, 1);

  await server.kill();
  await page.waitForFunction(() => window.resume.live.state !== "open", null, polled(10000));
  await server.start();
  const failed = await waitEvent(page, "recoveryfailed", 1, 20000);
  assert.equal(failed.topic, topic);
  assert.deepEqual(failed.since, { epoch: first.epoch, offset: first.offset + 1 });
  assert.notEqual(failed.epoch, first.epoch, "a restarted server starts a new epoch");
  await page.waitForFunction(() => window.resume.live.state === "open", null, polled(10000));
  await page.evaluate((topic) => window.resume.live.publish(topic, "two"), topic);
  await waitGotCount(page, 2);
  assert.deepEqual(await page.evaluate(() => window.resume.got), ["one", "two"]);
  await page.context().close();
});
