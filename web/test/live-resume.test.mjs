// Unit tests of LiveClient's resume on topics with history: positions from
// the `subscribed` reply and the numbered deliveries, `since` on every
// resubscribe, duplicates dropped, `recoveryfailed`, `resume: false`, and
// the jittered reconnect.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LiveClient, reconnectDelay } from "live-sync";
import { FakeWebSocket, until } from "./fake-server.mjs";

const subscribed = (topic, epoch, offset, recovered) => ({
  topic: "subscribed",
  data: { topic, epoch, offset, recovered },
});
const numbered = (topic, data, offset) => ({ topic, data, offset });

/** A client on a fake socket that reconnects at once (jitter drawn as 0). */
function client(options = {}) {
  FakeWebSocket.instances = [];
  const live = new LiveClient({ url: "ws://h/ws", WebSocket: FakeWebSocket, random: () => 0, ...options });
  const events = [];
  live.on("subscribed", (e) => events.push(["subscribed", e]));
  live.on("recoveryfailed", (e) => events.push(["recoveryfailed", e]));
  return { live, events };
}

async function reconnect(live) {
  const n = FakeWebSocket.instances.length;
  FakeWebSocket.last().serverDrop();
  await until(() => FakeWebSocket.instances.length === n + 1, 2000, "a new socket");
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  assert.equal(live.state, "open");
  return ws;
}

test("the position follows the reply and each delivery; duplicates are dropped", () => {
  const { live, events } = client();
  const got = [];
  live.subscribe("chat", (d) => got.push(d));
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  assert.deepEqual(ws.sent, [{ topic: "subscribe", data: { topic: "chat", history: true } }]);
  assert.equal(live.position("chat"), null, "no position before the reply");
  ws.serverFrame(subscribed("chat", "E1", 5, false));
  assert.deepEqual(live.position("chat"), { epoch: "E1", offset: 5 });
  assert.deepEqual(events, [["subscribed", { topic: "chat", epoch: "E1", offset: 5, recovered: false }]]);
  ws.serverFrame(numbered("chat", "m6", 6));
  ws.serverFrame(numbered("chat", "m7", 7));
  ws.serverFrame(numbered("chat", "m7 again", 7));
  ws.serverFrame(numbered("chat", "m5 again", 5));
  assert.deepEqual(got, ["m6", "m7"]);
  assert.deepEqual(live.position("chat"), { epoch: "E1", offset: 7 });
  // Frames without an offset (a topic without history, a direct message) pass.
  ws.serverSend("chat", "plain");
  assert.deepEqual(got, ["m6", "m7", "plain"]);
  // A position is a copy: changing it changes nothing inside.
  live.position("chat").offset = 0;
  assert.deepEqual(live.position("chat"), { epoch: "E1", offset: 7 });
  live.close();
});

test("after a reconnect every subscription resumes with since and gets what it missed once", async () => {
  const { live, events } = client();
  const got = [];
  live.subscribe("chat", (d) => got.push(d));
  live.subscribe("feed", () => {});
  let ws = FakeWebSocket.last();
  ws.serverOpen();
  ws.serverFrame(subscribed("chat", "E1", 2, false));
  ws.serverFrame(subscribed("feed", "F1", 10, false));
  ws.serverFrame(numbered("chat", "m3", 3));
  ws = await reconnect(live);
  assert.deepEqual(ws.sent, [
    { topic: "subscribe", data: { topic: "chat", history: true, since: { epoch: "E1", offset: 3 } } },
    { topic: "subscribe", data: { topic: "feed", history: true, since: { epoch: "F1", offset: 10 } } },
  ]);
  // Recovered: the reply names the head (5), the replay follows.
  ws.serverFrame(subscribed("chat", "E1", 5, true));
  assert.deepEqual(live.position("chat"), { epoch: "E1", offset: 3 }, "the replay is still to come");
  ws.serverFrame(numbered("chat", "m4", 4));
  ws.serverFrame(numbered("chat", "m5", 5));
  ws.serverFrame(numbered("chat", "m5", 5));
  ws.serverFrame(numbered("chat", "m6", 6));
  assert.deepEqual(got, ["m3", "m4", "m5", "m6"]);
  assert.deepEqual(live.position("chat"), { epoch: "E1", offset: 6 });
  assert.ok(!events.some(([name]) => name === "recoveryfailed"));
  assert.deepEqual(events.at(-1), ["subscribed", { topic: "chat", epoch: "E1", offset: 5, recovered: true }]);
  live.close();
});

test("a position that is gone is reported as recoveryfailed and the client goes on from the reply", async () => {
  const { live, events } = client();
  const got = [];
  live.subscribe("chat", (d) => got.push(d));
  let ws = FakeWebSocket.last();
  ws.serverOpen();
  ws.serverFrame(subscribed("chat", "E1", 0, false));
  ws.serverFrame(numbered("chat", "a", 1));
  ws.serverFrame(numbered("chat", "b", 2));
  ws = await reconnect(live);
  assert.deepEqual(ws.sent[0].data.since, { epoch: "E1", offset: 2 });
  // The server restarted: a new epoch, numbering from 1 again.
  ws.serverFrame(subscribed("chat", "E2", 1, false));
  assert.deepEqual(events.at(-1), [
    "recoveryfailed",
    { topic: "chat", epoch: "E2", offset: 1, since: { epoch: "E1", offset: 2 } },
  ]);
  assert.deepEqual(live.position("chat"), { epoch: "E2", offset: 1 });
  ws.serverFrame(numbered("chat", "c", 2));
  ws.serverFrame(numbered("chat", "old", 1));
  assert.deepEqual(got, ["a", "b", "c"]);
  live.close();
});

test("a topic without history is subscribed with history:true but never with since", async () => {
  const { live, events } = client();
  live.subscribe("plain", () => {});
  let ws = FakeWebSocket.last();
  ws.serverOpen();
  ws.serverFrame(subscribed("plain", "", 0, false));
  assert.equal(live.position("plain"), null);
  ws = await reconnect(live);
  assert.deepEqual(ws.sent, [{ topic: "subscribe", data: { topic: "plain", history: true } }]);
  ws.serverFrame(subscribed("plain", "", 0, false));
  assert.ok(!events.some(([name]) => name === "recoveryfailed"));
  live.close();
});

test("subscribe with since starts from a stored position", () => {
  const { live, events } = client();
  const got = [];
  live.subscribe("chat", (d) => got.push(d), { since: { epoch: "E1", offset: 40 } });
  // A second handler's since changes nothing: the topic is already subscribed.
  live.subscribe("chat", () => {}, { since: { epoch: "X", offset: 1 } });
  // Malformed positions are ignored, never thrown on.
  for (const since of [{ epoch: "", offset: 1 }, { epoch: "E", offset: -1 }, { epoch: 1, offset: 1 }, "x", null]) {
    live.subscribe(`bad:${JSON.stringify(since)}`, () => {}, { since });
  }
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  assert.deepEqual(ws.sent[0], {
    topic: "subscribe",
    data: { topic: "chat", history: true, since: { epoch: "E1", offset: 40 } },
  });
  for (const m of ws.sent.slice(1)) assert.equal(m.data.since, undefined, JSON.stringify(m));
  ws.serverFrame(subscribed("chat", "E1", 42, true));
  ws.serverFrame(numbered("chat", 41, 41));
  ws.serverFrame(numbered("chat", 42, 42));
  assert.deepEqual(got, [41, 42]);
  assert.deepEqual(events, [["subscribed", { topic: "chat", epoch: "E1", offset: 42, recovered: true }]]);
  live.close();
});

test("an unsubscribe and resubscribe before the reply: only the latest reply counts", () => {
  const { live, events } = client();
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  const off = live.subscribe("chat", () => {});
  off();
  live.subscribe("chat", () => {});
  assert.deepEqual(
    ws.sent.map((m) => m.topic),
    ["subscribe", "unsubscribe", "subscribe"],
  );
  // The first subscribe's reply arrives while the second is in force: ignored.
  ws.serverFrame(subscribed("chat", "E1", 3, false));
  assert.equal(live.position("chat"), null);
  assert.deepEqual(events, []);
  ws.serverFrame(subscribed("chat", "E1", 4, false));
  assert.deepEqual(live.position("chat"), { epoch: "E1", offset: 4 });
  assert.equal(events.length, 1);
  // A reply for a topic dropped before its reply came, or never asked for.
  const off2 = live.subscribe("gone", () => {});
  off2();
  ws.serverFrame(subscribed("gone", "G", 1, false));
  ws.serverFrame(subscribed("never", "N", 1, false));
  ws.serverFrame({ topic: "subscribed", data: "garbage" });
  ws.serverFrame({ topic: "subscribed" });
  assert.equal(live.position("gone"), null);
  assert.equal(live.position("never"), null);
  assert.equal(events.length, 1);
  live.close();
});

test("a refused subscribe owes no reply: the next subscribe's reply is taken", () => {
  const { live, events } = client();
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  const off = live.subscribe("room", () => {});
  ws.serverSend("error", { code: "forbidden", message: "not allowed to subscribe to room" });
  off();
  live.subscribe("room", () => {});
  ws.serverFrame(subscribed("room", "R", 2, false));
  assert.deepEqual(live.position("room"), { epoch: "R", offset: 2 });
  assert.equal(events.length, 1);
  // Other errors change nothing, and odd ones never throw.
  ws.serverSend("error", { code: "forbidden", message: "not allowed to publish on room" });
  ws.serverSend("error", null);
  ws.serverSend("error", { code: "forbidden", message: 7 });
  live.close();
});

test("resume: false sends plain subscribes and tracks nothing", async () => {
  const { live, events } = client({ resume: false });
  const got = [];
  live.subscribe("chat", (d) => got.push(d), { since: { epoch: "E1", offset: 1 } });
  let ws = FakeWebSocket.last();
  ws.serverOpen();
  assert.deepEqual(ws.sent, [{ topic: "subscribe", data: { topic: "chat" } }]);
  ws.serverFrame(subscribed("chat", "E1", 1, false));
  ws.serverFrame(numbered("chat", "x", 2));
  ws.serverFrame(numbered("chat", "x", 2));
  assert.deepEqual(got, ["x", "x"], "no duplicate dropping without resume");
  assert.equal(live.position("chat"), null);
  assert.deepEqual(events, []);
  ws = await reconnect(live);
  assert.deepEqual(ws.sent, [{ topic: "subscribe", data: { topic: "chat" } }]);
  live.close();
});

test("reconnect delays are full jitter: anywhere in [0, d], the first within the base window", () => {
  for (const r of [0, 0.25, 0.5, 0.999]) {
    for (let n = 0; n < 12; n++) {
      const d = Math.min(8000, 1000 * 2 ** n);
      const got = reconnectDelay(n, 1000, 8000, () => r);
      assert.ok(got >= 0 && got <= d, `attempt ${n}: ${got} not in [0, ${d}]`);
      assert.equal(got, d * r);
    }
  }
  assert.equal(reconnectDelay(0, 1000, 8000, () => 0), 0);
  assert.ok(reconnectDelay(0, 1000, 8000, () => 0.999) <= 1000);
  assert.equal(reconnectDelay(60, 1000, 8000, () => 0.5), 4000, "capped");
  // A generator out of range never produces a negative or huge delay.
  for (const bad of [() => -1, () => 2, () => NaN, () => "x"]) {
    const got = reconnectDelay(3, 1000, 8000, bad);
    assert.ok(got >= 0 && got <= 8000, String(got));
  }
});

test("the client draws every reconnect delay, the online event's too, from its generator", async () => {
  const target = new EventTarget();
  const saved = [globalThis.addEventListener, globalThis.removeEventListener];
  globalThis.addEventListener = target.addEventListener.bind(target);
  globalThis.removeEventListener = target.removeEventListener.bind(target);
  try {
    const draws = [];
    // The first draw puts the retry far away; the online event draws again.
    const values = [0.5, 0];
    const { live } = client({
      backoffBase: 1_000_000,
      backoffMax: 1_000_000,
      random: () => {
        const v = values.shift() ?? 0;
        draws.push(v);
        return v;
      },
    });
    FakeWebSocket.last().serverOpen();
    FakeWebSocket.last().serverDrop();
    assert.equal(live.state, "reconnecting");
    assert.deepEqual(draws, [0.5]);
    assert.equal(FakeWebSocket.instances.length, 1);
    target.dispatchEvent(new Event("online"));
    assert.deepEqual(draws, [0.5, 0], "the online event's retry is jittered too");
    await until(() => FakeWebSocket.instances.length === 2, 2000, "the retry after online");
    live.close();
  } finally {
    [globalThis.addEventListener, globalThis.removeEventListener] = saved;
  }
});
