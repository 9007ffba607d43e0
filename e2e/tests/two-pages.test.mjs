// Two pages see each other's edits at once, without reload: the live poke
// makes the other page pull. The 1 s deadline is part of the requirement.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openTwoProfiles, useServerAndBrowser } from "../lib/fixture.mjs";
import {
  addTodo,
  deleteTodo,
  openTodo,
  polled,
  renameTodo,
  shownTodos,
  toggleTodo,
  waitForTitles,
} from "../lib/browser.mjs";

const env = useServerAndBrowser();

test("a todo added in one tab appears in another tab within 1 s", async () => {
  const { server, browser } = env;
  const context = await browser.newContext();
  const a = await openTodo(context, server.baseUrl);
  const b = await openTodo(context, server.baseUrl);
  // Two tabs of one browser share storage but are distinct clients.
  const ids = await Promise.all([a, b].map((p) => p.evaluate(() => window.todoApp.sync.clientId)));
  assert.notEqual(ids[0], ids[1]);

  await addTodo(a, "buy milk");
  await waitForTitles(b, ["buy milk"], 1000);
  await addTodo(b, "walk the dog");
  await waitForTitles(a, ["buy milk", "walk the dog"], 1000);
  await context.close();
});

test("rename, toggle and delete reach a page of another browser profile within 1 s", async () => {
  const { ca, cb, a, b } = await openTwoProfiles(env);
  await waitForTitles(a, ["buy milk", "walk the dog"]);
  await waitForTitles(b, ["buy milk", "walk the dog"]);

  await renameTodo(a, "buy milk", "buy oat milk");
  await waitForTitles(b, ["buy oat milk", "walk the dog"], 1000);

  await toggleTodo(b, "walk the dog");
  await a.waitForFunction(
    () => document.querySelector("#todos li.todo.done .title")?.textContent === "walk the dog",
    null,
    polled(1000),
  );

  await deleteTodo(a, "buy oat milk");
  await waitForTitles(b, ["walk the dog"], 1000);
  assert.deepEqual(await shownTodos(b), [{ title: "walk the dog", done: true }]);
  await ca.close();
  await cb.close();
});
