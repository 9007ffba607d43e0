//! Several server nodes on one PostgreSQL database, as a cluster runs them:
//! each node is a `server_core::ServerCore` whose persist and reload jobs run
//! `server_core::jobs` on a `PgStore` of its own (`node`). In the first
//! test one thread drives them a step at a time from a seed (`turns`):
//!
//! - pushes on a random node, of fresh mutations (with and without client
//!   sequences) and of mutations already answered, on the same node or
//!   another;
//! - the other nodes' commit notices arriving late, or lost and replaced by
//!   "anything may have changed" (what a listener that reconnects reports);
//! - pulls from random cursors; restarts; a node's connections cut by
//!   PostgreSQL (the next batch meets the writer's ended session and is
//!   tried again on a new one, reads run again on new ones); log retention
//!   trimming scopes behind the other nodes' backs; id records expiring.
//!
//! Every answer is checked against a model of what was acknowledged
//! (`model`):
//!
//! - every request is answered 200, even just after the node's connections
//!   were cut: no push is refused because another node wrote its scope, or
//!   because its batch met an ended session;
//! - a mutation pushed again, on any node, gets its first answer;
//! - the cursors acknowledged in a scope are dense, each given once;
//! - a pull returns the acknowledged changes at the cursors it names, and
//!   a snapshot the state they make at its cursor;
//! - `incr`, which reads the value it writes, counts every acknowledged
//!   increment once: a batch computed on a stale view and written anyway
//!   would lose one;
//! - a session watching a scope is poked with acknowledged cursors only,
//!   never going back.
//!
//! At the end (`end`), once every node has heard everything: each scope's stored
//! log is what was acknowledged, every node, and a node started afresh,
//! answers the snapshot the acknowledged changes make, and every watching
//! session was poked with the scope's head.
//!
//! The first test runs seeds `0..PG_NODES_SEEDS` (default 6; a failure
//! names its seed, and `PG_NODES_SEED=n` runs that one alone). In the
//! second, three nodes push at once, each on a thread of its own, so their
//! batches wait for each other's row locks, and restart now and then while
//! the others go on (`at_once`), with the same checks once they are done.

#[path = "../common/mod.rs"]
mod common;

mod at_once;
mod end;
mod model;
mod node;
mod turns;

use common::postgres_url;
use model::SCOPES;
use turns::Cluster;

/// What the runs did, summed over the seeds.
#[derive(Debug, Default)]
struct Counts {
    changes: u64,
    /// Batches refused as stale, and reads that locked scopes.
    refused: usize,
    locking_reads: usize,
    pokes: usize,
    restarts: usize,
    /// Connections cut under a node, and the batches that met an ended
    /// session (each tried again).
    cuts: usize,
    outages: usize,
    /// Batches that trimmed a log, and that expired id records.
    trims: usize,
    expiries: usize,
}

impl Counts {
    /// What a run's trace shows it did.
    fn of(trace: &[String], changes: u64) -> Counts {
        let count = |what: &str| trace.iter().filter(|l| l.contains(what)).count();
        let some = |what: &str| {
            let none = format!(" 0{what}");
            let found = |l: &&String| l.contains(what) && !l.contains(&none);
            trace.iter().filter(found).count()
        };
        Counts {
            changes,
            refused: count("scopes changed by another node"),
            locking_reads: count("(locking [\""),
            pokes: count(" pokes "),
            restarts: count(" restarts"),
            cuts: count(" loses its connections"),
            outages: trace
                .iter()
                .filter(|l| l.contains(" batch ") && l.contains(": Err(\""))
                .filter(|l| !l.contains("scopes changed by another node"))
                .count(),
            trims: some(" trims"),
            expiries: some(" expiries"),
        }
    }

    fn add(&mut self, o: &Counts) {
        self.changes += o.changes;
        self.refused += o.refused;
        self.locking_reads += o.locking_reads;
        self.pokes += o.pokes;
        self.restarts += o.restarts;
        self.cuts += o.cuts;
        self.outages += o.outages;
        self.trims += o.trims;
        self.expiries += o.expiries;
    }
}

fn run_seed(seed: u64, url: &str) -> Counts {
    let mut cluster = Cluster::new(seed, url);
    let steps = 120 + (seed % 3) as usize * 40;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..steps {
            cluster.step();
        }
        cluster.finish();
    }));
    if let Err(e) = result {
        eprintln!("--- the last steps of seed {seed} ---");
        for line in cluster.trace.iter().rev().take(40).rev() {
            eprintln!("{line}");
        }
        eprintln!(
            "seed {seed} failed; run it alone with \
             PG_NODES_SEED={seed} cargo test -p sync-postgres --test nodes"
        );
        std::panic::resume_unwind(e);
    }
    let changes = SCOPES.iter().map(|s| cluster.model.head(s)).sum();
    Counts::of(&cluster.trace, changes)
}

#[test]
fn nodes_taking_turns_acknowledge_each_change_once_and_agree() {
    let Some(url) = postgres_url() else { return };
    if let Ok(seed) = std::env::var("PG_NODES_SEED") {
        run_seed(seed.parse().expect("PG_NODES_SEED is a number"), &url);
        return;
    }
    let seeds: u64 = std::env::var("PG_NODES_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let mut total = Counts::default();
    for seed in 0..seeds {
        total.add(&run_seed(seed, &url));
    }
    eprintln!("{seeds} seeds: {total:?}");
    // The runs reach what they claim to exercise: nodes behind each other,
    // catching up under their locks, restarting, poking, trimming, expiring,
    // losing their connections, batches meeting an ended session.
    let c = &total;
    let all = [
        c.refused,
        c.locking_reads,
        c.pokes,
        c.restarts,
        c.cuts,
        c.outages,
        c.trims,
        c.expiries,
    ];
    assert!(
        seeds < 4 || (c.changes > 0 && all.iter().all(|&n| n > 0)),
        "{total:?}"
    );
}

#[test]
fn nodes_pushing_at_once_acknowledge_each_change_once_and_agree() {
    let Some(url) = postgres_url() else { return };
    let (model, trace) = at_once::run(1, &url, 3, 400);
    let changes = SCOPES.iter().map(|s| model.head(s)).sum();
    let counts = Counts::of(&trace, changes);
    eprintln!("three nodes at once: {counts:?}");
    // They did get in each other's way, restarted meanwhile, and lost
    // their connections in the middle of batches.
    let reached = counts.changes > 0
        && counts.locking_reads > 0
        && counts.restarts > 0
        && counts.cuts > 0
        && counts.outages > 0;
    assert!(reached, "{counts:?}");
}
