// The demo in Chromium against a server that requires signed tokens: with a
// token for user alice (scope user:{sub}) the page syncs and goes live; with
// none, the server refuses it (401) and the page never goes live.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { addTodo, launchBrowser, polled } from "../lib/browser.mjs";
import { ServerUnderTest, serverKind } from "../lib/server.mjs";

const SECRET = "e2e-secret-" + crypto.randomBytes(16).toString("hex");

/** An HS256 JWT signed with SECRET, as `adapter-tokio token` mints one. */
function mint(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  const sig = crypto.createHmac("sha256", SECRET).update(body).digest("base64url");
  return `${body}.${sig}`;
}

const real = serverKind() === "real";
const env = {};
before(async () => {
  if (!real) return;
  env.server = await new ServerUnderTest(["--jwt-secret", SECRET]).start();
  env.browser = await launchBrowser();
});
after(async () => {
  await env.browser?.close();
  await env.server?.stop();
});

test("a page with a token syncs its user's scope and goes live; one without is refused", { skip: !real }, async () => {
  const { server, browser } = env;
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const token = mint({ sub: "alice", exp, scopes: ["user:{sub}"], topics: [], publish: [] });

  const page = await (await browser.newContext()).newPage();
  await page.goto(`${server.baseUrl}/?scope=user:alice&token=${token}`);
  await page.waitForSelector("body[data-ready=true]");
  await page.waitForFunction(() => window.todoApp.live.state === "open", null, polled(10000));
  await addTodo(page, "signed");

  // The server holds it, readable with the token and with nothing else.
  const pull = (auth) =>
    fetch(`${server.baseUrl}/_sync/pull`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(auth ? { authorization: `Bearer ${auth}` } : {}) },
      body: JSON.stringify({ scope: "user:alice", cursor: 0 }),
    });
  let changes = [];
  for (let i = 0; i < 200 && changes.length === 0; i++) {
    const res = await pull(token);
    assert.equal(res.status, 200);
    changes = (await res.json()).changes;
    if (changes.length === 0) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(JSON.stringify(changes).includes("signed"), JSON.stringify(changes));
  const anonymous = await pull(null);
  assert.equal(anonymous.status, 401);
  assert.equal((await anonymous.json()).code, "unauthorized");
  const bob = mint({ sub: "bob", exp, scopes: ["user:{sub}"] });
  assert.equal((await pull(bob)).status, 403, "bob may not read alice's scope");

  // Without a token the page never goes live.
  const stranger = await (await browser.newContext()).newPage();
  await stranger.goto(`${server.baseUrl}/?scope=user:alice`);
  await stranger.waitForSelector("body[data-ready=true]");
  await new Promise((r) => setTimeout(r, 500));
  assert.notEqual(await stranger.evaluate(() => window.todoApp.live.state), "open");
});
