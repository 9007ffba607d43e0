//! The seeded whole-server simulator (`server_core::testing::simulation`):
//! one server core with live clients (some slow, some mute), sync replicas
//! over HTTP and `_sync`, a store with latency and failures, crashes and
//! restarts, a broker that goes away, time jumps and a shutdown. Invariants
//! are checked on every output and after every step.
//!
//! Runs seeds `0..SIM_SEEDS` (default 1000). A failure prints its seed;
//! `SIM_SEED=n cargo test -p server-core --test simulation` replays it alone.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use server_core::testing::simulation::{Counters, Decisions, Sabotage, Sim, run_seed};

/// Faulty steps per seed before healing.
fn steps(seed: u64) -> usize {
    150 + (seed % 4) as usize * 50
}

#[test]
fn simulation_seeds() {
    if let Ok(s) = std::env::var("SIM_SEED") {
        let seed = s.parse().expect("SIM_SEED is a number");
        eprintln!("{:?}", run_seed(seed, steps(seed), Instant::now()));
        return;
    }
    let n: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut total = Counters::default();
    for seed in 0..n {
        total.add(&run_seed(seed, steps(seed), Instant::now()));
    }
    eprintln!("{n} seeds: {total:?}");
    if n >= 200 {
        // The seeds really reach what the simulator claims to exercise.
        assert!(
            total.crashes > 20 && total.unacknowledged_commits > 0,
            "{total:?}"
        );
        assert!(
            total.persist_failures > 20 && total.unavailable > 0,
            "{total:?}"
        );
        assert!(total.landed_unanswered > 10, "{total:?}");
        assert!(total.answers_503 > 0 && total.replays > 0, "{total:?}");
        assert!(
            total.slow_closes > 20 && total.idle_closes > 20,
            "{total:?}"
        );
        assert!(
            total.peer_faults > 0 && total.vanished > 0 && total.kicks > 0,
            "{total:?}"
        );
        assert!(total.acked_http > 100 && total.acked_ws > 100, "{total:?}");
        assert!(total.pokes > 100 && total.deliveries > 1000, "{total:?}");
        assert!(total.broker_outages > 0 && total.broker_in > 0, "{total:?}");
        assert!(total.broker_lost > 0 && total.broker_out > 0, "{total:?}");
        assert!(
            total.trims > 0 && total.reloads > 0 && total.resets > 0,
            "{total:?}"
        );
        assert!(total.time_jumps > 0 && total.pings > 0, "{total:?}");
        assert!(total.reconnects > 0, "{total:?}");
        assert!(
            total.recoveries > 20 && total.recovery_misses > 20 && total.feed_reads > 500,
            "{total:?}"
        );
        // Runs where the broker keeps the feed's history.
        assert!(
            total.broker_numbered > 100 && total.broker_reads > 20 && total.broker_recoveries > 10,
            "{total:?}"
        );
    }
}

#[test]
fn same_seed_same_run() {
    let fingerprint = |seed| {
        let mut sim = Sim::new(Decisions::seeded(seed), Instant::now());
        sim.run(150);
        (sim.now_ms, format!("{:?}", sim.counters), sim.trace.clone())
    };
    assert_eq!(fingerprint(3), fingerprint(3));
    assert_ne!(fingerprint(3), fingerprint(4));
}

fn sabotaged_runs_fail(sabotage: Sabotage) {
    for seed in 0..5 {
        let mut sim = Sim::with_sabotage(Decisions::seeded(seed), Instant::now(), sabotage);
        let outcome = catch_unwind(AssertUnwindSafe(|| sim.run(steps(seed))));
        assert!(
            outcome.is_err(),
            "{sabotage:?} went unnoticed at seed {seed}"
        );
    }
}

#[test]
fn a_store_that_lies_is_caught() {
    sabotaged_runs_fail(Sabotage::LyingStore);
}

#[test]
fn a_consumer_that_stops_reading_is_caught() {
    sabotaged_runs_fail(Sabotage::StuckConsumer);
}
