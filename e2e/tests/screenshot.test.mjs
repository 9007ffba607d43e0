// A screenshot of the demo in use, saved as e2e/artifacts/todo.png.
import { test } from "node:test";
import assert from "node:assert/strict";
import { useServerAndBrowser } from "../lib/fixture.mjs";
import fs from "node:fs";
import path from "node:path";
import { addTodo, artifactsDir, openTodo, toggleTodo, waitSettled } from "../lib/browser.mjs";

const env = useServerAndBrowser();

test("the demo renders and a screenshot is saved", async () => {
  const { server, browser } = env;
  const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
  const page = await openTodo(context, server.baseUrl);
  assert.equal(await page.textContent("#empty"), "Nothing to do. Add a todo above; every open tab sees it at once.");
  for (const t of ["Write the sync client", "Ship the todo demo", "Run the browser tests", "Water the plants"]) {
    await addTodo(page, t);
  }
  await toggleTodo(page, "Write the sync client");
  await waitSettled(page);
  assert.equal(await page.textContent("#connection"), "live");
  assert.equal(await page.textContent("#pending"), "synced");
  assert.equal(await page.textContent("#count"), "3 open · 1 done");
  assert.equal(await page.isHidden("#empty"), true);

  fs.mkdirSync(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, "todo.png");
  await page.screenshot({ path: file });
  const png = fs.readFileSync(file);
  assert.equal(png.subarray(1, 4).toString(), "PNG");
  assert.ok(png.length > 5000, `screenshot too small (${png.length} bytes)`);
  await context.close();
});
