// A page goes offline, edits, comes back: both pages converge and every
// mutation is in the server's log exactly once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openTwoProfiles, useServerAndBrowser } from "../lib/fixture.mjs";
import {
  addTodo,
  renameTodo,
  shownPending,
  shownTitles,
  shownTodos,
  toggleTodo,
  waitForTitles,
  waitSettled,
} from "../lib/browser.mjs";

const env = useServerAndBrowser();

test("offline edits are kept, sent once on return, and both pages converge", async () => {
  const { server } = env;
  const { ca, cb, a, b } = await openTwoProfiles(env);

  await addTodo(a, "before the outage");
  await waitForTitles(b, ["before the outage"]);
  await waitSettled(a);

  await ca.setOffline(true);
  await a.waitForSelector('#connection[data-state="offline"]');
  await addTodo(a, "offline one");
  await addTodo(a, "offline two");
  await renameTodo(a, "offline one", "offline one, renamed");
  await toggleTodo(a, "before the outage");
  await addTodo(b, "added while a was away");

  // A shows its own edits at once, counted as pending; B cannot have them.
  await waitForTitles(a, ["before the outage", "offline one, renamed", "offline two"]);
  assert.equal(await shownPending(a), 4);
  await waitForTitles(b, ["before the outage", "added while a was away"]);
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual((await shownTitles(b)).sort(), ["added while a was away", "before the outage"]);
  assert.equal(await shownPending(a), 4, "nothing can be confirmed while offline");

  await ca.setOffline(false);
  await a.waitForSelector('#connection[data-state="online"]');
  const all = ["added while a was away", "before the outage", "offline one, renamed", "offline two"];
  await waitForTitles(a, all, 15000);
  await waitForTitles(b, all, 15000);
  await waitSettled(a);
  await waitSettled(b);
  assert.equal(await shownPending(a), 0);
  for (const p of [a, b]) {
    const done = (await shownTodos(p)).filter((t) => t.done).map((t) => t.title);
    assert.deepEqual(done, ["before the outage"]);
  }

  // One change per mutation made: 1 + 4 by A, 1 by B. A retried push that
  // was applied twice would show up here as extra changes.
  const changes = await server.allChanges("shared");
  assert.equal(changes.length, 6, JSON.stringify(changes));
  const puts = changes.filter((c) => c.data.op === "put").map((c) => c.data.value);
  for (const title of ["before the outage", "offline one", "offline one, renamed", "offline two", "added while a was away"]) {
    assert.equal(puts.filter((v) => v === title).length, 1, `${title} put once`);
  }
  await ca.close();
  await cb.close();
});
