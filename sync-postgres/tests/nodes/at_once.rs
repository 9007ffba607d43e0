//! Nodes pushing at the same time, each on a thread of its own, so their
//! batches really wait for each other's row locks in PostgreSQL: every
//! push must still be answered 200, and nothing acknowledged may be lost
//! or doubled. Each thread pushes fresh mutations of its own clients and
//! repeats acknowledged ones of any client, hears the other nodes' commits
//! now and then, pulls, takes snapshots, and now and then restarts its
//! node while the others go on. Meanwhile another thread cuts a random
//! node's connections every 30-120 ms, wherever its work is:
//! waiting for a lock, holding one, in the middle of a `COMMIT` (which may
//! then land unanswered). What a node showed (pokes, pages, snapshots) may
//! be of a commit whose thread has not recorded its answer yet, so it is
//! checked once all threads are done.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use server_core::CoreConfig;
use sync_core::testing::Decisions;
use sync_core::{PullResponse, PushResponse, SnapshotResponse, Timestamp};

use crate::common::Schema;
use crate::end::check_end;
use crate::model::{Model, SCOPES, WALL_BASE};
use crate::node::{Node, Turn, cut, node_url};

/// What a node showed, to check against the final model.
enum Shown {
    Poke(String, u64),
    Page {
        scope: &'static str,
        cursor: u64,
        limit: u64,
        page: PullResponse,
    },
    Snapshot(&'static str, SnapshotResponse),
}

/// What the threads share.
struct Shared {
    model: Mutex<Model>,
    /// Per node: commits of other nodes it has not heard of yet.
    notices: Vec<Mutex<VecDeque<Option<String>>>>,
    shown: Mutex<Vec<Shown>>,
    trace: Mutex<Vec<String>>,
    /// Per node: held while it starts (its connections are not cut then:
    /// a node that cannot load does not start, which is not under test).
    starting: Vec<Mutex<()>>,
    /// Node threads still running.
    running: AtomicUsize,
    /// Per node: when each cut of its connections ended (`None`: it is
    /// under way).
    cut_at: Vec<Mutex<Vec<Option<Instant>>>>,
}

/// Counts a node thread out when it ends, however it ends.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long after a cut ended a session it was asked to end may still be
/// going (PostgreSQL ends it a moment after it is asked to).
const CUT_LAG: Duration = Duration::from_millis(100);

impl Shared {
    /// Whether two cuts of node `n`'s connections may have ended sessions
    /// it used since `since`: once under a batch and once under its second
    /// try, the only way a push may still be answered 503.
    fn cut_twice(&self, n: usize, since: Instant) -> bool {
        let cut_at = self.cut_at[n].lock().expect("cuts");
        let recent = |at: &&Option<Instant>| at.is_none_or(|at| at + CUT_LAG >= since);
        cut_at.iter().filter(recent).count() >= 2
    }

    /// Takes in what node `n` did: its lines go to the trace, its commits
    /// to the other nodes as notices, its pokes to what was shown.
    fn take(&self, n: usize, turn: Turn) {
        for (other, notices) in self.notices.iter().enumerate() {
            if other != n {
                let committed = turn.committed.iter().cloned().map(Some);
                notices.lock().expect("notices").extend(committed);
            }
        }
        let pokes = turn.pokes.into_iter().map(|(s, c)| Shown::Poke(s, c));
        self.shown.lock().expect("shown").extend(pokes);
        self.trace.lock().expect("trace").extend(turn.lines);
    }
}

/// One node's thread: `steps` steps, choices from `rng`.
struct Driver<'a> {
    shared: &'a Shared,
    /// Starts node `n` afresh from the database.
    start: &'a (dyn Fn(usize, &mut Decisions) -> Node + Sync),
    node: Node,
    rng: Decisions,
    clients: Vec<String>,
    base: Instant,
    now_ms: u64,
}

impl Driver<'_> {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.now_ms)
    }

    fn push(&mut self) {
        let n = self.node.n;
        // Sent again only clients' mutations: their answers are kept by
        // sequence, not by this node's clock.
        let mutations =
            (self.shared.model.lock().expect("model")).push(&mut self.rng, &self.clients, None);
        let body = json!({ "mutations": mutations });
        // Sent again as a client would after a 503: the same mutations are
        // applied once, and the repeat gets the first answer.
        let Some((status, answer)) = std::iter::repeat_with(|| self.ask("/push", &body))
            .take(3)
            .flatten()
            .next()
        else {
            panic!("node {n}: push {body} answered 503 three times");
        };
        let text = String::from_utf8_lossy(&answer).into_owned();
        assert_eq!(status, 200, "node {n}: push {body} answered {text}");
        let answer: PushResponse = serde_json::from_slice(&answer).expect("a push answer");
        assert_eq!(answer.results.len(), mutations.len(), "{text}");
        let mut model = self.shared.model.lock().expect("model");
        for (m, r) in mutations.iter().zip(&answer.results) {
            model.answered(m, r, self.now_ms);
        }
    }

    /// Sends `body` to `path` on this node; its answer, or `None` for a
    /// 503 `unavailable` its connections being cut twice meanwhile allows.
    fn ask(&mut self, path: &str, body: &serde_json::Value) -> Option<(u16, Vec<u8>)> {
        let (n, sent) = (self.node.n, Instant::now());
        let (answer, turn) = self.node.request(self.now(), path, body);
        self.shared.take(n, turn);
        if answer.0 == 503 && self.shared.cut_twice(n, sent) {
            let line = format!("node {n} answered 503 after two cuts");
            self.shared.trace.lock().expect("trace").push(line);
            return None;
        }
        Some(answer)
    }

    fn hear(&mut self) {
        let waiting: Vec<_> = {
            let mut notices = self.shared.notices[self.node.n].lock().expect("notices");
            notices.drain(..).collect()
        };
        for notice in waiting {
            let turn = self.node.hear(self.now(), notice);
            self.shared.take(self.node.n, turn);
        }
    }

    fn read(&mut self) {
        let n = self.node.n;
        let scope = SCOPES[self.rng.below(SCOPES.len() as u64) as usize];
        if self.rng.chance(0.5) {
            let body = json!({ "scope": scope });
            let Some((status, answer)) = self.ask("/snapshot", &body) else {
                return;
            };
            let text = String::from_utf8_lossy(&answer);
            assert_eq!(status, 200, "node {n}: snapshot {body} answered {text}");
            let snapshot = serde_json::from_slice(&answer).expect("a snapshot");
            let shown = Shown::Snapshot(scope, snapshot);
            self.shared.shown.lock().expect("shown").push(shown);
            return;
        }
        let head = self.shared.model.lock().expect("model").head(scope);
        let cursor = self.rng.below(head + 1);
        let limit = 1 + self.rng.below(6);
        let body = json!({"scope": scope, "cursor": cursor, "limit": limit});
        let Some((status, answer)) = self.ask("/pull", &body) else {
            return;
        };
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status, 200, "node {n}: pull {body} answered {text}");
        let page = serde_json::from_slice(&answer).expect("a pull answer");
        let shown = Shown::Page {
            scope,
            cursor,
            limit,
            page,
        };
        self.shared.shown.lock().expect("shown").push(shown);
    }

    fn run(mut self, steps: usize) -> Node {
        for _ in 0..steps {
            self.now_ms += self.rng.below(50);
            let wall = Timestamp::from_millis(WALL_BASE + self.now_ms);
            self.node.core.handle_wall_clock(self.now(), wall);
            match self.rng.below(40) {
                0..=27 => self.push(),
                28..=35 => self.hear(),
                36..=38 => self.read(),
                _ => {
                    let n = self.node.n;
                    let line = format!("node {n} restarts");
                    self.shared.trace.lock().expect("trace").push(line);
                    // It loads everything: what it had not heard of is in.
                    self.shared.notices[n].lock().expect("notices").clear();
                    let _starting = self.shared.starting[n].lock().expect("starting");
                    self.node = (self.start)(n, &mut self.rng);
                }
            }
        }
        self.node
    }
}

/// `nodes` nodes, `steps` steps each, at once; then every node hears
/// everything and everything agrees with the model. Returns the model and
/// the trace.
pub(crate) fn run(seed: u64, url: &str, nodes: usize, steps: usize) -> (Model, Vec<String>) {
    let schema = Schema::fresh(url, "at_once");
    let mut config = CoreConfig::with_seed(seed);
    config.shared_store = true;
    let shared = Shared {
        model: Mutex::new(Model::default()),
        notices: (0..nodes).map(|_| Mutex::default()).collect(),
        shown: Mutex::default(),
        trace: Mutex::default(),
        starting: (0..nodes).map(|_| Mutex::default()).collect(),
        running: AtomicUsize::new(nodes),
        cut_at: (0..nodes).map(|_| Mutex::default()).collect(),
    };
    let base = Instant::now();
    let start = |n: usize, rng: &mut Decisions| {
        let clock = (base, Timestamp::from_millis(WALL_BASE));
        let url = node_url(url, &schema, n);
        let store = (url.as_str(), schema.options());
        Node::start(n, store, &config, clock, rng)
    };
    let mut done: Vec<Node> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..nodes)
            .map(|n| {
                let (shared, start) = (&shared, &start);
                s.spawn(move || {
                    let _running = Running(&shared.running);
                    let mut rng = Decisions::seeded(seed * 16 + n as u64);
                    let starting = shared.starting[n].lock().expect("starting");
                    let node = start(n, &mut rng);
                    drop(starting);
                    let clients = (0..2).map(|c| format!("n{n}k{c}")).collect();
                    let driver = Driver {
                        shared,
                        start,
                        node,
                        rng,
                        clients,
                        base,
                        now_ms: 0,
                    };
                    driver.run(steps)
                })
            })
            .collect();
        let (shared, schema) = (&shared, &schema);
        s.spawn(move || {
            let mut rng = Decisions::seeded(seed * 16 + 15);
            while shared.running.load(Ordering::SeqCst) > 0 {
                std::thread::sleep(Duration::from_millis(30 + rng.below(90)));
                let n = rng.below(nodes as u64) as usize;
                let _starting = shared.starting[n].lock().expect("starting");
                let line = format!("node {n} loses its connections");
                shared.trace.lock().expect("trace").push(line);
                shared.cut_at[n].lock().expect("cuts").push(None);
                cut(schema, n);
                let mut cut_at = shared.cut_at[n].lock().expect("cuts");
                *cut_at.last_mut().expect("this cut") = Some(Instant::now());
            }
        });
        let joined = threads.into_iter().map(|t| t.join());
        joined
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    let mut model = shared.model.into_inner().expect("model");
    let mut trace = shared.trace.into_inner().expect("trace");
    for node in &mut done {
        let waiting = std::mem::take(&mut *shared.notices[node.n].lock().expect("notices"));
        for notice in waiting {
            let turn = node.hear(base, notice);
            trace.extend(turn.lines);
            for (scope, cursor) in turn.pokes {
                model.check_poke(&scope, cursor);
            }
        }
    }
    for shown in shared.shown.into_inner().expect("shown") {
        match shown {
            Shown::Poke(scope, cursor) => model.check_poke(&scope, cursor),
            Shown::Page {
                scope,
                cursor,
                limit,
                page,
            } => model.check_page(scope, cursor, limit, &page),
            Shown::Snapshot(scope, snapshot) => model.check_snapshot(scope, &snapshot),
        }
    }
    done.push(start(nodes, &mut Decisions::seeded(seed)));
    let store = (url, schema.options());
    check_end(&model, &mut done, store, base, &mut trace);
    drop(done);
    (std::mem::take(&mut model), trace)
}
