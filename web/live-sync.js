// live-sync.js: the browser client of the live + sync server.
//
// One dependency-free ES module, usable as is (no build step):
//
//   import { LiveClient, SyncClient } from "/live-sync.js";
//   const live = new LiveClient();                 // ws(s)://<this host>/ws
//   const sync = await SyncClient.open({ scope: "shared", live });
//   sync.subscribe((state) => render(state));      // optimistic key -> value
//   await sync.mutate("put", { key: "a", value: 1 });
//
// `LiveClient` is topic pub/sub over one WebSocket that comes back by itself
// (exponential backoff with full jitter) and resubscribes its topics; on a
// topic with history it remembers the last position read and resumes from
// it, so nothing is missed or delivered twice across a reconnect. `SyncClient`
// mirrors one sync scope of the built-in key-value app and follows the
// algorithm of sync-core's Rust `Replica` step for step: a pending queue of
// mutations carrying `client_id` and a contiguous `seq`, applied optimistically
// and rebased on every server change; one request in flight at a time, push
// before pull, pull pages until `has_more` is false, a 410 answered with a
// snapshot; pulls on a poke, on reconnect and on a timer. The queue, the
// sequence, the cursor and the confirmed state are stored (IndexedDB, else
// localStorage), so a reload or an offline period loses nothing.
//
// Types: JSDoc here, declarations in live-sync.d.ts beside this file.

/** Default path of the WebSocket endpoint. */
export const DEFAULT_WS_PATH = "/ws";
/** Default prefix of the sync HTTP endpoints. */
export const DEFAULT_SYNC_PREFIX = "/_sync";

// ---------------------------------------------------------------------------
// Small shared pieces
// ---------------------------------------------------------------------------

/**
 * Delay before retry number `attempt` (0-based): a uniformly random point in
 * `[d/2, d]` with `d = min(max, base * 2^attempt)` ("equal jitter"), the same
 * rule as sync-core's backoff, so many clients coming back after an outage
 * spread out instead of arriving together. The sync client's retries use it;
 * the live socket's reconnects use `reconnectDelay` (full jitter).
 * @param {number} attempt
 * @param {number} base milliseconds
 * @param {number} max milliseconds
 * @param {() => number} [random] a generator in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, base, max, random = Math.random) {
  const d = Math.min(Math.max(max, base), base * 2 ** Math.min(attempt, 20));
  return d / 2 + random() * (d / 2);
}

/**
 * Delay before reconnect number `attempt` (0-based) of a live connection: a
 * uniformly random point in `[0, d]` with `d = min(max, base * 2^attempt)`
 * ("full jitter"). Even the first retry lands anywhere in `[0, base]`, so the
 * clients of a restarted server come back spread over that window instead of
 * all at the same instant.
 * @param {number} attempt
 * @param {number} base milliseconds
 * @param {number} max milliseconds
 * @param {() => number} [random] a generator in [0, 1)
 * @returns {number} milliseconds
 */
export function reconnectDelay(attempt, base, max, random = Math.random) {
  const d = Math.min(Math.max(max, base), base * 2 ** Math.min(attempt, 20));
  const r = Number(random());
  return d * (r >= 0 && r < 1 ? r : 0);
}

/**
 * A stream position `{epoch, offset}` when `value` is one (a non-empty epoch
 * string and a non-negative integer offset), else null.
 * @param {any} value
 * @returns {{epoch: string, offset: number} | null}
 */
function readPosition(value) {
  if (!value || typeof value !== "object") return null;
  const { epoch, offset } = value;
  if (typeof epoch !== "string" || epoch === "") return null;
  if (!Number.isSafeInteger(offset) || offset < 0) return null;
  return { epoch, offset };
}

/** A minimal event emitter: `on(name, fn)` returns the function that removes it. */
class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this._handlers = new Map();
  }

  /**
   * @param {string} name
   * @param {Function} fn
   * @returns {() => void}
   */
  on(name, fn) {
    let set = this._handlers.get(name);
    if (!set) {
      set = new Set();
      this._handlers.set(name, set);
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  /**
   * @param {string} name
   * @param {...unknown} args
   */
  _emit(name, ...args) {
    const set = this._handlers.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (e) {
        // One faulty handler must not stop the others or the client.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}

function randomId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") {
    return globalThis.crypto.randomUUID();
  }
  let s = "";
  for (let i = 0; i < 32; i++) s += Math.floor(Math.random() * 16).toString(16);
  return s;
}

/** @param {string | (() => string | undefined) | undefined} token */
function readToken(token) {
  return typeof token === "function" ? token() : token;
}

/**
 * The `exp` claim of a JWT (seconds since the epoch), or null when the token
 * is not a readable JWT. The signature is the server's business, not ours.
 * @param {string} token
 */
export function tokenExpiry(token) {
  try {
    const part = token.split(".")[1];
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(atob(b64 + "===".slice((b64.length + 3) % 4)));
    return typeof json.exp === "number" ? json.exp : null;
  } catch (e) {
    return null;
  }
}

/**
 * Where a client's token comes from: a fixed token, a function returning the
 * current one, or `getToken`, an async callback asked for a fresh token when
 * there is none, when the current one nears expiry, and after the server
 * said it expired. Concurrent asks share one call.
 */
class TokenSource {
  /**
   * @param {string | (() => string | undefined) | undefined} token
   * @param {(() => string | Promise<string>) | undefined} getToken
   * @param {() => number} now milliseconds since the epoch
   */
  constructor(token, getToken, now = Date.now) {
    this._token = token;
    this._getToken = getToken;
    this._now = now;
    /** @type {string | null} */
    this._current = null;
    /** @type {Promise<string | undefined> | null} */
    this._asking = null;
  }

  /** True when tokens come from `getToken` (and can be refreshed). */
  get refreshable() {
    return typeof this._getToken === "function";
  }

  /** The token to send now, asking `getToken` if there is none or it expired. */
  async get() {
    if (!this.refreshable) return readToken(this._token);
    const exp = this._current ? tokenExpiry(this._current) : null;
    if (this._current && (exp === null || exp * 1000 > this._now())) return this._current;
    return this.fresh();
  }

  /** Asks `getToken` for a new token (one call at a time). */
  fresh() {
    if (!this.refreshable) return Promise.resolve(readToken(this._token));
    if (!this._asking) {
      this._asking = Promise.resolve()
        .then(() => this._getToken())
        .then(
          (token) => {
            this._asking = null;
            this._current = token || null;
            return token || undefined;
          },
          (err) => {
            this._asking = null;
            throw err;
          },
        );
    }
    return this._asking;
  }

  /** Forgets the current token (the server refused it). */
  invalidate() {
    this._current = null;
  }

  /**
   * Milliseconds until the current token should be refreshed: a tenth of
   * its remaining life before `exp`, at least 5 s and at most 60 s early;
   * null when it has no readable expiry.
   */
  refreshIn() {
    const exp = this._current ? tokenExpiry(this._current) : null;
    if (exp === null) return null;
    const left = exp * 1000 - this._now();
    const early = Math.min(60000, Math.max(5000, left / 10));
    return Math.max(0, left - early);
  }
}

function defaultOrigin() {
  return globalThis.location ? globalThis.location.origin : "http://127.0.0.1:8080";
}

// ---------------------------------------------------------------------------
// Live: topic pub/sub over one self-healing WebSocket
// ---------------------------------------------------------------------------

/**
 * @typedef {"idle" | "connecting" | "open" | "reconnecting" | "closed"} LiveState
 */

/**
 * @typedef {object} LiveOptions
 * @property {string} [url] WebSocket URL; default `ws(s)://<page host>/ws`.
 * @property {string | (() => string | undefined)} [token] sent as `?token=`
 *   (browsers cannot set headers on a WebSocket upgrade).
 * @property {() => string | Promise<string>} [getToken] returns a fresh
 *   token: called before connecting when there is none (or it expired), shortly
 *   before it expires (the new one is sent in-band as
 *   `{"topic":"refresh","data":{"token":T}}`, without reconnecting) and when
 *   the server says `token_expired`. Takes precedence over `token`.
 * @property {number} [backoffBase] first reconnect delay in ms (default 250).
 * @property {number} [backoffMax] longest reconnect delay in ms (default 10000).
 * @property {boolean} [autoConnect] connect at once (default true).
 * @property {typeof WebSocket} [WebSocket] implementation (default the global).
 */

/**
 * Topic pub/sub over one WebSocket speaking `{"topic","data"}` envelopes.
 *
 * Events (`on(name, fn)`): `state` (LiveState), `open`, `close`
 * ({code, reason}), `message` (topic, data) for every frame, `error`
 * ({code, message}) for the server's error frames.
 */
export class LiveClient extends Emitter {
  /** @param {LiveOptions} [options] */
  constructor(options = {}) {
    super();
    const origin = defaultOrigin().replace(/^http/, "ws");
    this.url = options.url || origin + DEFAULT_WS_PATH;
    this.token = options.token;
    this._tokens = new TokenSource(options.token, options.getToken);
    this._refreshTimer = null;
    this._opening = false;
    this.backoffBase = options.backoffBase ?? 1000;
    this.backoffMax = options.backoffMax ?? 10000;
    this.resume = options.resume !== false;
    this._random = options.random || Math.random;
    /** Last position read per subscribed topic with history. */
    /** @type {Map<string, {epoch: string, offset: number}>} */
    this._positions = new Map();
    /** Subscribe replies still owed on this socket, per topic. */
    /** @type {Map<string, number>} */
    this._awaiting = new Map();
    /** The `since` of the latest subscribe of each topic on this socket. */
    /** @type {Map<string, {epoch: string, offset: number} | null>} */
    this._asked = new Map();
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    /** @type {LiveState} */
    this.state = "idle";
    /** @type {WebSocket | null} */
    this._ws = null;
    /** @type {Map<string, Set<(data: unknown, topic: string) => void>>} */
    this._topics = new Map();
    this._attempt = 0;
    this._timer = null;
    this._closed = false;
    // The network is back: try again soon, but at a random point of the
    // first window, since every client of the page's network heard it too.
    this._onOnline = () => {
      if (this.state !== "reconnecting" || this._closed || this._ws || this._opening) return;
      this._attempt = 0;
      this._scheduleReconnect();
    };
    // A socket can outlive the network by minutes (nothing tells the browser
    // the path is gone); when the browser knows it is offline, believe it.
    this._onOffline = () => {
      const ws = this._ws;
      if (!ws || this._closed) return;
      this._ws = null;
      try {
        ws.close(1000, "offline");
      } catch (e) {
        // Already closing.
      }
      this._emit("close", { code: 1006, reason: "offline" });
      this._scheduleReconnect();
    };
    if (globalThis.addEventListener) {
      globalThis.addEventListener("online", this._onOnline);
      globalThis.addEventListener("offline", this._onOffline);
    }
    if (options.autoConnect !== false) this.connect();
  }

  /** True while the socket is open. */
  get connected() {
    return this.state === "open";
  }

  /** Opens the socket (again); a no-op while connecting or open. */
  connect() {
    this._closed = false;
    if (this._ws || this._opening) return;
    clearTimeout(this._timer);
    this._timer = null;
    this._setState(this._attempt === 0 ? "connecting" : "reconnecting");
    if (!this._tokens.refreshable) {
      this._open(readToken(this.token));
      return;
    }
    this._opening = true;
    this._tokens.get().then(
      (token) => {
        this._opening = false;
        if (!this._closed && !this._ws) this._open(token);
      },
      () => {
        this._opening = false;
        if (!this._closed) this._scheduleReconnect();
      },
    );
  }

  _open(token) {
    let url = this.url;
    if (token) url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
    let ws;
    try {
      ws = new this._WebSocket(url);
    } catch (e) {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      if (this._ws !== ws) return;
      this._attempt = 0;
      this._awaiting = new Map();
      this._asked = new Map();
      for (const topic of this._topics.keys()) this._sendSubscribe(topic);
      this._setState("open");
      this._emit("open");
      this._armRefresh();
    };
    ws.onmessage = (ev) => {
      if (this._ws !== ws) return;
      this._onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._ws = null;
      clearTimeout(this._refreshTimer);
      this._refreshTimer = null;
      // 4001: the token expired; 1008 may be a refused one. Ask for another.
      if (ev.code === 4001 || ev.code === 1008) this._tokens.invalidate();
      this._emit("close", { code: ev.code, reason: ev.reason });
      if (this._closed) {
        this._setState("closed");
      } else {
        this._scheduleReconnect();
      }
    };
    ws.onerror = () => {
      // A close event always follows; reconnecting happens there.
    };
  }

  /**
   * Gets a fresh token from `getToken` and sends it in-band, without
   * reconnecting; the server answers `{"topic":"refresh","data":{"ok":true}}`
   * (event `refresh`) or an error frame. Done by itself before expiry.
   * @returns {Promise<boolean>} whether a token was sent
   */
  async refreshToken() {
    if (!this._tokens.refreshable) return false;
    let token;
    try {
      token = await this._tokens.fresh();
    } catch (e) {
      this._armRefresh(5000);
      return false;
    }
    if (!token || !this.connected) return false;
    const sent = this._sendRaw("refresh", { token });
    // At least 5 s apart, even if getToken keeps returning a token near expiry.
    const next = this._tokens.refreshIn();
    if (next !== null) this._armRefresh(Math.max(next, 5000));
    return sent;
  }

  _armRefresh(delay) {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    if (!this._tokens.refreshable || !this.connected) return;
    const wait = delay ?? this._tokens.refreshIn();
    if (wait === null) return;
    // Timers past 2^31 ms fire at once; tokens that long-lived wait in steps.
    this._refreshTimer = setTimeout(() => {
      this._refreshTimer = null;
      if (delay === undefined && this._tokens.refreshIn() > 0) this._armRefresh();
      else this.refreshToken();
    }, Math.min(wait, 2 ** 31 - 1));
  }

  /** Closes the socket for good (until `connect()` is called again). */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    this._timer = null;
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, "client closed");
    this._setState("closed");
  }

  /**
   * Calls `handler(data, topic)` for every message on `topic`, subscribing on
   * the server if this is the topic's first handler. Returns the function that
   * removes this handler again.
   *
   * Unless `resume` is off, the subscribe asks for the topic's position
   * (`"history":true`) and, once one is known, names it (`since`), on this
   * and on every later connection: a topic with history resumes where the
   * client left it. `options.since` (a position saved from `position(topic)`)
   * starts the first handler of a topic from there.
   * @param {string} topic
   * @param {(data: any, topic: string) => void} handler
   * @param {{since?: {epoch: string, offset: number}}} [options]
   * @returns {() => void}
   */
  subscribe(topic, handler, options = {}) {
    let set = this._topics.get(topic);
    if (!set) {
      set = new Set();
      this._topics.set(topic, set);
      const since = readPosition(options && options.since);
      if (since && this.resume) this._positions.set(topic, since);
      if (this.connected) this._sendSubscribe(topic);
    }
    set.add(handler);
    return () => this.unsubscribe(topic, handler);
  }

  /**
   * Removes `handler` from `topic` (every handler when omitted); the server
   * subscription ends with the last one.
   * @param {string} topic
   * @param {(data: any, topic: string) => void} [handler]
   */
  unsubscribe(topic, handler) {
    const set = this._topics.get(topic);
    if (!set) return;
    if (handler) set.delete(handler);
    else set.clear();
    if (set.size === 0) {
      this._topics.delete(topic);
      this._positions.delete(topic);
      if (this.connected) this._sendRaw("unsubscribe", { topic });
    }
  }

  /**
   * The last position read on `topic` (`{epoch, offset}`), or null when the
   * topic has no history, is not subscribed or has no answer yet. Saved, it
   * can start a later `subscribe(topic, fn, {since})` where this one ended.
   * @param {string} topic
   * @returns {{epoch: string, offset: number} | null}
   */
  position(topic) {
    const p = this._positions.get(topic);
    return p ? { epoch: p.epoch, offset: p.offset } : null;
  }

  /**
   * Publishes `data` to every subscriber of `topic`. Live messages are not
   * queued: returns false (and sends nothing) while the socket is down.
   * @param {string} topic
   * @param {unknown} data
   * @returns {boolean}
   */
  publish(topic, data) {
    return this.send("publish", { topic, data });
  }

  /**
   * Sends a raw envelope (an application message handled by the server's
   * on-message hook). Returns false while the socket is down.
   * @param {string} topic
   * @param {unknown} data
   * @returns {boolean}
   */
  send(topic, data) {
    if (!this.connected) return false;
    return this._sendRaw(topic, data);
  }

  /** Topics with at least one handler. */
  topics() {
    return [...this._topics.keys()];
  }

  _sendRaw(topic, data) {
    try {
      this._ws.send(JSON.stringify({ topic, data }));
      return true;
    } catch (e) {
      return false;
    }
  }

  /** Sends the subscribe of `topic` (with its position when resuming). */
  _sendSubscribe(topic) {
    if (!this.resume) return this._sendRaw("subscribe", { topic });
    const data = { topic, history: true };
    const since = this._positions.get(topic);
    if (since) data.since = { epoch: since.epoch, offset: since.offset };
    if (!this._sendRaw("subscribe", data)) return false;
    // Replies come in the order of the subscribes: only the last one
    // answers the subscription in force.
    this._awaiting.set(topic, (this._awaiting.get(topic) || 0) + 1);
    this._asked.set(topic, data.since || null);
    return true;
  }

  /**
   * A `forbidden` error frame refusing a subscribe names its topic (`not
   * allowed to subscribe to T`): that subscribe gets no reply, one fewer is owed.
   */
  _onRefused(data) {
    if (!data || data.code !== "forbidden" || typeof data.message !== "string") return;
    const prefix = "not allowed to subscribe to ";
    if (!data.message.startsWith(prefix)) return;
    const topic = data.message.slice(prefix.length);
    const owed = this._awaiting.get(topic) || 0;
    if (owed > 1) this._awaiting.set(topic, owed - 1);
    else this._awaiting.delete(topic);
  }

  /** A `subscribed` reply: the position of the subscription in force. */
  _onSubscribed(data) {
    if (!data || typeof data.topic !== "string") return;
    const topic = data.topic;
    const owed = this._awaiting.get(topic) || 0;
    if (owed === 0) return; // not ours
    if (owed === 1) this._awaiting.delete(topic);
    else this._awaiting.set(topic, owed - 1);
    // An older subscribe's reply, or one for a topic dropped since.
    if (owed > 1 || !this._topics.has(topic)) return;
    const epoch = typeof data.epoch === "string" ? data.epoch : "";
    const offset = Number.isSafeInteger(data.offset) && data.offset >= 0 ? data.offset : 0;
    const recovered = data.recovered === true;
    const asked = this._asked.get(topic) || null;
    this._asked.delete(topic);
    if (epoch === "") {
      this._positions.delete(topic); // no history on this topic
    } else if (recovered && asked && asked.epoch === epoch) {
      // What was missed follows: go on from the position named.
      const now = this._positions.get(topic);
      if (!now || now.epoch !== epoch) this._positions.set(topic, { epoch, offset: asked.offset });
    } else {
      this._positions.set(topic, { epoch, offset });
    }
    this._emit("subscribed", { topic, epoch, offset, recovered });
    if (asked && !recovered) {
      this._emit("recoveryfailed", { topic, epoch, offset, since: { epoch: asked.epoch, offset: asked.offset } });
    }
  }

  _onFrame(raw) {
    if (typeof raw !== "string") return; // the protocol is text JSON
    let env;
    try {
      env = JSON.parse(raw);
    } catch (e) {
      return;
    }
    if (!env || typeof env.topic !== "string") return;
    if (env.topic === "error") {
      this._onRefused(env.data);
      this._emit("error", env.data);
      if (env.data && env.data.code === "token_expired") {
        this._tokens.invalidate();
        this.refreshToken();
      }
    }
    if (env.topic === "refresh") this._emit("refresh", env.data);
    if (env.topic === "subscribed" && this.resume) this._onSubscribed(env.data);
    const set = this._topics.get(env.topic);
    if (set && this.resume && Number.isSafeInteger(env.offset)) {
      const pos = this._positions.get(env.topic);
      if (pos) {
        if (env.offset <= pos.offset) return; // already delivered
        pos.offset = env.offset;
      }
    }
    this._emit("message", env.topic, env.data);
    if (set) {
      for (const fn of [...set]) {
        try {
          fn(env.data, env.topic);
        } catch (e) {
          setTimeout(() => {
            throw e;
          });
        }
      }
    }
  }

  _scheduleReconnect() {
    this._ws = null;
    const delay = reconnectDelay(this._attempt, this.backoffBase, this.backoffMax, this._random);
    this._attempt++;
    this._setState("reconnecting");
    clearTimeout(this._timer);
    this._timer = setTimeout(() => {
      this._timer = null;
      if (!this._closed) this.connect();
    }, delay);
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", state);
  }
}

// ---------------------------------------------------------------------------
// Local persistence of a replica
// ---------------------------------------------------------------------------

/**
 * What one replica (one tab's client of one scope) keeps across reloads.
 * @typedef {object} ReplicaRecord
 * @property {string} key storage key (scope + client id)
 * @property {string} scope
 * @property {string} clientId
 * @property {number} lastSeq the last sequence number used
 * @property {number} cursor the last server cursor applied to `confirmed`
 * @property {Record<string, unknown>} confirmed the server state at `cursor`
 * @property {PendingMutation[]} pending mutations not yet in `confirmed`
 * @property {number} savedAt
 */

/**
 * @typedef {object} PendingMutation
 * @property {Mutation} mutation
 * @property {number | null} ackedAt cursor at which the server applied it
 */

/**
 * @typedef {object} Mutation
 * @property {string} id
 * @property {string} scope
 * @property {string} name
 * @property {unknown} args
 * @property {string} client_id
 * @property {number} seq
 */

/**
 * Where replica records live. All methods may be async.
 * @typedef {object} ReplicaStorage
 * @property {string} kind
 * @property {(scope: string) => Promise<ReplicaRecord[]>} list
 * @property {(record: ReplicaRecord) => Promise<void>} put
 * @property {(key: string) => Promise<void>} remove
 */

function recordKey(scope, clientId) {
  return scope + "\u0000" + clientId;
}

/** Records in memory only: nothing survives a reload. */
export class MemoryStorage {
  constructor() {
    this.kind = "memory";
    /** @type {Map<string, string>} */
    this._map = new Map();
  }
  async list(scope) {
    return [...this._map.values()].map((s) => JSON.parse(s)).filter((r) => r.scope === scope);
  }
  async put(record) {
    this._map.set(record.key, JSON.stringify(record));
  }
  async remove(key) {
    this._map.delete(key);
  }
}

/** Records in `localStorage`, one JSON item per replica. */
export class LocalStorageStorage {
  /** @param {Storage} [ls] */
  constructor(ls = globalThis.localStorage) {
    this.kind = "localStorage";
    this._ls = ls;
    this._prefix = "live-sync\u0000";
  }
  async list(scope) {
    const out = [];
    for (let i = 0; i < this._ls.length; i++) {
      const k = this._ls.key(i);
      if (!k || !k.startsWith(this._prefix)) continue;
      try {
        const r = JSON.parse(this._ls.getItem(k) || "null");
        if (r && r.scope === scope) out.push(r);
      } catch (e) {
        // A damaged item is skipped, never fatal.
      }
    }
    return out;
  }
  async put(record) {
    this._ls.setItem(this._prefix + record.key, JSON.stringify(record));
  }
  async remove(key) {
    this._ls.removeItem(this._prefix + key);
  }
}

/** Records in IndexedDB (database `live-sync`, store `replicas`). */
export class IndexedDbStorage {
  /** @param {IDBDatabase} db */
  constructor(db) {
    this.kind = "indexedDB";
    this._db = db;
  }

  /**
   * Opens the database.
   * @param {IDBFactory} [idb]
   * @returns {Promise<IndexedDbStorage>}
   */
  static open(idb = globalThis.indexedDB) {
    return new Promise((resolve, reject) => {
      if (!idb) return reject(new Error("IndexedDB unavailable"));
      const req = idb.open("live-sync", 1);
      req.onupgradeneeded = () => {
        const store = req.result.createObjectStore("replicas", { keyPath: "key" });
        store.createIndex("scope", "scope");
      };
      req.onsuccess = () => resolve(new IndexedDbStorage(req.result));
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error("IndexedDB blocked"));
    });
  }

  _tx(mode, fn) {
    return new Promise((resolve, reject) => {
      const tx = this._db.transaction("replicas", mode);
      const result = fn(tx.objectStore("replicas"));
      // Resolve on commit, so "saved" means durable as far as the browser goes.
      tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
    });
  }

  async list(scope) {
    const all = await this._tx("readonly", (s) => s.index("scope").getAll(scope));
    return all || [];
  }
  put(record) {
    return this._tx("readwrite", (s) => {
      s.put(record);
    });
  }
  remove(key) {
    return this._tx("readwrite", (s) => {
      s.delete(key);
    });
  }
}

/**
 * The best storage this environment has: IndexedDB, else localStorage, else memory.
 * @returns {Promise<ReplicaStorage>}
 */
export async function openDefaultStorage() {
  try {
    return await IndexedDbStorage.open();
  } catch (e) {
    // Private modes and some embedded browsers refuse IndexedDB.
  }
  try {
    const ls = globalThis.localStorage;
    if (ls) {
      ls.setItem("live-sync-probe", "1");
      ls.removeItem("live-sync-probe");
      return new LocalStorageStorage(ls);
    }
  } catch (e) {
    // localStorage may throw when disabled.
  }
  return new MemoryStorage();
}

// ---------------------------------------------------------------------------
// Which client id this tab uses
// ---------------------------------------------------------------------------

/**
 * A write-ahead journal of one client's mutations in a synchronous
 * `Storage` (localStorage). IndexedDB writes are asynchronous: a reload or a
 * closed tab right after `mutate()` can tear the page down before the
 * record's transaction commits. The journal is written before `mutate()`
 * returns, read back when the client is opened again, and trimmed once the
 * record holds the mutations. Failures (quota, disabled storage) are
 * ignored: the record write still runs.
 */
class MutationJournal {
  /**
   * @param {Storage} ls
   * @param {string} scope
   * @param {string} clientId
   */
  constructor(ls, scope, clientId) {
    this._ls = ls;
    this._key = "live-sync-journal\u0000" + scope + "\u0000" + clientId;
  }
  /** @returns {Mutation[]} */
  read() {
    try {
      const all = JSON.parse(this._ls.getItem(this._key) || "[]");
      return Array.isArray(all) ? all : [];
    } catch (e) {
      return [];
    }
  }
  /** @param {Mutation} mutation */
  append(mutation) {
    try {
      const all = this.read();
      all.push(mutation);
      this._ls.setItem(this._key, JSON.stringify(all));
    } catch (e) {
      // See the class comment.
    }
  }
  /** Forgets the mutations up to `seq` (the record holds them). */
  trimThrough(seq) {
    try {
      const rest = this.read().filter((m) => m && m.seq > seq);
      if (rest.length) this._ls.setItem(this._key, JSON.stringify(rest));
      else this._ls.removeItem(this._key);
    } catch (e) {
      // See the class comment.
    }
  }
}

/** The journal's default store: localStorage when the record store is IndexedDB. */
function defaultJournalStore(storage) {
  if (storage.kind !== "indexedDB") return null;
  try {
    return globalThis.localStorage || null;
  } catch (e) {
    return null;
  }
}

/**
 * Picks the replica record this tab continues, or null for a fresh client.
 *
 * Every tab is its own client (its own `client_id` and sequence), since two
 * tabs sharing one sequence would collide. A tab holds a Web Lock named after
 * its client for as long as it lives; a new tab first tries the client it had
 * before a reload (remembered in sessionStorage, which a reload keeps), then
 * any stored client whose lock nobody holds (a closed tab's queue is thus
 * adopted and sent, never stranded). Without Web Locks only the
 * sessionStorage client is continued.
 *
 * @param {string} scope
 * @param {ReplicaRecord[]} records
 * @returns {Promise<{record: ReplicaRecord | null, clientId: string, release: () => void}>}
 */
async function claimClient(scope, records) {
  const ssKey = "live-sync-client\u0000" + scope;
  let remembered = null;
  try {
    remembered = globalThis.sessionStorage ? globalThis.sessionStorage.getItem(ssKey) : null;
  } catch (e) {
    remembered = null;
  }
  const remember = (id) => {
    try {
      if (globalThis.sessionStorage) globalThis.sessionStorage.setItem(ssKey, id);
    } catch (e) {
      // Not fatal: only reload continuity is lost.
    }
  };
  const locks = globalThis.navigator && globalThis.navigator.locks;
  const byId = new Map(records.map((r) => [r.clientId, r]));
  if (!locks) {
    const record = remembered ? byId.get(remembered) || null : null;
    // The remembered client even without a record: its first record write
    // may have been cut short (its mutations are in the journal).
    const clientId = record ? record.clientId : remembered || randomId();
    remember(clientId);
    return { record, clientId, release: () => {} };
  }
  /**
   * @param {string} id
   * @param {number} waitMs 0 = only if free now
   * @returns {Promise<(() => void) | null>}
   */
  const tryLock = (id, waitMs) =>
    new Promise((resolve) => {
      let release;
      const held = new Promise((r) => (release = r));
      const canWait = waitMs > 0 && typeof AbortSignal !== "undefined" && typeof AbortSignal.timeout === "function";
      const opts = canWait ? { signal: AbortSignal.timeout(waitMs) } : { ifAvailable: true };
      locks
        .request("live-sync\u0000" + scope + "\u0000" + id, opts, (lock) => {
          if (!lock) {
            resolve(null);
            return undefined;
          }
          resolve(release);
          return held;
        })
        .catch(() => resolve(null));
    });
  // The client this tab had before a reload; its old document may still be
  // letting go of the lock, so wait a moment for it.
  if (remembered) {
    const release = await tryLock(remembered, 2000);
    if (release) {
      return { record: byId.get(remembered) || null, clientId: remembered, release };
    }
  }
  // Orphans: those with unsent mutations first, then the most recent.
  const others = records
    .filter((r) => r.clientId !== remembered)
    .sort((a, b) => b.pending.length - a.pending.length || b.savedAt - a.savedAt);
  for (const r of others) {
    const release = await tryLock(r.clientId, 0);
    if (release) {
      remember(r.clientId);
      return { record: r, clientId: r.clientId, release };
    }
  }
  const clientId = randomId();
  const release = (await tryLock(clientId, 0)) || (() => {});
  remember(clientId);
  return { record: null, clientId, release };
}

// ---------------------------------------------------------------------------
// Sync: the replica
// ---------------------------------------------------------------------------

/**
 * A local mutator: reads the state and the mutation's args, returns the
 * changes it makes (`{op:"put",key,value}` / `{op:"del",key}`), or throws to
 * refuse. It must be pure and agree with the server's mutator of that name.
 * @typedef {(state: Readonly<Record<string, unknown>>, args: any, mutation: Mutation) => Change[]} Mutator
 */

/**
 * @typedef {{op: "put", key: string, value: unknown} | {op: "del" | "delete", key: string}} Change
 */

/**
 * @typedef {object} SyncOptions
 * @property {string} [scope] the scope to mirror (default `_default`).
 * @property {LiveClient | null} [live] pokes arrive through it; without one
 *   the client only polls.
 * @property {string} [baseUrl] origin of the sync endpoints (default the page's).
 * @property {string} [prefix] sync path prefix (default `/_sync`).
 * @property {string | (() => string | undefined)} [token] sent as `Authorization: Bearer`.
 * @property {() => string | Promise<string>} [getToken] returns a fresh token:
 *   asked when there is none or it expired, and again after the server answers
 *   401 (`token_expired` or `unauthorized`). Takes precedence over `token`;
 *   a `live` client given with its own `getToken` refreshes separately.
 * @property {ReplicaStorage | "memory" | "localStorage" | "indexedDB"} [storage]
 *   default: the best available.
 * @property {Storage | null} [journal] where `mutate()` writes each mutation
 *   synchronously until the storage record holds it (default: `localStorage`
 *   when the storage is IndexedDB, whose writes a reload can cut short).
 * @property {Record<string, Mutator>} [mutators] local mutators beside `put` and `delete`.
 * @property {number} [pushBatch] most mutations per push (default 100).
 * @property {number} [pullLimit] pull page size (default 100).
 * @property {number} [pollInterval] ms between pulls while the socket is up (default 30000).
 * @property {number} [fallbackPollInterval] ms between pulls while it is down (default 5000).
 * @property {number} [requestTimeout] ms before a request is abandoned (default 10000).
 * @property {number} [backoffBase] first retry delay in ms (default 250).
 * @property {number} [backoffMax] longest retry delay in ms (default 30000).
 * @property {typeof fetch} [fetch]
 */

/**
 * @typedef {object} SyncStatus
 * @property {LiveState | "none"} connection the socket's state
 * @property {number} pending mutations not yet confirmed by a pull
 * @property {number} cursor
 * @property {boolean} syncing a request is in flight
 * @property {string | null} lastError the last failure, cleared by a success
 */

/** @type {Record<string, Mutator>} */
const BUILTIN_MUTATORS = {
  put(state, args) {
    if (!args || typeof args.key !== "string" || args.key === "") {
      throw new Error("args.key must be a non-empty string");
    }
    if (!("value" in args)) throw new Error("args.value is required");
    return [{ op: "put", key: args.key, value: args.value }];
  },
  delete(state, args) {
    if (!args || typeof args.key !== "string" || args.key === "") {
      throw new Error("args.key must be a non-empty string");
    }
    return Object.prototype.hasOwnProperty.call(state, args.key) ? [{ op: "del", key: args.key }] : [];
  },
};

/**
 * Applies one change to a key-value state in place (the app's `absorb`).
 * Unknown shapes are ignored, as the Rust app does.
 * @param {Record<string, unknown>} state
 * @param {any} change
 */
export function absorbChange(state, change) {
  if (!change || typeof change.key !== "string") return;
  if (change.op === "put") {
    // defineProperty, not assignment: a key such as "__proto__" stays plain data.
    Object.defineProperty(state, change.key, {
      value: change.value === undefined ? null : change.value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  }
  else if (change.op === "del" || change.op === "delete") delete state[change.key];
}

/**
 * The replica of one scope. Create with `await SyncClient.open(options)`.
 *
 * Events (`on(name, fn)`): `change` (state) whenever the optimistic state
 * changes; `status` (SyncStatus); `rejected` ({mutation, result}) when the
 * server permanently refuses a mutation (its effect is rolled back);
 * `reset` ({cursor}) after a snapshot replaced the state; `requestfailed`
 * ({operation, status, error}).
 */
export class SyncClient extends Emitter {
  /**
   * Loads this tab's stored replica (or starts a fresh one) and starts syncing.
   * @param {SyncOptions} [options]
   * @returns {Promise<SyncClient>}
   */
  static async open(options = {}) {
    const scope = options.scope || "_default";
    let storage = options.storage;
    if (storage === "memory") storage = new MemoryStorage();
    else if (storage === "localStorage") storage = new LocalStorageStorage();
    else if (storage === "indexedDB") storage = await IndexedDbStorage.open();
    else if (!storage) storage = await openDefaultStorage();
    let records = [];
    try {
      records = await storage.list(scope);
    } catch (e) {
      records = [];
    }
    const claim = await claimClient(scope, records);
    const client = new SyncClient(options, scope, storage, claim);
    client._start();
    return client;
  }

  /**
   * Use `SyncClient.open`.
   * @param {SyncOptions} options
   * @param {string} scope
   * @param {ReplicaStorage} storage
   * @param {{record: ReplicaRecord | null, clientId: string, release: () => void}} claim
   */
  constructor(options, scope, storage, claim) {
    super();
    this.scope = scope;
    this.clientId = claim.clientId;
    this.storage = storage;
    this._release = claim.release;
    this._live = options.live || null;
    this._baseUrl = (options.baseUrl || defaultOrigin()).replace(/\/$/, "");
    this._prefix = options.prefix ?? DEFAULT_SYNC_PREFIX;
    this._token = options.token;
    this._tokens = new TokenSource(options.token, options.getToken);
    this._fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this._mutators = { ...BUILTIN_MUTATORS, ...(options.mutators || {}) };
    this._pushBatch = Math.max(1, options.pushBatch ?? 100);
    this._pullLimit = options.pullLimit ?? 100;
    this._pollInterval = options.pollInterval ?? 30000;
    this._fallbackPollInterval = options.fallbackPollInterval ?? 5000;
    this._requestTimeout = options.requestTimeout ?? 10000;
    this._backoffBase = options.backoffBase ?? 250;
    this._backoffMax = options.backoffMax ?? 30000;

    const r = claim.record;
    /** @type {Record<string, unknown>} */
    this._confirmed = r ? { ...r.confirmed } : {};
    this._cursor = r ? r.cursor : 0;
    /** @type {PendingMutation[]} */
    this._pending = r ? r.pending.map((p) => ({ mutation: p.mutation, ackedAt: p.ackedAt })) : [];
    this._nextSeq = (r ? r.lastSeq : 0) + 1;
    /** @type {Record<string, unknown>} */
    this._optimistic = {};

    this._needPull = true;
    // The highest cursor a poke announced while a pull was out: that pull
    // may have been answered from before the poke's commit.
    this._pokedDuringPull = 0;
    this._needSnapshot = false;
    /** @type {{what: "push" | "pull" | "snapshot", count?: number, cursor?: number, abort: AbortController} | null} */
    this._inFlight = null;
    this._failures = 0;
    this._retryAt = 0;
    this._pollAt = 0;
    this._timer = null;
    this._closed = false;
    this._lastError = null;
    /** @type {Promise<void>} */
    this._saveChain = Promise.resolve();
    this._saveQueued = false;
    this._unsubs = [];
    const journalStore = options.journal === undefined ? defaultJournalStore(storage) : options.journal;
    /** @type {MutationJournal | null} */
    this._journal = journalStore ? new MutationJournal(journalStore, scope, this.clientId) : null;
    // Mutations the journal holds beyond the record, in sequence order.
    let recovered = false;
    for (const m of this._journal ? this._journal.read() : []) {
      if (m && m.client_id === this.clientId && m.seq === this._nextSeq) {
        this._pending.push({ mutation: m, ackedAt: null });
        this._nextSeq++;
        recovered = true;
      }
    }
    this._rebase(false);
    if (recovered) this._save();
  }

  // ---- getters ----

  /** The state the application shows: confirmed + pending, key -> value. */
  get state() {
    return this._optimistic;
  }

  /** The server's state at `cursor`. */
  get confirmedState() {
    return this._confirmed;
  }

  /** The last server cursor applied. */
  get cursor() {
    return this._cursor;
  }

  /** Number of mutations not yet reflected in the confirmed state. */
  get pendingCount() {
    return this._pending.length;
  }

  /** The pending mutations, oldest first (copies). */
  pending() {
    return this._pending.map((p) => ({ ...p.mutation }));
  }

  /** The last sequence number used. */
  get lastSeq() {
    return this._nextSeq - 1;
  }

  /** @returns {SyncStatus} */
  get status() {
    return {
      connection: this._live ? this._live.state : "none",
      pending: this._pending.length,
      cursor: this._cursor,
      syncing: this._inFlight !== null,
      lastError: this._lastError,
    };
  }

  /** True when nothing is pending, in flight or wanted from the server. */
  get settled() {
    return this._pending.length === 0 && !this._inFlight && !this._needPull && !this._needSnapshot;
  }

  // ---- commands ----

  /**
   * Applies a mutation optimistically and queues it for the server. Resolves
   * with its sequence number once the queue is stored locally (so a reload
   * after that keeps it). Throws when the local mutator refuses it; a name
   * without a local mutator is queued with no optimistic effect.
   * @param {string} name
   * @param {unknown} [args]
   * @returns {Promise<number>}
   */
  mutate(name, args = {}) {
    if (this._closed) return Promise.reject(new Error("sync client closed"));
    const seq = this._nextSeq;
    /** @type {Mutation} */
    const mutation = {
      id: this.clientId + ":" + seq,
      scope: this.scope,
      name,
      args,
      client_id: this.clientId,
      seq,
    };
    const changes = this._applyLocal(this._optimistic, mutation); // throws on refusal
    const next = { ...this._optimistic };
    for (const c of changes) absorbChange(next, c);
    this._optimistic = next;
    this._nextSeq++;
    this._pending.push({ mutation, ackedAt: null });
    if (this._journal) this._journal.append(mutation);
    const saved = this._save();
    this._emit("change", this._optimistic);
    this._emitStatus();
    this._pump();
    return saved.then(() => seq);
  }

  /**
   * Calls `fn(state)` now and after every change of the optimistic state.
   * @param {(state: Readonly<Record<string, unknown>>) => void} fn
   * @returns {() => void} unsubscribes
   */
  subscribe(fn) {
    const off = this.on("change", fn);
    fn(this._optimistic);
    return off;
  }

  /** Asks the server for news now (resets the backoff). */
  pullNow() {
    this._needPull = true;
    this._failures = 0;
    this._retryAt = 0;
    this._pump();
  }

  /**
   * Resolves when everything is pushed and pulled (or rejects after `timeoutMs`).
   * @param {number} [timeoutMs]
   * @returns {Promise<void>}
   */
  whenSettled(timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      if (this.settled) return resolve();
      const timer = setTimeout(() => {
        off();
        reject(new Error("not settled in time"));
      }, timeoutMs);
      const off = this.on("status", () => {
        if (this.settled) {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    });
  }

  /** Resolves once every change so far is in local storage. */
  flush() {
    return this._saveChain;
  }

  /** Stops syncing and lets another tab adopt this client's queue. */
  async close() {
    this._closed = true;
    clearTimeout(this._timer);
    for (const off of this._unsubs) off();
    if (this._inFlight) this._inFlight.abort.abort();
    this._inFlight = null;
    await this._saveChain.catch(() => {});
    this._release();
  }

  // ---- driver ----

  _start() {
    this._pollAt = Date.now() + this._currentPollInterval();
    if (this._live) {
      const live = this._live;
      this._unsubs.push(
        live.subscribe("sync:" + this.scope, (data) => this._onPoke(data)),
        live.on("open", () => {
          // Changes may have been missed while the socket was down.
          this.pullNow();
        }),
        live.on("state", () => {
          this._pollAt = Math.min(this._pollAt, Date.now() + this._currentPollInterval());
          this._emitStatus();
          this._arm();
        }),
      );
    }
    if (globalThis.addEventListener) {
      const onOnline = () => this.pullNow();
      globalThis.addEventListener("online", onOnline);
      this._unsubs.push(() => globalThis.removeEventListener("online", onOnline));
    }
    const doc = globalThis.document;
    if (doc && doc.addEventListener) {
      // A tab coming back from the background may have slept through pokes.
      const onVisible = () => {
        if (doc.visibilityState === "visible") {
          this._needPull = true;
          this._pump();
        }
      };
      doc.addEventListener("visibilitychange", onVisible);
      this._unsubs.push(() => doc.removeEventListener("visibilitychange", onVisible));
    }
    this._emitStatus();
    this._pump();
  }

  _currentPollInterval() {
    return this._live && this._live.connected ? this._pollInterval : this._fallbackPollInterval;
  }

  _onPoke(data) {
    const cursor = data && typeof data.cursor === "number" ? data.cursor : Infinity;
    if (cursor > this._cursor) {
      this._needPull = true;
      if (this._inFlight && this._inFlight.what === "pull") {
        this._pokedDuringPull = Math.max(this._pokedDuringPull, cursor);
      }
      this._pump();
    }
  }

  /** Sends the next request if one is due (the Rust replica's poll_request). */
  _pump() {
    if (this._closed || this._inFlight) return this._arm();
    const now = Date.now();
    if (this._pollAt <= now) {
      this._needPull = true;
      this._pollAt = now + this._currentPollInterval();
    }
    if (this._retryAt > now) return this._arm();
    /** @type {"push" | "pull" | "snapshot"} */
    let what;
    let body;
    let count = 0;
    const cursor = this._cursor;
    const firstUnacked = this._pending.findIndex((p) => p.ackedAt === null);
    if (this._needSnapshot) {
      what = "snapshot";
      body = { scope: this.scope, client_id: this.clientId };
    } else if (firstUnacked >= 0) {
      what = "push";
      const mutations = this._pending
        .slice(firstUnacked, firstUnacked + this._pushBatch)
        .map((p) => p.mutation);
      count = mutations.length;
      body = { mutations };
    } else if (this._needPull) {
      what = "pull";
      body = { scope: this.scope, cursor, limit: this._pullLimit, client_id: this.clientId };
    } else {
      return this._arm();
    }
    const abort = new AbortController();
    const flight = { what, count, cursor, abort };
    this._inFlight = flight;
    this._emitStatus();
    const timeout = setTimeout(() => abort.abort(), this._requestTimeout);
    this._request(what, body, abort.signal)
      .then(
        ({ status, json }) => this._onResponse(flight, status, json),
        (err) => this._onFailure(flight, null, String((err && err.message) || err)),
      )
      .finally(() => clearTimeout(timeout));
    this._arm();
  }

  async _request(what, body, signal) {
    /** @type {Record<string, string>} */
    const headers = { "content-type": "application/json" };
    const token = await this._tokens.get();
    if (token) headers.authorization = "Bearer " + token;
    const res = await this._fetch(this._baseUrl + this._prefix + "/" + what, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "same-origin",
    });
    let json = null;
    try {
      json = await res.json();
    } catch (e) {
      json = null;
    }
    // A refused token is not asked again: the retry gets a fresh one.
    if (res.status === 401) this._tokens.invalidate();
    return { status: res.status, json };
  }

  _onResponse(flight, status, json) {
    if (this._inFlight !== flight || this._closed) return;
    this._inFlight = null;
    let ok = false;
    try {
      if (flight.what === "push" && status === 200 && json && Array.isArray(json.results)) {
        ok = this._onPush(flight.count, json.results);
      } else if (flight.what === "pull" && status === 200 && json && Array.isArray(json.changes)) {
        ok = this._onPull(flight.cursor, json);
      } else if (flight.what === "pull" && status === 410) {
        this._needSnapshot = true;
        ok = true;
      } else if (flight.what === "snapshot" && status === 200 && json) {
        ok = this._onSnapshot(json);
      }
    } catch (e) {
      ok = false;
    }
    if (ok) {
      this._failures = 0;
      this._lastError = null;
      this._emitStatus();
      this._pump();
    } else {
      const why = json && json.error ? json.error : "unexpected answer";
      this._onFailure(flight, status, `${status} ${why}`, true);
    }
  }

  _onFailure(flight, status, message, alreadyCleared = false) {
    if (!alreadyCleared) {
      if (this._inFlight !== flight || this._closed) return;
      this._inFlight = null;
    }
    this._fail(flight.what, status, message);
    this._pump();
  }

  _fail(operation, status, message) {
    const delay = backoffDelay(this._failures, this._backoffBase, this._backoffMax);
    this._failures++;
    this._retryAt = Date.now() + delay;
    this._lastError = message;
    this._emit("requestfailed", { operation, status, error: message });
    this._emitStatus();
  }

  /** Sleeps until the next retry or poll is due. */
  _arm() {
    clearTimeout(this._timer);
    this._timer = null;
    if (this._closed) return;
    const now = Date.now();
    let at = this._pollAt;
    if (this._retryAt > now) at = Math.min(at, this._retryAt);
    else if (!this._inFlight && this._hasWork()) at = now;
    this._timer = setTimeout(() => {
      this._timer = null;
      this._pump();
    }, Math.max(0, at - now));
  }

  _hasWork() {
    return this._needSnapshot || this._needPull || this._pending.some((p) => p.ackedAt === null);
  }

  // ---- answers (the Rust replica's on_push / on_pull / on_snapshot) ----

  _onPush(count, results) {
    let idx = this._pending.findIndex((p) => p.ackedAt === null);
    if (idx < 0) idx = this._pending.length;
    let transient = false;
    let changed = false;
    for (const result of results.slice(0, count)) {
      const p = this._pending[idx];
      if (!p || !result || typeof result !== "object") break;
      if (result.ok) {
        p.ackedAt = typeof result.cursor === "number" ? result.cursor : 0;
        if (p.ackedAt > this._cursor) this._needPull = true;
        idx++;
      } else if (result.code === "internal_error") {
        transient = true;
        break;
      } else {
        this._pending.splice(idx, 1);
        changed = true;
        this._emit("rejected", { mutation: p.mutation, result });
      }
    }
    changed = this._dropConfirmed(null) || changed;
    if (changed) this._rebase(true);
    this._save();
    if (transient) this._fail("push", 200, "transient server error");
    return true;
  }

  _onPull(asked, resp) {
    if (asked !== this._cursor) {
      // The answer to an older position (a snapshot reset happened): stale.
      this._needPull = true;
      return true;
    }
    let expect = this._cursor + 1;
    for (const c of resp.changes) {
      if (!c || c.cursor !== expect || c.scope !== this.scope) return false;
      expect++;
    }
    for (const c of resp.changes) absorbChange(this._confirmed, c.data);
    // Trust the changes, not `next_cursor`: the cursor never moves past data
    // this replica has absorbed.
    this._cursor = expect - 1;
    // A poke that came while this pull was out may announce a commit after
    // what it read.
    const poked = this._pokedDuringPull;
    this._pokedDuringPull = 0;
    this._needPull = resp.has_more === true || poked > this._cursor;
    const moved = resp.changes.length > 0;
    const dropped = this._dropConfirmed(typeof resp.client_seq === "number" ? resp.client_seq : null);
    if (moved || dropped) {
      this._rebase(true);
      this._save();
    }
    return true;
  }

  _onSnapshot(resp) {
    const data = resp.data;
    if (data !== null && (typeof data !== "object" || Array.isArray(data))) return false;
    if (typeof resp.cursor !== "number") return false;
    this._confirmed = { ...(data || {}) };
    this._cursor = resp.cursor;
    this._needSnapshot = false;
    this._needPull = true;
    this._dropConfirmed(typeof resp.client_seq === "number" ? resp.client_seq : null);
    this._rebase(true);
    this._save();
    this._emit("reset", { cursor: resp.cursor });
    return true;
  }

  /** Drops pending mutations already in the confirmed state. */
  _dropConfirmed(appliedSeq) {
    const before = this._pending.length;
    const cursor = this._cursor;
    this._pending = this._pending.filter((p) => {
      const bySeq = appliedSeq !== null && p.mutation.seq <= appliedSeq;
      const byAck = p.ackedAt !== null && p.ackedAt <= cursor;
      return !(bySeq || byAck);
    });
    return before !== this._pending.length;
  }

  /** Optimistic state = confirmed + every pending mutation re-applied. */
  _rebase(emit) {
    const state = { ...this._confirmed };
    for (const p of this._pending) {
      let changes = [];
      try {
        changes = this._applyLocal(state, p.mutation);
      } catch (e) {
        changes = []; // refused on the new base: no optimistic effect
      }
      for (const c of changes) absorbChange(state, c);
    }
    this._optimistic = state;
    if (emit) {
      this._emit("change", this._optimistic);
      this._emitStatus();
    }
  }

  _applyLocal(state, mutation) {
    const m = this._mutators[mutation.name];
    if (!m) return [];
    const changes = m(state, mutation.args, mutation);
    return Array.isArray(changes) ? changes : [];
  }

  /** Queues a write of the replica record; resolves when it is stored. */
  _save() {
    if (this._saveQueued) return this._saveChain;
    this._saveQueued = true;
    this._saveChain = this._saveChain
      .catch(() => {})
      .then(() => {
        this._saveQueued = false;
        /** @type {ReplicaRecord} */
        const record = {
          key: recordKey(this.scope, this.clientId),
          scope: this.scope,
          clientId: this.clientId,
          lastSeq: this._nextSeq - 1,
          cursor: this._cursor,
          confirmed: this._confirmed,
          pending: this._pending.map((p) => ({ mutation: p.mutation, ackedAt: p.ackedAt })),
          savedAt: Date.now(),
        };
        // Clone now: later changes must not leak into a write in progress.
        return this.storage.put(JSON.parse(JSON.stringify(record))).then(() => {
          if (this._journal) this._journal.trimThrough(record.lastSeq);
        });
      })
      .catch((e) => {
        this._lastError = "local storage: " + ((e && e.message) || e);
        this._emitStatus();
      });
    return this._saveChain;
  }

  _emitStatus() {
    this._emit("status", this.status);
  }
}
