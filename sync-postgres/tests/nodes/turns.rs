//! Nodes taking turns on one thread, every choice from a seed: pushes,
//! notices heard late or lost, pulls, snapshots, restarts, and connections
//! to PostgreSQL cut under a node. Each answer is checked as it comes. The nodes never wait for each other's row locks
//! here; a lock a node kept after its turn would make the next node wait,
//! and the store's timeout turns that into a failed push.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::json;
use server_core::CoreConfig;
use sync_core::testing::Decisions;
use sync_core::{PullResponse, PushResponse, SnapshotResponse, Timestamp};

use crate::common::Schema;
use crate::end::check_end;
use crate::model::{ID_RETENTION_MS, Model, SCOPES, WALL_BASE};
use crate::node::{Node, Turn, cut, node_url};

const CLIENTS: [&str; 3] = ["k0", "k1", "k2"];

pub(crate) struct Cluster {
    rng: Decisions,
    url: String,
    config: CoreConfig,
    base: Instant,
    now_ms: u64,
    nodes: Vec<Node>,
    /// Per node: commits of other nodes it has not heard of yet (`None`:
    /// anything may have changed).
    notices: Vec<VecDeque<Option<String>>>,
    pub(crate) model: Model,
    pub(crate) trace: Vec<String>,
    /// Last, so it is dropped after the nodes' connections.
    schema: Schema,
}

impl Cluster {
    pub(crate) fn new(seed: u64, url: &str) -> Cluster {
        let mut rng = Decisions::seeded(seed);
        let mut config = CoreConfig::with_seed(seed);
        config.shared_store = true;
        config.engine.id_retention_ms = ID_RETENTION_MS;
        config.engine.keep_changes = rng.chance(0.5).then(|| 2 + rng.below(5));
        let mut cluster = Cluster {
            rng,
            url: url.to_owned(),
            config,
            base: Instant::now(),
            now_ms: 0,
            nodes: Vec::new(),
            notices: Vec::new(),
            model: Model::default(),
            trace: Vec::new(),
            schema: Schema::fresh(url, "nodes"),
        };
        for n in 0..2 + cluster.rng.below(2) as usize {
            let node = cluster.start_node(n);
            cluster.nodes.push(node);
            cluster.notices.push(VecDeque::new());
        }
        cluster
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.now_ms)
    }

    fn wall(&self) -> Timestamp {
        Timestamp::from_millis(WALL_BASE + self.now_ms)
    }

    fn log(&mut self, line: String) {
        self.trace.push(format!("t={} {line}", self.now_ms));
    }

    fn start_node(&mut self, n: usize) -> Node {
        let url = node_url(&self.url, &self.schema, n);
        let store = (url.as_str(), self.schema.options());
        let clock = (self.now(), self.wall());
        Node::start(n, store, &self.config, clock, &mut self.rng)
    }

    /// Takes in what node `n` did: its lines go to the trace, its commits
    /// to the other nodes as notices; returns its pokes, to check once the
    /// model holds what the turn acknowledged.
    fn take(&mut self, n: usize, turn: Turn) -> Vec<(String, u64)> {
        for line in turn.lines {
            self.log(line);
        }
        for (other, notices) in self.notices.iter_mut().enumerate() {
            if other != n {
                notices.extend(turn.committed.iter().cloned().map(Some));
            }
        }
        turn.pokes
    }

    fn check_pokes(&self, pokes: Vec<(String, u64)>) {
        for (scope, cursor) in pokes {
            self.model.check_poke(&scope, cursor);
        }
    }

    fn pick_node(&mut self) -> usize {
        self.rng.below(self.nodes.len() as u64) as usize
    }

    fn pick_scope(&mut self) -> &'static str {
        SCOPES[self.rng.below(SCOPES.len() as u64) as usize]
    }

    fn push(&mut self) {
        let n = self.pick_node();
        let clients: Vec<String> = CLIENTS.map(str::to_owned).to_vec();
        let mutations = (self.model).push(&mut self.rng, &clients, Some(self.now_ms));
        let ids: Vec<&str> = mutations.iter().map(|m| m.id.as_str()).collect();
        self.log(format!("node {n} push {ids:?}"));
        let body = json!({ "mutations": mutations });
        let now = self.now();
        let ((status, answer), turn) = self.nodes[n].request(now, "/push", &body);
        let pokes = self.take(n, turn);
        let text = String::from_utf8_lossy(&answer).into_owned();
        assert_eq!(status, 200, "node {n}: push {body} answered {text}");
        let answer: PushResponse = serde_json::from_slice(&answer).expect("a push answer");
        assert_eq!(answer.results.len(), mutations.len(), "{text}");
        for (m, r) in mutations.iter().zip(&answer.results) {
            self.model.answered(m, r, self.now_ms);
        }
        self.check_pokes(pokes);
    }

    fn pull(&mut self) {
        let n = self.pick_node();
        let scope = self.pick_scope();
        let cursor = self.rng.below(self.model.head(scope) + 1);
        let limit = 1 + self.rng.below(6);
        let body = json!({"scope": scope, "cursor": cursor, "limit": limit});
        let now = self.now();
        let ((status, answer), turn) = self.nodes[n].request(now, "/pull", &body);
        let pokes = self.take(n, turn);
        self.check_pokes(pokes);
        let text = String::from_utf8_lossy(&answer).into_owned();
        self.log(format!("node {n} pull {body}: {status}"));
        if status == 410 {
            let trims = self.config.engine.keep_changes.is_some();
            assert!(trims, "410 without retention: {text}");
            return;
        }
        assert_eq!(status, 200, "node {n}: pull {body} answered {text}");
        let page: PullResponse = serde_json::from_slice(&answer).expect("a pull answer");
        self.model.check_page(scope, cursor, limit, &page);
    }

    fn snapshot(&mut self) {
        let n = self.pick_node();
        let scope = self.pick_scope();
        let now = self.now();
        let body = json!({ "scope": scope });
        let ((status, answer), turn) = self.nodes[n].request(now, "/snapshot", &body);
        let pokes = self.take(n, turn);
        self.check_pokes(pokes);
        let text = String::from_utf8_lossy(&answer).into_owned();
        assert_eq!(status, 200, "node {n}: snapshot of {scope} answered {text}");
        let snapshot: SnapshotResponse = serde_json::from_slice(&answer).expect("a snapshot");
        self.log(format!(
            "node {n} snapshot of {scope} at {}",
            snapshot.cursor
        ));
        self.model.check_snapshot(scope, &snapshot);
    }

    /// Node `n` hears of some of the commits it has not heard of (all of
    /// them with `all`), in order; now and then one is lost on the way and
    /// replaced by "anything may have changed", as a listener that
    /// reconnects reports it.
    fn hear(&mut self, n: usize, all: bool) {
        let waiting = self.notices[n].len();
        let count = match all {
            true => waiting,
            false => self.rng.below(waiting as u64 + 1) as usize,
        };
        for _ in 0..count {
            let Some(mut notice) = self.notices[n].pop_front() else {
                break;
            };
            if !all && self.rng.chance(0.05) {
                notice = None;
            }
            self.log(format!("node {n} hears {notice:?}"));
            let now = self.now();
            let turn = self.nodes[n].hear(now, notice);
            let pokes = self.take(n, turn);
            self.check_pokes(pokes);
        }
    }

    /// Every connection a node has to PostgreSQL is cut.
    fn cut(&mut self) {
        let n = self.pick_node();
        self.log(format!("node {n} loses its connections"));
        cut(&self.schema, n);
        // Reads run again on a new connection, and a batch that meets the
        // writer's ended session is tried again on one: nothing is answered
        // 503, as PostgreSQL itself is up.
    }

    fn restart(&mut self) {
        let n = self.pick_node();
        self.log(format!("node {n} restarts"));
        // The old store's connections close with it; the new node loads
        // everything, so it has nothing to hear of yet.
        self.nodes[n] = self.start_node(n);
        self.notices[n].clear();
    }

    /// Time passes: every node hears the wall clock and handles the
    /// deadlines that passed.
    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        let (now, wall) = (self.now(), self.wall());
        for n in 0..self.nodes.len() {
            self.nodes[n].core.handle_wall_clock(now, wall);
            let turn = self.nodes[n].tick(now);
            let pokes = self.take(n, turn);
            self.check_pokes(pokes);
        }
    }

    pub(crate) fn step(&mut self) {
        let ms = self.rng.below(300);
        self.advance(ms);
        match self.rng.below(40) {
            0..=21 => self.push(),
            22..=25 => self.pull(),
            26 | 27 => self.snapshot(),
            28..=37 => {
                let n = self.pick_node();
                self.hear(n, false);
            }
            38 => self.cut(),
            _ => self.restart(),
        }
    }

    /// Every node hears everything; then everything agrees with the model.
    pub(crate) fn finish(&mut self) {
        for n in 0..self.nodes.len() {
            self.hear(n, true);
        }
        // Reads that failed are tried again.
        for _ in 0..6 {
            self.advance(1_100);
        }
        let fresh = self.start_node(self.nodes.len());
        self.nodes.push(fresh);
        let now = self.now();
        let store = (self.url.as_str(), self.schema.options());
        let mut lines = Vec::new();
        check_end(&self.model, &mut self.nodes, store, now, &mut lines);
        for line in lines {
            self.log(line);
        }
    }
}
