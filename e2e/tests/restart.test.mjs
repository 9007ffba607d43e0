// The server is SIGKILLed and restarted on the same port and store: pages
// reconnect by themselves, converge, and nothing acknowledged is lost.
//
// Needs a durable store behind the server: its SQLite file (`--db`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { openTwoProfiles, useServerAndBrowser } from "../lib/fixture.mjs";
import {
  addTodo,
  polled,
  shownPending,
  waitForTitles,
  waitLive,
  waitSettled,
} from "../lib/browser.mjs";

const env = useServerAndBrowser();

test("after a server crash and restart pages reconnect, converge and lose nothing acknowledged", async () => {
  const { server } = env;
  const { ca, cb, a, b } = await openTwoProfiles(env);

  await addTodo(a, "acknowledged one");
  await addTodo(b, "acknowledged two");
  await waitSettled(a);
  await waitSettled(b);
  await waitForTitles(a, ["acknowledged one", "acknowledged two"]);

  await server.kill();
  for (const p of [a, b]) {
    await p.waitForFunction(() => window.todoApp.live.state !== "open", null, polled(5000));
    await p.waitForSelector('#connection[data-state="offline"]');
  }
  await addTodo(a, "made during the outage");
  await addTodo(b, "also made during the outage");
  assert.equal(await shownPending(a), 1);
  assert.equal(await shownPending(b), 1);

  await server.start();
  await waitLive(a, 20000);
  await waitLive(b, 20000);
  const all = ["acknowledged one", "acknowledged two", "made during the outage", "also made during the outage"];
  await waitForTitles(a, all, 20000);
  await waitForTitles(b, all, 20000);
  await waitSettled(a);
  await waitSettled(b);

  // The restarted server's own log: everything once, nothing twice.
  const changes = await server.allChanges("shared");
  const titles = changes.filter((c) => c.data.op === "put").map((c) => c.data.value).sort();
  assert.deepEqual(titles, [...all].sort());
  const snapshot = await server.sync("snapshot", { scope: "shared" });
  assert.equal(Object.keys(snapshot.data).length, 4);
  await ca.close();
  await cb.close();
});
