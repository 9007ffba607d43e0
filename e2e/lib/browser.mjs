// Debian's Chromium driven by playwright-core (never a downloaded browser),
// and helpers that drive the todo demo the way a person does.
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { repoRoot } from "./server.mjs";

export const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const artifactsDir = path.join(repoRoot, "e2e", "artifacts");

/**
 * Launches headless Chromium with a fresh profile (playwright gives every
 * launch its own temporary user-data-dir).
 */
export async function launchBrowser() {
  if (!fs.existsSync(chromiumPath)) {
    throw new Error(`${chromiumPath} not found: apt-get install -y chromium (e2e/run.sh does)`);
  }
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Opens the demo in a new page of `context` and waits until it is ready and live. */
export async function openTodo(context, baseUrl, { waitLive = true } = {}) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[page error] ${e.message}`));
  await page.goto(baseUrl + "/");
  await page.waitForSelector("body[data-ready=true]");
  if (waitLive) await waitLive_(page);
  return page;
}

/**
 * `waitForFunction` options that check on a timer. Playwright's default
 * checks in requestAnimationFrame callbacks, which Chromium throttles or
 * stops for a page that is not in front: with two pages open, a wait on the
 * one behind could time out with the condition long true.
 */
export function polled(timeout) {
  return timeout === undefined ? { polling: 20 } : { polling: 20, timeout };
}

async function waitLive_(page, timeout = 10000) {
  await page.waitForFunction(() => window.todoApp.live.state === "open", null, polled(timeout));
}
export { waitLive_ as waitLive };

/** Types a title into the new-todo field and submits it. */
export async function addTodo(page, title) {
  await page.fill("#new-title", title);
  await page.press("#new-title", "Enter");
}

/** The todo list as shown: [{title, done}] in display order. */
export function shownTodos(page) {
  return page.$$eval("#todos li.todo", (lis) =>
    lis.map((li) => ({ title: li.querySelector(".title")?.textContent ?? "", done: li.classList.contains("done") })),
  );
}

/** Titles as shown. */
export async function shownTitles(page) {
  return (await shownTodos(page)).map((t) => t.title);
}

/** Waits until the page shows exactly `titles` (any order), within `timeout` ms. */
export async function waitForTitles(page, titles, timeout = 10000) {
  const want = [...titles].sort();
  const started = Date.now();
  await page
    .waitForFunction(
      (want) => {
        const got = [...document.querySelectorAll("#todos li.todo .title")].map((e) => e.textContent).sort();
        return JSON.stringify(got) === JSON.stringify(want);
      },
      want,
      polled(timeout),
    )
    .catch(async (e) => {
      // What the page's sync client was doing, to tell a slow commit from a
      // missed poke.
      const status = await page.evaluate(() => window.todoApp?.sync.status).catch(() => undefined);
      throw new Error(
        `${e.message}\nwanted ${JSON.stringify(want)}, shown ${JSON.stringify(await shownTitles(page))}, ` +
          `sync status ${JSON.stringify(status)} after ${Date.now() - started} ms`,
      );
    });
}

/** The row of the todo titled `title`. */
export function row(page, title) {
  return page.locator("#todos li.todo", { has: page.locator(".title", { hasText: title }) });
}

/** Renames the todo titled `from` to `to` through the Rename button. */
export async function renameTodo(page, from, to) {
  const r = row(page, from);
  await r.hover();
  await r.locator("button.rename").click();
  const input = page.locator("#todos input.edit");
  await input.fill(to);
  await input.press("Enter");
}

/** Ticks or unticks the todo titled `title`. */
export async function toggleTodo(page, title) {
  await row(page, title).locator("input.toggle").click();
}

/** Deletes the todo titled `title`. */
export async function deleteTodo(page, title) {
  const r = row(page, title);
  await r.hover();
  await r.locator("button.delete").click();
}

/** The pending-mutation count the page shows. */
export async function shownPending(page) {
  return Number(await page.getAttribute("#pending", "data-count"));
}

/** Waits until the page's replica has nothing pending or in flight. */
export async function waitSettled(page, timeout = 15000) {
  await page.evaluate((t) => window.todoApp.sync.whenSettled(t), timeout);
}
