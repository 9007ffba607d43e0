// Type declarations of live-sync.js, the browser client of the live + sync server.

/** Default path of the WebSocket endpoint (`/ws`). */
export const DEFAULT_WS_PATH: string;
/** Default prefix of the sync HTTP endpoints (`/_sync`). */
export const DEFAULT_SYNC_PREFIX: string;

/**
 * Delay before retry number `attempt` (0-based): uniformly random in
 * `[d/2, d]`, `d = min(max, base * 2^attempt)`, in milliseconds.
 */
export function backoffDelay(attempt: number, base: number, max: number, random?: () => number): number;

/**
 * Delay before reconnect number `attempt` (0-based) of a live connection:
 * uniformly random in `[0, d]`, `d = min(max, base * 2^attempt)` ("full
 * jitter"), in milliseconds.
 */
export function reconnectDelay(attempt: number, base: number, max: number, random?: () => number): number;

/** A token, or a function returning the current one (for refreshable tokens). */
export type Token = string | (() => string | undefined);

/**
 * Returns a fresh token (a JWT whose `exp` the client reads to refresh it in
 * time). Asked when there is none or it expired, before expiry, and after the
 * server refused one.
 */
export type GetToken = () => string | Promise<string>;

/** The `exp` claim of a JWT (seconds since the epoch), or null. */
export function tokenExpiry(token: string): number | null;

/** Removes the handler it was returned for. */
export type Off = () => void;

// ---- live ----

export type LiveState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface LiveOptions {
  /** WebSocket URL; default `ws(s)://<page host>/ws`. */
  url?: string;
  /** Sent as the `token` query parameter of the upgrade request. */
  token?: Token;
  /**
   * Fresh tokens: before connecting, shortly before expiry (sent in-band as
   * `{"topic":"refresh","data":{"token":T}}`, no reconnect) and on
   * `token_expired`. Takes precedence over `token`.
   */
  getToken?: GetToken;
  /**
   * Window of the first reconnect in ms (default 1000): the first retry
   * happens at a random point in `[0, backoffBase]`, retry n in
   * `[0, min(backoffMax, backoffBase * 2^n)]`. The browser's `online` event
   * starts again from the first window.
   */
  backoffBase?: number;
  /** Longest reconnect delay in ms (default 10000). */
  backoffMax?: number;
  /**
   * Remember each topic's position and resume from it on every reconnect
   * (default true): subscribes carry `"history":true` and, once a position
   * is known, `since`; deliveries already read are dropped. `false` sends
   * plain mizu subscribes.
   */
  resume?: boolean;
  /** Generator in [0, 1) of the reconnect jitter (default `Math.random`). */
  random?: () => number;
  /** Connect in the constructor (default true). */
  autoConnect?: boolean;
  /** WebSocket implementation (default the global one). */
  WebSocket?: typeof WebSocket;
}

/** An error frame of the server: `{"topic":"error","data":{code,message}}`. */
export interface LiveError {
  code: string;
  message: string;
}

export interface LiveEvents {
  state: (state: LiveState) => void;
  open: () => void;
  close: (ev: { code: number; reason: string }) => void;
  message: (topic: string, data: unknown) => void;
  error: (err: LiveError) => void;
  /** The server accepted an in-band token refresh. */
  refresh: (answer: { ok: boolean }) => void;
  /**
   * The server answered a subscribe (resume on): the topic's position now
   * (epoch "" and offset 0 when the topic has no history) and whether what
   * was missed since the position named follows.
   */
  subscribed: (ev: { topic: string; epoch: string; offset: number; recovered: boolean }) => void;
  /**
   * The position named on a resubscribe is gone (the server restarted, or
   * its history no longer reaches back that far): messages were missed. The
   * application reloads the topic's state from its own source; the client
   * goes on from `epoch`/`offset`.
   */
  recoveryfailed: (ev: { topic: string; epoch: string; offset: number; since: Position }) => void;
}

/** Where a reader stands on a topic with history. */
export interface Position {
  epoch: string;
  offset: number;
}

/** Topic pub/sub over one WebSocket that reconnects and resubscribes by itself. */
export class LiveClient {
  constructor(options?: LiveOptions);
  readonly url: string;
  readonly state: LiveState;
  /** True while the socket is open. */
  readonly connected: boolean;
  on<K extends keyof LiveEvents>(event: K, handler: LiveEvents[K]): Off;
  /** Opens the socket (again); a no-op while connecting or open. */
  connect(): void;
  /** Closes the socket until `connect()` is called again. */
  close(): void;
  /** Sends a fresh token from `getToken` in-band; done by itself before expiry. */
  refreshToken(): Promise<boolean>;
  /**
   * Adds a handler for `topic`; the first one subscribes on the server
   * (from `options.since` when given and resume is on).
   */
  subscribe<T = any>(topic: string, handler: (data: T, topic: string) => void, options?: { since?: Position }): Off;
  /** The last position read on `topic`, or null (no history, no answer yet, not subscribed). */
  position(topic: string): Position | null;
  /** Whether positions are remembered and resumed (the `resume` option). */
  readonly resume: boolean;
  /** Removes one handler (or all); the last one unsubscribes on the server. */
  unsubscribe(topic: string, handler?: (data: any, topic: string) => void): void;
  /** Publishes to a topic; false (nothing sent) while the socket is down. */
  publish(topic: string, data: unknown): boolean;
  /** Sends a raw envelope; false while the socket is down. */
  send(topic: string, data: unknown): boolean;
  /** Topics with at least one handler. */
  topics(): string[];
}

// ---- sync ----

/** A key-value state: key -> JSON value. */
export type KvState = Record<string, unknown>;

/** A change of the built-in key-value app. */
export type Change = { op: "put"; key: string; value: unknown } | { op: "del" | "delete"; key: string };

/** A mutation as pushed to the server. */
export interface Mutation {
  id: string;
  scope: string;
  name: string;
  args: unknown;
  client_id: string;
  seq: number;
}

/** The server's result of one mutation. */
export interface MutationResult {
  ok: boolean;
  cursor?: number;
  error?: string;
  code?: string;
}

/**
 * A local mutator: pure, returns the changes it makes, throws to refuse. Must
 * agree with the server's mutator of the same name.
 */
export type Mutator = (state: Readonly<KvState>, args: any, mutation: Mutation) => Change[];

export interface PendingMutation {
  mutation: Mutation;
  /** Cursor at which the server applied it, once acknowledged. */
  ackedAt: number | null;
}

/** What one tab's replica of one scope keeps in local storage. */
export interface ReplicaRecord {
  key: string;
  scope: string;
  clientId: string;
  lastSeq: number;
  cursor: number;
  confirmed: KvState;
  pending: PendingMutation[];
  savedAt: number;
}

/** Where replica records live. */
export interface ReplicaStorage {
  readonly kind: string;
  list(scope: string): Promise<ReplicaRecord[]>;
  put(record: ReplicaRecord): Promise<void>;
  remove(key: string): Promise<void>;
}

export class MemoryStorage implements ReplicaStorage {
  readonly kind: "memory";
  list(scope: string): Promise<ReplicaRecord[]>;
  put(record: ReplicaRecord): Promise<void>;
  remove(key: string): Promise<void>;
}

export class LocalStorageStorage implements ReplicaStorage {
  constructor(ls?: Storage);
  readonly kind: "localStorage";
  list(scope: string): Promise<ReplicaRecord[]>;
  put(record: ReplicaRecord): Promise<void>;
  remove(key: string): Promise<void>;
}

export class IndexedDbStorage implements ReplicaStorage {
  static open(idb?: IDBFactory): Promise<IndexedDbStorage>;
  readonly kind: "indexedDB";
  list(scope: string): Promise<ReplicaRecord[]>;
  put(record: ReplicaRecord): Promise<void>;
  remove(key: string): Promise<void>;
}

/** IndexedDB, else localStorage, else memory. */
export function openDefaultStorage(): Promise<ReplicaStorage>;

/** Applies one key-value change to `state` in place. */
export function absorbChange(state: KvState, change: unknown): void;

export interface SyncOptions {
  /** The scope to mirror (default `_default`). */
  scope?: string;
  /** Pokes arrive through it; without one the client only polls. */
  live?: LiveClient | null;
  /** Origin of the sync endpoints (default the page's). */
  baseUrl?: string;
  /** Sync path prefix (default `/_sync`). */
  prefix?: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: Token;
  /** Fresh tokens: when there is none, it expired, or after a 401. */
  getToken?: GetToken;
  /** Default: the best available. */
  storage?: ReplicaStorage | "memory" | "localStorage" | "indexedDB";
  /**
   * Where `mutate()` writes each mutation synchronously until the storage
   * record holds it (default: `localStorage` when the storage is IndexedDB,
   * whose writes a reload can cut short; `null` for none).
   */
  journal?: Storage | null;
  /** Local mutators beside the built-in `put` and `delete`. */
  mutators?: Record<string, Mutator>;
  /** Most mutations per push (default 100). */
  pushBatch?: number;
  /** Pull page size (default 100). */
  pullLimit?: number;
  /** ms between pulls while the socket is up (default 30000). */
  pollInterval?: number;
  /** ms between pulls while the socket is down (default 5000). */
  fallbackPollInterval?: number;
  /** ms before a request is abandoned and retried (default 10000). */
  requestTimeout?: number;
  /** First retry delay in ms (default 250). */
  backoffBase?: number;
  /** Longest retry delay in ms (default 30000). */
  backoffMax?: number;
  fetch?: typeof fetch;
}

export interface SyncStatus {
  /** The socket's state, or "none" without a live client. */
  connection: LiveState | "none";
  /** Mutations not yet confirmed by a pull. */
  pending: number;
  cursor: number;
  /** A request is in flight. */
  syncing: boolean;
  /** The last failure, cleared by the next success. */
  lastError: string | null;
}

export interface SyncEvents {
  change: (state: Readonly<KvState>) => void;
  status: (status: SyncStatus) => void;
  rejected: (ev: { mutation: Mutation; result: MutationResult }) => void;
  reset: (ev: { cursor: number }) => void;
  requestfailed: (ev: { operation: "push" | "pull" | "snapshot"; status: number | null; error: string }) => void;
}

/** The replica of one sync scope, following sync-core's client `Replica`. */
export class SyncClient {
  /** Loads this tab's stored replica (or starts a fresh one) and starts syncing. */
  static open(options?: SyncOptions): Promise<SyncClient>;
  readonly scope: string;
  readonly clientId: string;
  readonly storage: ReplicaStorage;
  /** Confirmed state + pending mutations. */
  readonly state: Readonly<KvState>;
  /** The server's state at `cursor`. */
  readonly confirmedState: Readonly<KvState>;
  readonly cursor: number;
  readonly pendingCount: number;
  readonly lastSeq: number;
  readonly status: SyncStatus;
  /** Nothing pending, in flight or wanted from the server. */
  readonly settled: boolean;
  on<K extends keyof SyncEvents>(event: K, handler: SyncEvents[K]): Off;
  /** The pending mutations, oldest first. */
  pending(): Mutation[];
  /**
   * Applies optimistically and queues; resolves with the sequence number once
   * stored locally. Throws (synchronously) when the local mutator refuses.
   */
  mutate(name: string, args?: unknown): Promise<number>;
  /** Calls `fn(state)` now and on every change. */
  subscribe(fn: (state: Readonly<KvState>) => void): Off;
  /** Pulls now, resetting the backoff. */
  pullNow(): void;
  /** Resolves when nothing is pending or in flight. */
  whenSettled(timeoutMs?: number): Promise<void>;
  /** Resolves once every change so far is in local storage. */
  flush(): Promise<void>;
  /** Stops syncing and releases this client for adoption by another tab. */
  close(): Promise<void>;
}
