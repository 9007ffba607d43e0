// Unsent mutations survive a reload (and a closed tab): the queue, client id
// and sequence are in IndexedDB, and the next document of the tab continues
// the same client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { useServerAndBrowser } from "../lib/fixture.mjs";
import {
  addTodo,
  openTodo,
  polled,
  shownPending,
  toggleTodo,
  waitForTitles,
  waitSettled,
} from "../lib/browser.mjs";

const env = useServerAndBrowser();

/** Makes every push of `page` fail, as if the server were unreachable for it. */
async function blockPushes(page) {
  await page.route("**/_sync/push", (route) => route.abort("connectionrefused"));
}

test("a reload keeps unsent mutations and sends them once afterwards", async () => {
  const { server, browser } = env;
  const context = await browser.newContext();
  const other = await browser.newContext();
  const watcher = await openTodo(other, server.baseUrl);
  const page = await openTodo(context, server.baseUrl);
  await addTodo(page, "sent before");
  await waitForTitles(watcher, ["sent before"]);
  await waitSettled(page);

  await blockPushes(page);
  await addTodo(page, "unsent one");
  await addTodo(page, "unsent two");
  await toggleTodo(page, "sent before");
  assert.equal(await shownPending(page), 3);
  const before = await page.evaluate(() => ({
    id: window.todoApp.sync.clientId,
    seq: window.todoApp.sync.lastSeq,
  }));
  await page.evaluate(() => window.todoApp.sync.flush());

  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  // Still blocked: the page shows the mutations from its store, still pending.
  await waitForTitles(page, ["sent before", "unsent one", "unsent two"]);
  assert.equal(await shownPending(page), 3);
  const afterReload = await page.evaluate(() => ({
    id: window.todoApp.sync.clientId,
    seq: window.todoApp.sync.lastSeq,
  }));
  assert.deepEqual(afterReload, before, "the tab continues the same client and sequence");
  assert.equal(await page.evaluate(() => window.todoApp.sync.storage.kind), "indexedDB");
  await waitForTitles(watcher, ["sent before"]);

  await page.unroute("**/_sync/push");
  await page.evaluate(() => window.todoApp.sync.pullNow());
  await waitForTitles(watcher, ["sent before", "unsent one", "unsent two"], 15000);
  await waitSettled(page);
  assert.equal(await shownPending(page), 0);
  const changes = await server.allChanges("shared");
  assert.equal(changes.length, 4, JSON.stringify(changes));
  await context.close();
  await other.close();
});

test("a closed tab's unsent mutations are adopted by the next tab", async () => {
  const { server, browser } = env;
  const context = await browser.newContext();
  const first = await openTodo(context, server.baseUrl);
  await waitForTitles(first, ["sent before", "unsent one", "unsent two"]);
  await blockPushes(first);
  await addTodo(first, "left behind");
  assert.equal(await shownPending(first), 1);
  const orphan = await first.evaluate(() => window.todoApp.sync.clientId);
  await first.evaluate(() => window.todoApp.sync.flush());
  await first.close();

  const next = await openTodo(context, server.baseUrl);
  assert.equal(await next.evaluate(() => window.todoApp.sync.clientId), orphan);
  await waitForTitles(next, ["sent before", "unsent one", "unsent two", "left behind"]);
  await waitSettled(next);
  const puts = (await server.allChanges("shared")).filter((c) => c.data.value === "left behind");
  assert.equal(puts.length, 1);
  await context.close();
});

test("a reload in the same task as the mutation still keeps it", async () => {
  const { server, browser } = env;
  const context = await browser.newContext();
  const page = await openTodo(context, server.baseUrl);
  await waitSettled(page);
  await blockPushes(page);
  const base = await page.evaluate(() => window.todoApp.sync.pendingCount);
  for (let i = 1; i <= 3; i++) {
    await page.evaluate((i) => {
      window.todoApp.sync.mutate("put", { key: `todo/zz-reload-${i}/title`, value: `reloaded ${i}` });
      location.reload();
    }, i).catch((e) => {
      // The reload may tear the page down before evaluate() hears back.
      if (!/context was destroyed|navigat/i.test(e.message)) throw e;
    });
    await page.waitForFunction((n) => window.todoApp?.sync.pendingCount === n, base + i, polled());
  }
  await page.unroute("**/_sync/push");
  await page.evaluate(() => window.todoApp.sync.pullNow());
  await waitSettled(page);
  const puts = (await server.allChanges("shared")).filter((c) => /^reloaded /.test(String(c.data.value)));
  assert.deepEqual(puts.map((c) => c.data.value), ["reloaded 1", "reloaded 2", "reloaded 3"]);
  await context.close();
});
