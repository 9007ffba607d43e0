// Unit tests of the browser client's token handling in node: getToken before
// connecting, in-band refresh before expiry and on token_expired, a fresh
// token after 4001 and after a 401 of the sync endpoints.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LiveClient, MemoryStorage, SyncClient, tokenExpiry } from "live-sync";
import { FakeServer, FakeWebSocket, until } from "./fake-server.mjs";

/** An unsigned JWT-shaped token expiring `ttl` seconds from now. */
function jwt(name, ttl) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const exp = Math.floor(Date.now() / 1000) + ttl;
  return `${b64({ alg: "HS256" })}.${b64({ sub: name, exp })}.sig`;
}

test("tokenExpiry reads exp and tolerates anything else", () => {
  const t = jwt("a", 100);
  assert.ok(Math.abs(tokenExpiry(t) - (Date.now() / 1000 + 100)) < 2);
  for (const bad of ["", "abc", "a.b.c", "a.e30.c"]) assert.equal(tokenExpiry(bad), null);
});

test("a live client asks getToken before connecting and refreshes in-band before expiry", async () => {
  FakeWebSocket.instances = [];
  const issued = [];
  // The first token expires in 6 s, so its refresh is due about 1 s from now.
  const getToken = async () => {
    const t = jwt(`t${issued.length}`, issued.length === 0 ? 6 : 3600);
    issued.push(t);
    return t;
  };
  const live = new LiveClient({ url: "ws://h/ws", WebSocket: FakeWebSocket, getToken });
  await until(() => FakeWebSocket.instances.length === 1, 1000, "connect after getToken");
  const ws = FakeWebSocket.last();
  assert.equal(ws.url, "ws://h/ws?token=" + encodeURIComponent(issued[0]));
  ws.serverOpen();
  await until(() => ws.sent.some((m) => m.topic === "refresh"), 5000, "refresh before expiry");
  const refresh = ws.sent.find((m) => m.topic === "refresh");
  assert.deepEqual(refresh.data, { token: issued[1] });
  assert.equal(FakeWebSocket.instances.length, 1, "no reconnect for a refresh");
  const acks = [];
  live.on("refresh", (a) => acks.push(a));
  ws.serverSend("refresh", { ok: true });
  assert.deepEqual(acks, [{ ok: true }]);

  // token_expired from the server: a fresh token at once, in-band.
  ws.serverSend("error", { code: "token_expired", message: "token expired" });
  await until(() => ws.sent.filter((m) => m.topic === "refresh").length === 2, 1000, "second refresh");
  assert.equal(issued.length, 3);
  live.close();
});

test("after a 4001 close the live client reconnects with a fresh token", async () => {
  FakeWebSocket.instances = [];
  let n = 0;
  const live = new LiveClient({
    url: "ws://h/ws",
    WebSocket: FakeWebSocket,
    backoffBase: 1,
    backoffMax: 5,
    getToken: () => jwt(`u${n++}`, 3600),
  });
  await until(() => FakeWebSocket.instances.length === 1, 1000, "first connect");
  FakeWebSocket.last().serverOpen();
  FakeWebSocket.last().serverDrop(4001);
  await until(() => FakeWebSocket.instances.length === 2, 1000, "reconnect");
  assert.equal(n, 2, "a second token was asked for");
  assert.ok(FakeWebSocket.last().url.includes("token="));
  live.close();
});

test("a sync client asks for a fresh token after a 401 and succeeds with it", async () => {
  const server = new FakeServer();
  const seen = [];
  let n = 0;
  const fetch = async (url, init) => {
    seen.push(init.headers.authorization);
    if (init.headers.authorization === "Bearer stale") {
      return { status: 401, json: async () => ({ code: "token_expired", error: "token expired" }) };
    }
    return server.fetch(url, init);
  };
  const sync = await SyncClient.open({
    scope: "s",
    baseUrl: "http://server.test",
    storage: new MemoryStorage(),
    fetch,
    backoffBase: 1,
    backoffMax: 5,
    pollInterval: 60000,
    fallbackPollInterval: 60000,
    getToken: async () => (n++ === 0 ? "stale" : "fresh"),
  });
  await sync.mutate("put", { key: "k", value: 1 });
  await until(() => server.kv.k === 1, 3000, "the push lands with the fresh token");
  assert.equal(seen[0], "Bearer stale");
  assert.ok(seen.includes("Bearer fresh"));
  await sync.close();
});
