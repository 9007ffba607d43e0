// An in-process model of the sync server (built-in key-value app) for unit
// tests of live-sync.js in node: the protocol's rules (per-client contiguous
// sequences with stored results, dense cursors, pages, trim -> 410, pokes)
// without sockets, plus hooks that inject the faults a network makes.

export class FakeServer {
  constructor() {
    /** @type {{cursor: number, scope: string, time: number, data: any}[]} */
    this.log = [];
    /** @type {Record<string, unknown>} */
    this.kv = {};
    /** @type {Map<string, {last: number, results: Map<number, any>}>} */
    this.clients = new Map();
    this.trimmedBefore = 0;
    /** Every request seen: {op, body}. */
    this.requests = [];
    /**
     * Called before a request is handled: return "network" to fail it without
     * effect, "lose-answer" to apply it but fail the answer, an object
     * {status, json} to answer that instead, or nothing to handle it.
     * @type {(op: string, body: any) => any}
     */
    this.intercept = () => undefined;
    /** Called with the new head after every push that wrote something. */
    this.onPoke = (_cursor) => {};
    this.fetch = this.fetch.bind(this);
  }

  get head() {
    return this.log.length ? this.log[this.log.length - 1].cursor : this.trimmedBefore ? this.trimmedBefore - 1 : 0;
  }

  /** Drops log entries below `before`, like the server's trim. */
  trim(before) {
    this.log = this.log.filter((c) => c.cursor >= before);
    this.trimmedBefore = Math.max(this.trimmedBefore, before);
  }

  /** A fetch() for the client under test. */
  async fetch(url, init) {
    const op = new URL(url).pathname.split("/").pop();
    const body = JSON.parse(init.body);
    this.requests.push({ op, body });
    await Promise.resolve();
    const fault = this.intercept(op, body);
    if (fault === "network") throw new TypeError("fetch failed");
    const answer = fault && typeof fault === "object" ? fault : this.handle(op, body);
    if (fault === "lose-answer") throw new TypeError("connection reset");
    return { status: answer.status, json: async () => answer.json };
  }

  handle(op, body) {
    if (op === "push") return this.push(body.mutations);
    if (op === "pull") return this.pull(body);
    if (op === "snapshot") {
      const c = this.clients.get(body.client_id);
      return { status: 200, json: { data: { ...this.kv }, cursor: this.head, client_seq: c ? c.last : 0 } };
    }
    return { status: 404, json: { code: "not_found", error: op } };
  }

  push(mutations) {
    const results = [];
    const before = this.head;
    for (const m of mutations) {
      let c = this.clients.get(m.client_id);
      if (!c) {
        c = { last: 0, results: new Map() };
        this.clients.set(m.client_id, c);
      }
      if (m.seq <= c.last) {
        results.push(c.results.get(m.seq));
        continue;
      }
      if (m.seq > c.last + 1) {
        results.push({ ok: false, code: "conflict", error: "sequence gap" });
        continue;
      }
      const r = this.apply(m);
      c.last = m.seq;
      c.results.set(m.seq, r);
      results.push(r);
    }
    if (this.head > before) this.onPoke(this.head);
    return { status: 200, json: { results } };
  }

  apply(m) {
    const write = (data) => {
      const cursor = this.head + 1;
      this.log.push({ cursor, scope: m.scope, time: 0, data });
      if (data.op === "put") this.kv[data.key] = data.value;
      else delete this.kv[data.key];
      return cursor;
    };
    if (m.name === "put") return { ok: true, cursor: write({ op: "put", key: m.args.key, value: m.args.value }) };
    if (m.name === "delete") {
      if (!(m.args.key in this.kv)) return { ok: true, cursor: this.head };
      return { ok: true, cursor: write({ op: "del", key: m.args.key }) };
    }
    return { ok: false, code: "invalid_mutation", error: `unknown mutator ${m.name}` };
  }

  pull({ cursor = 0, limit = 100, client_id }) {
    if (this.trimmedBefore > 0 && cursor + 1 < this.trimmedBefore) {
      return { status: 410, json: { code: "cursor_too_old", error: "trimmed" } };
    }
    const rest = this.log.filter((c) => c.cursor > cursor);
    const page = rest.slice(0, limit || 100);
    const hasMore = page.length < rest.length;
    const json = { changes: page, has_more: hasMore, next_cursor: page.length ? page[page.length - 1].cursor : cursor };
    const c = this.clients.get(client_id);
    if (!hasMore && c) json.client_seq = c.last;
    return { status: 200, json };
  }

  /** Another client's put, straight into the server. */
  putFrom(clientId, key, value) {
    const c = this.clients.get(clientId) || { last: 0 };
    return this.push([{ id: `${clientId}:${c.last + 1}`, scope: "s", name: "put", args: { key, value }, client_id: clientId, seq: c.last + 1 }]);
  }
}

/** A WebSocket stand-in the tests drive by hand. */
export class FakeWebSocket {
  static instances = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeWebSocket.instances.push(this);
  }
  send(text) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000, reason = "") {
    if (this.readyState === 3) return;
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }
  // ---- the server's side ----
  serverOpen() {
    this.readyState = 1;
    this.onopen?.({});
  }
  serverSend(topic, data) {
    this.onmessage?.({ data: JSON.stringify({ topic, data }) });
  }
  /** Sends any JSON value as one text frame (extra envelope fields included). */
  serverFrame(value) {
    this.onmessage?.({ data: JSON.stringify(value) });
  }
  serverDrop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
  static last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }
}

/** Resolves when `cond()` holds, polling; rejects after `ms`. */
export async function until(cond, ms = 3000, what = "condition") {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
