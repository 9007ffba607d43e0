// Unit tests of live-sync.js's LiveClient and backoff in node, with a
// WebSocket stand-in driven by the test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LiveClient, backoffDelay } from "live-sync";
import { FakeWebSocket, until } from "./fake-server.mjs";

test("backoff grows exponentially inside [d/2, d] and stops at the cap", () => {
  for (const r of [0, 0.5, 0.999]) {
    for (let n = 0; n < 12; n++) {
      const d = Math.min(8000, 100 * 2 ** n);
      const got = backoffDelay(n, 100, 8000, () => r);
      assert.ok(got >= d / 2 && got <= d, `attempt ${n}: ${got} not in [${d / 2}, ${d}]`);
    }
  }
  assert.equal(backoffDelay(50, 100, 8000, () => 0), 4000);
  assert.notEqual(backoffDelay(3, 100, 8000, () => 0.1), backoffDelay(3, 100, 8000, () => 0.9));
});

test("subscribe, publish and per-topic handlers over one socket", () => {
  FakeWebSocket.instances = [];
  const live = new LiveClient({ url: "ws://h/ws", token: "t 1", WebSocket: FakeWebSocket });
  const ws = FakeWebSocket.last();
  assert.equal(ws.url, "ws://h/ws?token=t%201");
  const got = [];
  live.subscribe("chat", (d, t) => got.push([t, d]));
  assert.equal(live.publish("chat", "early"), false, "nothing is sent before the socket opens");
  ws.serverOpen();
  assert.equal(live.state, "open");
  assert.deepEqual(ws.sent, [{ topic: "subscribe", data: { topic: "chat", history: true } }]);
  assert.equal(live.publish("chat", { hi: 1 }), true);
  assert.deepEqual(ws.sent[1], { topic: "publish", data: { topic: "chat", data: { hi: 1 } } });
  ws.serverSend("chat", "hello");
  ws.serverSend("other", "ignored");
  assert.deepEqual(got, [["chat", "hello"]]);
  const errors = [];
  live.on("error", (e) => errors.push(e.code));
  ws.serverSend("error", { code: "forbidden", message: "no" });
  assert.deepEqual(errors, ["forbidden"]);
  const off = live.subscribe("news", () => {});
  assert.deepEqual(ws.sent[2], { topic: "subscribe", data: { topic: "news", history: true } });
  off();
  assert.deepEqual(ws.sent[3], { topic: "unsubscribe", data: { topic: "news" } });
  ws.onmessage({ data: "not json" }); // ignored, no throw
  live.close();
  assert.equal(live.state, "closed");
});

test("after a drop the client reconnects with backoff and resubscribes every topic", async () => {
  FakeWebSocket.instances = [];
  const states = [];
  const live = new LiveClient({ url: "ws://h/ws", WebSocket: FakeWebSocket, backoffBase: 5, backoffMax: 20 });
  live.on("state", (s) => states.push(s));
  live.subscribe("a", () => {});
  live.subscribe("b", () => {});
  FakeWebSocket.last().serverOpen();
  FakeWebSocket.last().serverDrop();
  assert.equal(live.state, "reconnecting");
  // The next attempt fails too: the delay grows, the client keeps trying.
  await until(() => FakeWebSocket.instances.length === 2, 1000, "attempt 2");
  FakeWebSocket.last().serverDrop();
  await until(() => FakeWebSocket.instances.length === 3, 1000, "attempt 3");
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  assert.deepEqual(
    ws.sent.map((m) => m.data.topic),
    ["a", "b"],
  );
  assert.deepEqual(states, ["open", "reconnecting", "open"]);
  live.close();
  // No reconnect after a deliberate close.
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(FakeWebSocket.instances.length, 3);
});
