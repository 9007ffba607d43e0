//! Deterministic simulation: one server engine with its store, several client
//! replicas, and a network that delays, reorders, duplicates and drops, loses
//! pokes, partitions clients, fails persists, trims, and crashes the server
//! (losing everything not yet persisted). Invariants are checked after every
//! step and at the end; a broken invariant panics with what broke.
//!
//! Every choice the simulation makes comes from [`Decisions`]: a seeded
//! generator for the seeded test (`tests/simulation.rs`), or the bytes of a fuzz
//! input, so the fuzzer steers the same faults the seeds explore.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::app;
use crate::client::ClientRequest;
use crate::store::Batch;
use crate::{
    Engine, EngineConfig, KvApp, MemoryStore, Mutation, Output, Ready, Replica, ReplicaConfig,
    RequestId, SnapshotRequest, Store, SyncRequest, Timestamp,
};
use bytes::Bytes;
use serde_json::{Value, json};

/// Clients alternate between two scopes, which must stay independent.
pub const SCOPES: [&str; 2] = ["room", "hall"];

pub use super::decisions::Decisions;

enum Msg {
    /// A push from a client without `client_id` (deduplicated by id only);
    /// its answer is not awaited.
    RawPush(Mutation),
    Request {
        client: usize,
        epoch: u64,
        req: ClientRequest,
    },
    Response {
        client: usize,
        epoch: u64,
        id: RequestId,
        status: u16,
        body: Bytes,
    },
    Poke {
        client: usize,
        epoch: u64,
        cursor: u64,
    },
}

struct Client {
    name: String,
    scope: String,
    replica: Replica<KvApp>,
    epoch: u64,
    down_until: Option<u64>,
    last_cursor: u64,
}

/// What the durable store holds, tracked from every batch persisted.
#[derive(Default)]
struct Ledger {
    seq: BTreeMap<String, u64>,
    head: BTreeMap<String, u64>,
    incr_applied: BTreeMap<(String, String), i64>,
    scope_of: BTreeMap<String, String>,
    /// Mutation ids recorded durably (id dedupe path).
    ids: BTreeSet<String>,
    acked: BTreeMap<String, u64>,
}

/// The simulated system: server, store, network and clients.
pub struct Sim {
    rng: Decisions,
    base: Instant,
    /// Simulated milliseconds since the start.
    pub now_ms: u64,
    faults: bool,
    /// The engine's log retention ([`EngineConfig::keep_changes`]), drawn
    /// once per run: with it the engine trims on its own after commits.
    keep_changes: Option<u64>,
    store: MemoryStore,
    /// The server engine, `None` while crashed.
    pub engine: Option<Engine<KvApp>>,
    server_down_until: u64,
    persisting: Option<(u64, Ready)>,
    routes: BTreeMap<u64, (usize, RequestId, u64, Vec<Mutation>)>,
    next_rid: u64,
    net: BTreeMap<(u64, u64), Msg>,
    net_seq: u64,
    clients: Vec<Client>,
    created: BTreeMap<(String, u64), Mutation>,
    ledger: Ledger,
    /// The last few hundred notable events, for failure reports.
    pub trace: Vec<String>,
    /// How often each fault happened.
    pub counters: Counters,
}

/// How often each fault happened, to check the faults are exercised.
#[derive(Debug, Default)]
pub struct Counters {
    #[allow(missing_docs)]
    pub mutations: u64,
    #[allow(missing_docs)]
    pub crashes: u64,
    /// Crashes that came after a batch was written but before it was
    /// acknowledged.
    pub unacknowledged_commits: u64,
    #[allow(missing_docs)]
    pub persist_failures: u64,
    /// Trims the simulation asked for.
    pub trims: u64,
    /// Trims that reached the store, the engine's own (log retention)
    /// included.
    pub persisted_trims: u64,
    #[allow(missing_docs)]
    pub resets: u64,
    #[allow(missing_docs)]
    pub duplicates: u64,
    #[allow(missing_docs)]
    pub lost_responses: u64,
    #[allow(missing_docs)]
    pub partitions: u64,
}

fn new_engine(store: &mut MemoryStore, keep_changes: Option<u64>) -> Engine<KvApp> {
    let cfg = EngineConfig {
        keep_changes,
        ..EngineConfig::default()
    };
    Engine::recover(app(), cfg, store.load().expect("load")).expect("recover")
}

impl Sim {
    /// The log retention this run's engine has, if any.
    pub fn keep_changes(&self) -> Option<u64> {
        self.keep_changes
    }

    /// A simulation of 2 to 4 clients whose choices come from `rng`, with
    /// simulated time starting at `base` (the core never reads a clock: the
    /// caller passes any instant, and the run only moves forward from it).
    pub fn new(mut rng: Decisions, base: Instant) -> Self {
        let mut store = MemoryStore::new();
        let n = 2 + rng.below(3) as usize;
        let clients: Vec<Client> = (0..n)
            .map(|i| {
                let name = format!("c{i}");
                let scope = SCOPES[i % 2].to_string();
                let mut cfg = ReplicaConfig::new(scope.clone(), name.clone());
                cfg.seed = rng.number();
                cfg.push_batch = 1 + rng.below(5) as usize;
                cfg.pull_limit = 1 + rng.below(6);
                cfg.poll_interval = Duration::from_millis(2000);
                cfg.request_timeout = Duration::from_millis(1000);
                cfg.backoff_base = Duration::from_millis(20);
                cfg.backoff_max = Duration::from_millis(1000);
                let mut replica = Replica::new(app(), cfg, base);
                replica.handle_connected(base);
                Client {
                    name,
                    scope,
                    replica,
                    epoch: 0,
                    down_until: None,
                    last_cursor: 0,
                }
            })
            .collect();
        let keep_changes = rng.chance(0.3).then(|| 2 + rng.below(12));
        let scope_of = clients
            .iter()
            .map(|c: &Client| (c.name.clone(), c.scope.clone()))
            .collect();
        Sim {
            rng,
            base,
            now_ms: 0,
            faults: true,
            keep_changes,
            engine: Some(new_engine(&mut store, keep_changes)),
            store,
            server_down_until: 0,
            persisting: None,
            routes: BTreeMap::new(),
            next_rid: 1,
            net: BTreeMap::new(),
            net_seq: 0,
            clients,
            created: BTreeMap::new(),
            ledger: Ledger {
                scope_of,
                ..Ledger::default()
            },
            trace: Vec::new(),
            counters: Counters::default(),
        }
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.now_ms)
    }

    fn wall(&self) -> Timestamp {
        Timestamp(1_795_328_895_000 + self.now_ms)
    }

    fn send(&mut self, delay: u64, msg: Msg) {
        self.net_seq += 1;
        self.net.insert((self.now_ms + delay, self.net_seq), msg);
    }

    fn delay(&mut self) -> u64 {
        1 + self.rng.below(if self.faults { 200 } else { 30 })
    }

    fn log(&mut self, s: String) {
        if self.trace.len() > 400 {
            self.trace.remove(0);
        }
        self.trace.push(format!("t={} {s}", self.now_ms));
    }

    // ---- faults and workload ----

    fn act(&mut self) {
        if self.faults && self.rng.chance(0.25) {
            let c = self.rng.below(self.clients.len() as u64) as usize;
            self.mutate(c);
        }
        if self.faults && self.rng.chance(0.03) {
            // Id-only pushes, often repeated with the same id.
            let id = format!("raw{}", self.rng.below(40));
            let m = Mutation {
                id,
                scope: SCOPES[0].into(),
                name: "incr".into(),
                args: Some(json!({"key": "r"})),
                client_id: None,
                seq: None,
            };
            for _ in 0..1 + self.rng.below(2) {
                let d = self.delay();
                self.send(d, Msg::RawPush(m.clone()));
            }
        }
        if !self.faults {
            return;
        }
        if self.engine.is_some() && self.rng.chance(0.004) {
            self.log("server crash".into());
            self.counters.crashes += 1;
            self.engine = None;
            // The batch being written may have reached the store before the
            // crash, never acknowledged (the commit landed, the answer did not).
            if let Some((_, ready)) = self.persisting.take()
                && self.rng.chance(0.5)
                && self.store.persist(&ready.persist).is_ok()
            {
                self.ledger.apply(&ready.persist, &self.created);
                self.counters.unacknowledged_commits += 1;
                self.log(format!(
                    "batch {} durable, never acknowledged",
                    ready.number
                ));
            }
            self.routes.clear();
            self.server_down_until = self.now_ms + 50 + self.rng.below(1500);
        }
        if self.rng.chance(0.01) {
            let c = self.rng.below(self.clients.len() as u64) as usize;
            if self.clients[c].down_until.is_none() {
                self.log(format!("partition c{c}"));
                self.counters.partitions += 1;
                let until = self.now_ms + 100 + self.rng.below(3000);
                let now = self.now();
                let cl = &mut self.clients[c];
                cl.down_until = Some(until);
                cl.epoch += 1;
                cl.replica.handle_disconnected(now);
            }
        }
        if self.rng.chance(0.01) {
            self.store.fail_next(1);
        }
        if self.rng.chance(0.003)
            && let Some(e) = self.engine.as_mut()
        {
            let scope = SCOPES[self.rng.below(2) as usize];
            let head = e.durable_head(scope);
            if head > 3 {
                let before = head + 1 - self.rng.below(4);
                e.trim(scope, before).expect("trim within durable head");
                self.trace.push(format!("trim before {before}"));
                self.counters.trims += 1;
            }
        }
    }

    fn mutate(&mut self, c: usize) {
        let now = self.now();
        let (name, args) = match self.rng.below(4) {
            0 => (
                "put",
                json!({"key": format!("k{}", self.rng.below(5)), "value": self.rng.below(100)}),
            ),
            1 => ("delete", json!({"key": format!("k{}", self.rng.below(5))})),
            _ => ("incr", json!({"key": format!("n{}", self.rng.below(3))})),
        };
        let cl = &mut self.clients[c];
        let seq = cl.replica.mutate(now, name, args).expect("local apply");
        let m = cl.replica.pending().last().expect("queued").clone();
        assert_eq!(m.seq, Some(seq));
        self.created.insert((cl.name.clone(), seq), m);
        self.counters.mutations += 1;
    }

    fn heal_partitions(&mut self) {
        let now = self.now();
        let now_ms = self.now_ms;
        let all = !self.faults;
        for cl in &mut self.clients {
            if cl.down_until.is_some_and(|t| all || t <= now_ms) {
                cl.down_until = None;
                cl.replica.handle_connected(now);
            }
        }
        if self.engine.is_none() && (all || self.server_down_until <= self.now_ms) {
            self.log("server restart".into());
            let engine = new_engine(&mut self.store, self.keep_changes);
            // No acknowledged mutation is lost across the restart.
            for (client, &acked) in &self.ledger.acked {
                let seq = engine
                    .handle_snapshot(&SnapshotRequest {
                        scope: self.ledger.scope_of[client].clone(),
                        client_id: Some(client.clone()),
                    })
                    .client_seq
                    .unwrap_or(0);
                assert!(
                    seq >= acked,
                    "{client}: acked {acked} but recovered seq {seq}"
                );
            }
            for scope in SCOPES {
                let head = self.ledger.head.get(scope).copied().unwrap_or(0);
                assert_eq!(engine.durable_head(scope), head);
            }
            self.engine = Some(engine);
        }
    }

    // ---- server ----

    fn server(&mut self) {
        if let Some((done, _)) = &self.persisting
            && *done <= self.now_ms
        {
            let (_, ready) = self.persisting.take().expect("checked");
            let engine = self.engine.as_mut().expect("persisting implies up");
            match self.store.persist(&ready.persist) {
                Ok(()) => {
                    self.ledger.apply(&ready.persist, &self.created);
                    self.counters.persisted_trims += ready.persist.trims.len() as u64;
                    engine.advance(ready.number).expect("advance");
                }
                Err(_) => {
                    self.trace.push(format!("persist {} failed", ready.number));
                    self.counters.persist_failures += 1;
                    engine.handle_persist_failed(ready.number).expect("fail");
                }
            }
            self.route_outputs();
        }
        if self.persisting.is_none()
            && let Some(e) = self.engine.as_mut()
            && let Some(ready) = e.poll_ready()
        {
            let done = self.now_ms + self.rng.below(30);
            self.persisting = Some((done, ready));
        }
    }

    fn route_outputs(&mut self) {
        loop {
            let Some(out) = self.engine.as_mut().and_then(|e| e.poll_output()) else {
                break;
            };
            match out {
                Output::Response {
                    request_id,
                    response,
                } => {
                    let Some((client, id, epoch, mutations)) = self.routes.remove(&request_id.0)
                    else {
                        continue;
                    };
                    if response.status == 200 {
                        self.check_acks(&mutations, &response.body);
                    }
                    self.respond(client, epoch, id, response.status, response.body);
                }
                Output::Poke { scope, cursor } => {
                    for c in 0..self.clients.len() {
                        if self.clients[c].scope == scope
                            && self.clients[c].down_until.is_none()
                            && !self.rng.chance(if self.faults { 0.3 } else { 0.0 })
                        {
                            let epoch = self.clients[c].epoch;
                            let d = self.delay();
                            self.send(
                                d,
                                Msg::Poke {
                                    client: c,
                                    epoch,
                                    cursor,
                                },
                            );
                        }
                    }
                }
            }
        }
    }

    /// Every recorded result the server sends is already durable.
    fn check_acks(&mut self, mutations: &[Mutation], body: &[u8]) {
        let v: Value = serde_json::from_slice(body).expect("push response JSON");
        let results = v["results"].as_array().expect("results");
        assert_eq!(results.len(), mutations.len());
        for (m, r) in mutations.iter().zip(results) {
            let transient = r["code"] == json!("internal_error");
            let gap =
                r["code"] == json!("conflict") && r["error"].as_str().unwrap_or("").contains("gap");
            if transient || gap {
                continue;
            }
            let client = m.client_id.clone().expect("sim clients are sequenced");
            let seq = m.seq.expect("seq");
            let durable = self.ledger.seq.get(&client).copied().unwrap_or(0);
            assert!(
                durable >= seq,
                "{client} seq {seq} acknowledged before durable ({durable})"
            );
            let a = self.ledger.acked.entry(client).or_default();
            *a = (*a).max(seq);
        }
    }

    fn respond(&mut self, client: usize, epoch: u64, id: RequestId, status: u16, body: Bytes) {
        if self.faults && self.rng.chance(0.05) {
            self.counters.lost_responses += 1;
            return; // response lost
        }
        let d = self.delay();
        self.send(
            d,
            Msg::Response {
                client,
                epoch,
                id,
                status,
                body,
            },
        );
    }

    fn deliver(&mut self) {
        while let Some(entry) = self.net.first_entry() {
            if entry.key().0 > self.now_ms {
                break;
            }
            let msg = entry.remove();
            match msg {
                Msg::Request { client, epoch, req } => self.serve(client, epoch, req),
                Msg::RawPush(m) => {
                    let wall = self.wall();
                    let rid = self.next_rid;
                    self.next_rid += 1;
                    if let Some(e) = self.engine.as_mut() {
                        e.handle_push(wall, RequestId(rid), vec![m]);
                        self.route_outputs();
                    }
                }
                Msg::Response {
                    client,
                    epoch,
                    id,
                    status,
                    body,
                } => {
                    let now = self.now();
                    let cl = &mut self.clients[client];
                    if cl.epoch == epoch && cl.down_until.is_none() {
                        cl.replica.handle_response(now, id, status, &body);
                    }
                }
                Msg::Poke {
                    client,
                    epoch,
                    cursor,
                } => {
                    let now = self.now();
                    let cl = &mut self.clients[client];
                    if cl.epoch == epoch && cl.down_until.is_none() {
                        cl.replica.handle_poke(now, cursor);
                    }
                }
            }
        }
    }

    fn serve(&mut self, client: usize, epoch: u64, req: ClientRequest) {
        let wall = self.wall();
        let Some(engine) = self.engine.as_mut() else {
            return; // server down: the request is lost, the client times out
        };
        let rid = self.next_rid;
        self.next_rid += 1;
        let mutations = match &req.request {
            SyncRequest::Push(p) => p.mutations.clone(),
            _ => Vec::new(),
        };
        // Go through the HTTP parser like an adapter would.
        let body = req.body_bytes();
        let parsed = crate::handler::parse_http(
            "POST",
            req.http_path(),
            "",
            &body,
            &crate::Limits::default(),
        )
        .expect("client requests are valid");
        match engine.handle_request(wall, RequestId(rid), parsed) {
            Some(resp) => self.respond(client, epoch, req.id, resp.status, resp.body),
            None => {
                self.routes.insert(rid, (client, req.id, epoch, mutations));
                self.route_outputs();
            }
        }
    }

    // ---- clients ----

    fn clients_step(&mut self) {
        let now = self.now();
        for c in 0..self.clients.len() {
            let cl = &mut self.clients[c];
            if cl.replica.poll_timeout().is_some_and(|(t, _)| t <= now) {
                cl.replica.handle_timeout(now);
            }
            if let Some(req) = cl.replica.poll_request(now) {
                let epoch = cl.epoch;
                let dup = self.faults && self.rng.chance(0.05);
                let lost = self.faults && self.rng.chance(0.03);
                if dup {
                    self.counters.duplicates += 1;
                    let d = self.delay();
                    self.send(
                        d,
                        Msg::Request {
                            client: c,
                            epoch,
                            req: req.clone(),
                        },
                    );
                }
                if !lost {
                    let d = self.delay();
                    self.send(
                        d,
                        Msg::Request {
                            client: c,
                            epoch,
                            req,
                        },
                    );
                }
            }
            while let Some(ev) = self.clients[c].replica.poll_event() {
                if matches!(ev, crate::ReplicaEvent::Reset { .. }) {
                    self.counters.resets += 1;
                }
            }
        }
    }

    // ---- invariants ----

    fn check_step(&mut self) {
        for cl in &mut self.clients {
            let cur = cl.replica.cursor();
            assert!(
                cur >= cl.last_cursor,
                "{}: cursor went back {} -> {cur}",
                cl.name,
                cl.last_cursor
            );
            let head = self.ledger.head.get(&cl.scope).copied().unwrap_or(0);
            assert!(
                cur <= head,
                "{}: cursor {cur} beyond durable head {head}",
                cl.name
            );
            cl.last_cursor = cur;
        }
    }

    fn step(&mut self) {
        self.act();
        self.heal_partitions();
        self.server();
        self.deliver();
        self.clients_step();
        self.check_step();
        self.now_ms += 1 + self.rng.below(20);
        if !self.faults {
            // Healed: nothing random happens, so skip straight to the next event.
            let next = self.next_event_ms();
            if next > self.now_ms {
                self.now_ms = next;
            }
        }
    }

    /// The earliest time anything is scheduled (message, persist, timer).
    fn next_event_ms(&self) -> u64 {
        let mut next = u64::MAX;
        if let Some((&(t, _), _)) = self.net.first_key_value() {
            next = next.min(t);
        }
        if let Some((t, _)) = &self.persisting {
            next = next.min(*t);
        }
        for cl in &self.clients {
            if let Some((t, _)) = cl.replica.poll_timeout() {
                let ms = t.saturating_duration_since(self.base).as_millis() as u64;
                next = next.min(ms + 1);
            }
        }
        next
    }

    fn converged(&self) -> bool {
        let Some(e) = &self.engine else { return false };
        self.persisting.is_none()
            && !e.has_ready()
            && self
                .clients
                .iter()
                .all(|c| c.replica.is_settled() && c.replica.cursor() == e.durable_head(&c.scope))
    }

    /// Runs `steps` faulty steps, heals everything, runs until converged and
    /// checks the end state. Panics on a broken invariant.
    pub fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.step();
        }
        self.faults = false;
        self.heal_partitions();
        let deadline = self.now_ms + 120_000;
        while !self.converged() {
            assert!(self.now_ms < deadline, "no convergence after healing");
            self.step();
        }
        self.check_end();
    }

    fn check_end(&mut self) {
        let e = self.engine.as_ref().expect("up");
        let snaps: BTreeMap<&str, Value> = SCOPES
            .iter()
            .map(|&scope| {
                let req = SnapshotRequest {
                    scope: scope.into(),
                    client_id: None,
                };
                (scope, e.handle_snapshot(&req).data)
            })
            .collect();
        for cl in &self.clients {
            let snap_data = &snaps[cl.scope.as_str()];
            // Exactly once once delivered: every mutation made is applied.
            let durable = self.ledger.seq.get(&cl.name).copied().unwrap_or(0);
            assert_eq!(
                durable,
                cl.replica.last_seq(),
                "{}: applied vs made",
                cl.name
            );
            assert_eq!(cl.replica.pending().count(), 0);
            let state = serde_json::to_value(cl.replica.state()).unwrap();
            assert_eq!(
                &state, snap_data,
                "{}: state differs from server snapshot",
                cl.name
            );
            let confirmed = serde_json::to_value(cl.replica.confirmed_state()).unwrap();
            assert_eq!(&confirmed, snap_data);
        }
        // At most once: each counter equals the number of incr applied to it.
        for ((scope, key), n) in &self.ledger.incr_applied {
            assert_eq!(
                snaps[scope.as_str()].get(key),
                Some(&json!(n)),
                "{scope}: counter {key}"
            );
        }
        let incr_keys: BTreeSet<_> = self.ledger.incr_applied.keys().cloned().collect();
        for (scope, data) in &snaps {
            for k in data
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with('n') || *k == "r")
            {
                assert!(incr_keys.contains(&(scope.to_string(), k.clone())));
            }
        }
    }
}

impl Ledger {
    fn apply(&mut self, batch: &Batch, created: &BTreeMap<(String, u64), Mutation>) {
        for e in &batch.changes {
            let head = self.head.entry(e.change.scope.clone()).or_default();
            assert_eq!(
                e.change.cursor,
                *head + 1,
                "durable cursors are dense per scope"
            );
            *head = e.change.cursor;
        }
        for r in &batch.ids {
            assert!(self.ids.insert(r.id.clone()), "id {} applied twice", r.id);
            if r.result.ok {
                *self
                    .incr_applied
                    .entry((r.scope.clone(), "r".into()))
                    .or_default() += 1;
            }
        }
        for r in &batch.clients {
            let prev = self.seq.get(&r.client_id).copied().unwrap_or(0);
            assert_eq!(
                r.seq,
                prev + 1,
                "{}: seq applied in order, once, without gaps",
                r.client_id
            );
            self.seq.insert(r.client_id.clone(), r.seq);
            let m = &created[&(r.client_id.clone(), r.seq)];
            assert_eq!(
                r.scope, self.scope_of[&r.client_id],
                "recorded in its own scope"
            );
            if r.result.ok && m.name == "incr" {
                let key = m.args.as_ref().unwrap()["key"].as_str().unwrap().to_owned();
                *self.incr_applied.entry((r.scope.clone(), key)).or_default() += 1;
            }
        }
    }
}
