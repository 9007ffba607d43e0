//! The sync engine and client replicas driven by arbitrary operations: the
//! seeded simulator (`sync_core::testing::simulation`) with every choice read from
//! the fuzz input instead of a generator, so the fuzzer picks the workload, the
//! delays, reorderings, duplicates, lost messages, partitions, persist failures,
//! trims, and crashes and restarts of the server and its store. The simulator's
//! invariants (dense durable cursors, at-most-once application, nothing
//! acknowledged before durable, no acknowledged mutation lost over a restart,
//! cursors never going back, convergence to the server's snapshot) panic when
//! broken.

use sync_core::testing::simulation::{Decisions, Sim};

/// Runs one input; panics on a broken invariant.
pub fn run(data: &[u8]) {
    // Every step reads a handful of choices; more input, more steps.
    let steps = 20 + data.len().min(4096) / 8;
    Sim::new(Decisions::from_bytes(data), std::time::Instant::now()).run(steps);
}
