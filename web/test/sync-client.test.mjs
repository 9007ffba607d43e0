// Unit tests of live-sync.js's SyncClient in node against an in-process model
// of the server: the replica algorithm of sync-core's `Replica`, request by
// request.
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { LiveClient, MemoryStorage, SyncClient } from "live-sync";
import { FakeServer, FakeWebSocket, until } from "./fake-server.mjs";

const open = [];
afterEach(async () => {
  while (open.length) await open.pop().close();
  delete globalThis.sessionStorage;
});

/** A client of scope "s" on `server` with fast timers. */
async function client(server, options = {}) {
  const c = await SyncClient.open({
    scope: "s",
    baseUrl: "http://server.test",
    storage: new MemoryStorage(),
    fetch: server.fetch,
    backoffBase: 5,
    backoffMax: 40,
    pollInterval: 60000,
    fallbackPollInterval: 60000,
    ...options,
  });
  open.push(c);
  return c;
}

test("mutations are applied at once, pushed with client_id and contiguous seq, then confirmed by a pull", async () => {
  const server = new FakeServer();
  const c = await client(server);
  await c.mutate("put", { key: "a", value: 1 });
  await c.mutate("put", { key: "b", value: 2 });
  assert.deepEqual(c.state, { a: 1, b: 2 }, "optimistic state before any answer");
  await c.whenSettled(2000);
  assert.deepEqual(c.state, { a: 1, b: 2 });
  assert.deepEqual(c.confirmedState, { a: 1, b: 2 });
  assert.equal(c.pendingCount, 0);
  assert.equal(c.cursor, 2);
  const pushed = server.requests.filter((r) => r.op === "push").flatMap((r) => r.body.mutations);
  assert.deepEqual(
    pushed.map((m) => [m.client_id, m.seq, m.id, m.scope]),
    [
      [c.clientId, 1, `${c.clientId}:1`, "s"],
      [c.clientId, 2, `${c.clientId}:2`, "s"],
    ],
  );
  assert.deepEqual(server.kv, { a: 1, b: 2 });
  // Push comes before the pull that confirms it.
  const ops = server.requests.map((r) => r.op);
  assert.ok(ops.indexOf("push") < ops.lastIndexOf("pull"), ops.join(","));
});

test("pulls page until has_more is false", async () => {
  const server = new FakeServer();
  for (let i = 0; i < 250; i++) server.putFrom("other", `k${i}`, i);
  const c = await client(server, { pullLimit: 100 });
  await c.whenSettled(2000);
  assert.equal(Object.keys(c.state).length, 250);
  assert.equal(c.cursor, 250);
  const pulls = server.requests.filter((r) => r.op === "pull").map((r) => r.body.cursor);
  assert.deepEqual(pulls, [0, 100, 200]);
});

test("a 410 cursor_too_old resets the replica from a snapshot, keeping pending mutations on top", async () => {
  const server = new FakeServer();
  for (let i = 0; i < 10; i++) server.putFrom("other", `k${i}`, i);
  server.trim(6);
  const resets = [];
  server.intercept = () => "network"; // offline until the mutation is queued
  // A long backoff: no retry of its own until pullNow(), so the order of
  // requests does not depend on how fast this machine is.
  const c = await client(server, { backoffBase: 60000, backoffMax: 60000 });
  c.on("reset", (e) => resets.push(e.cursor));
  await until(() => c.status.lastError !== null, 2000, "the first pull to fail");
  await c.mutate("put", { key: "mine", value: true });
  server.intercept = () => undefined;
  c.pullNow();
  await c.whenSettled(2000);
  assert.deepEqual(resets, [11], "snapshot after the 410, at the head incl. our push");
  assert.equal(c.state.mine, true);
  assert.equal(Object.keys(c.state).length, 11);
  assert.equal(c.pendingCount, 0, "the snapshot's client_seq confirms the pushed mutation");
  const ops = server.requests.slice(1).map((r) => `${r.op}${r.op === "pull" ? r.body.cursor : ""}`);
  assert.deepEqual(ops, ["push", "pull0", "snapshot", "pull11"]);
});

test("a permanently refused mutation is rolled back and reported; later ones still apply", async () => {
  const server = new FakeServer();
  const c = await client(server, {
    mutators: { boom: (_s, args) => [{ op: "put", key: args.key, value: "boom" }] },
  });
  const rejected = [];
  c.on("rejected", (e) => rejected.push([e.mutation.seq, e.result.code]));
  const queued = [c.mutate("boom", { key: "x" }), c.mutate("put", { key: "y", value: 1 })];
  assert.deepEqual(c.state, { x: "boom", y: 1 }, "optimistic, before any answer");
  await Promise.all(queued);
  await c.whenSettled(2000);
  assert.deepEqual(rejected, [[1, "invalid_mutation"]]);
  assert.deepEqual(c.state, { y: 1 });
  assert.equal(c.pendingCount, 0);
});

test("a push whose answer was lost is sent again and applied once", async () => {
  const server = new FakeServer();
  const c = await client(server);
  let lost = 0;
  server.intercept = (op) => (op === "push" && lost++ === 0 ? "lose-answer" : undefined);
  await c.mutate("put", { key: "a", value: 1 });
  await c.whenSettled(2000);
  assert.equal(server.requests.filter((r) => r.op === "push").length, 2);
  assert.equal(server.log.length, 1, "applied once");
  assert.deepEqual(c.state, { a: 1 });
});

test("a transient internal_error result is retried after a backoff", async () => {
  const server = new FakeServer();
  const c = await client(server);
  let n = 0;
  server.intercept = (op) =>
    op === "push" && n++ === 0 ? { status: 200, json: { results: [{ ok: false, code: "internal_error" }] } } : undefined;
  const failures = [];
  c.on("requestfailed", (e) => failures.push(e.operation));
  await c.mutate("put", { key: "a", value: 1 });
  await c.whenSettled(2000);
  assert.deepEqual(failures, ["push"]);
  assert.deepEqual(server.kv, { a: 1 });
  assert.equal(server.log.length, 1);
});

test("server changes are rebased under pending mutations without flicker", async () => {
  const server = new FakeServer();
  server.putFrom("other", "k", "theirs");
  server.putFrom("other", "other", 1);
  server.intercept = () => "network"; // nothing pulled before our write
  const c = await client(server, { pullLimit: 1, backoffBase: 60000, backoffMax: 60000 });
  await until(() => c.status.lastError !== null, 2000, "the first pull to fail");
  const seen = [];
  c.on("change", (s) => seen.push(s.k));
  await c.mutate("put", { key: "k", value: "mine" });
  server.intercept = () => undefined;
  c.pullNow();
  await c.whenSettled(2000);
  // Pages confirm "theirs" before our later write; the shown value never goes back.
  assert.ok(seen.length > 1);
  assert.ok(seen.every((v) => v === "mine"), JSON.stringify(seen));
  assert.deepEqual(c.state, { k: "mine", other: 1 });
});

test("the queue, client id and sequence survive a restart of the client", async () => {
  globalThis.sessionStorage = memoryWebStorage();
  const server = new FakeServer();
  const storage = new MemoryStorage();
  server.intercept = (op) => (op === "push" ? "network" : undefined);
  const first = await client(server, { storage });
  await first.mutate("put", { key: "a", value: 1 });
  await first.mutate("put", { key: "b", value: 2 });
  await first.close();
  open.splice(open.indexOf(first), 1);

  const second = await client(server, { storage });
  assert.equal(second.clientId, first.clientId);
  assert.equal(second.pendingCount, 2);
  assert.equal(second.lastSeq, 2);
  assert.deepEqual(second.state, { a: 1, b: 2 });
  server.intercept = () => undefined;
  second.pullNow();
  await second.whenSettled(2000);
  await second.mutate("put", { key: "c", value: 3 });
  await second.whenSettled(2000);
  assert.deepEqual(server.kv, { a: 1, b: 2, c: 3 });
  assert.equal(server.log.length, 3);
  assert.deepEqual(
    server.requests.filter((r) => r.op === "push").flatMap((r) => r.body.mutations.map((m) => m.seq)).slice(-3),
    [1, 2, 3],
  );
});

/** A `Storage` of strings in a Map (localStorage / sessionStorage). */
function memoryWebStorage() {
  const items = new Map();
  return {
    items,
    get length() {
      return items.size;
    },
    key: (i) => [...items.keys()][i] ?? null,
    getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => items.set(k, String(v)),
    removeItem: (k) => items.delete(k),
  };
}

test("mutations whose record write never lands come back from the journal", async () => {
  globalThis.sessionStorage = memoryWebStorage();
  const journal = memoryWebStorage();
  const server = new FakeServer();
  server.intercept = () => "network";
  // Record writes that never commit, as when a reload tears the page down
  // before an IndexedDB transaction completes.
  const cut = { kind: "indexedDB", list: async () => [], put: () => new Promise(() => {}), remove: async () => {} };
  const first = await client(server, { storage: cut, journal });
  first.mutate("put", { key: "a", value: 1 });
  first.mutate("put", { key: "b", value: 2 });
  open.splice(open.indexOf(first), 1);
  first._closed = true;
  clearTimeout(first._timer);

  server.intercept = () => undefined;
  const storage = new MemoryStorage();
  const second = await client(server, { storage, journal });
  assert.equal(second.clientId, first.clientId, "the tab continues its client");
  assert.equal(second.pendingCount, 2);
  assert.deepEqual(second.state, { a: 1, b: 2 });
  await second.whenSettled(2000);
  assert.deepEqual(server.kv, { a: 1, b: 2 });
  assert.equal(server.log.length, 2, "each applied once");
  // The record now holds them: the journal is empty again.
  await second.flush();
  assert.equal(journal.items.size, 0);
  const [record] = await storage.list("s");
  assert.equal(record.lastSeq, 2);
});

test("the journal is trimmed as records land and skips what the record holds", async () => {
  globalThis.sessionStorage = memoryWebStorage();
  const journal = memoryWebStorage();
  const server = new FakeServer();
  server.intercept = () => "network";
  const storage = new MemoryStorage();
  const first = await client(server, { storage, journal });
  await first.mutate("put", { key: "a", value: 1 });
  assert.equal(journal.items.size, 0, "the record holds it: nothing left in the journal");
  await first.close();
  open.splice(open.indexOf(first), 1);
  const second = await client(server, { storage, journal });
  assert.equal(second.pendingCount, 1, "not doubled by the journal");
  assert.equal(second.lastSeq, 1);
});

/** A settled client on a fresh server whose pokes come over an open socket `ws`. */
async function settledWithSocket() {
  FakeWebSocket.instances = [];
  const server = new FakeServer();
  const live = new LiveClient({ url: "ws://server.test/ws", WebSocket: FakeWebSocket });
  FakeWebSocket.last().serverOpen();
  const c = await client(server, { live });
  await c.whenSettled(2000);
  return { server, live, c, ws: FakeWebSocket.last() };
}

test("a poke on sync:<scope> makes the client pull", async () => {
  const { server, live, c, ws } = await settledWithSocket();
  assert.deepEqual(ws.sent, [{ topic: "subscribe", data: { topic: "sync:s", history: true } }]);
  server.putFrom("other", "news", 1);
  assert.deepEqual(c.state, {}, "nothing pulls without a poke (the poll interval is long)");
  ws.serverSend("sync:s", { cursor: server.head });
  await until(() => c.state.news === 1, 2000, "the poked pull");
  // A poke for something already seen does not pull again.
  const pulls = server.requests.filter((r) => r.op === "pull").length;
  ws.serverSend("sync:s", { cursor: 1 });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(server.requests.filter((r) => r.op === "pull").length, pulls);
  live.close();
});

test("a poke that arrives while a pull is out, for a commit the pull missed, is not lost with its answer", async () => {
  const { server, live, c, ws } = await settledWithSocket();
  server.putFrom("other", "first", 1);
  let raced = false;
  server.intercept = (op, body) => {
    if (op !== "pull" || raced) return null;
    raced = true;
    // Answered from before the next commit, whose poke comes before the answer.
    const answer = server.handle(op, body);
    server.putFrom("other", "second", 2);
    ws.serverSend("sync:s", { cursor: server.head });
    return answer;
  };
  ws.serverSend("sync:s", { cursor: 1 });
  await until(() => c.state.second === 2, 2000, "a pull after the answer that missed the poked commit");
  assert.equal(c.state.first, 1);
  live.close();
});

test("a reconnect of the socket makes the client pull", async () => {
  FakeWebSocket.instances = [];
  const server = new FakeServer();
  const live = new LiveClient({ url: "ws://server.test/ws", WebSocket: FakeWebSocket, backoffBase: 5, backoffMax: 10 });
  FakeWebSocket.last().serverOpen();
  const c = await client(server, { live });
  await c.whenSettled(2000);
  FakeWebSocket.last().serverDrop();
  server.putFrom("other", "missed", 1); // its poke is lost: the socket is down
  await until(() => FakeWebSocket.instances.length === 2, 2000, "a reconnect attempt");
  FakeWebSocket.last().serverOpen();
  await until(() => c.state.missed === 1, 2000, "the pull after reconnecting");
  live.close();
});

test("with the socket down the client polls on the fallback interval", async () => {
  const server = new FakeServer();
  const c = await client(server, { fallbackPollInterval: 30 });
  await c.whenSettled(2000);
  server.putFrom("other", "later", 1);
  await until(() => c.state.later === 1, 2000, "a fallback poll");
});

test("localStorage records round-trip and are listed per scope", async () => {
  const { LocalStorageStorage } = await import("live-sync");
  const ls = memoryWebStorage();
  ls.setItem("unrelated", "x");
  ls.setItem("live-sync\u0000broken", "{not json");
  const storage = new LocalStorageStorage(ls);
  const server = new FakeServer();
  server.intercept = () => "network";
  const c = await client(server, { storage });
  await c.mutate("put", { key: "a", value: 1 });
  const [record] = await storage.list("s");
  assert.equal(record.clientId, c.clientId);
  assert.equal(record.lastSeq, 1);
  assert.deepEqual(record.pending.map((p) => p.mutation.args), [{ key: "a", value: 1 }]);
  assert.deepEqual(await storage.list("other"), []);
  await storage.remove(record.key);
  assert.deepEqual(await storage.list("s"), []);
  assert.equal(ls.getItem("unrelated"), "x");
});
