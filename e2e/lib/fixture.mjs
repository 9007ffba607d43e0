// What every browser test file starts from: one server with a fresh store and
// one Chromium, started before the file's tests and stopped after them.
import { after, before } from "node:test";
import { launchBrowser, openTodo } from "./browser.mjs";
import { startServer } from "./server.mjs";

/**
 * Registers the file's `before` and `after` hooks; `serverArgs` are extra
 * flags for the server under test. The returned object's
 * `server` and `browser` are set once `before` has run, so read them inside
 * tests: `const { server, browser } = env;`.
 */
export function useServerAndBrowser({ serverArgs = [] } = {}) {
  const env = { server: undefined, browser: undefined };
  before(async () => {
    env.server = await startServer(serverArgs);
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
  });
  return env;
}

/**
 * The demo open in two browser profiles (separate storage, so two distinct
 * clients): contexts `ca`, `cb` and their pages `a`, `b`.
 */
export async function openTwoProfiles({ server, browser }) {
  const ca = await browser.newContext();
  const cb = await browser.newContext();
  const a = await openTodo(ca, server.baseUrl);
  const b = await openTodo(cb, server.baseUrl);
  return { ca, cb, a, b };
}
