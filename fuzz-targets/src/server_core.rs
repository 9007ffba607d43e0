//! The whole server core driven by arbitrary choices: the seeded whole-server
//! simulator (`server_core::testing::simulation`) with every choice read from
//! the fuzz input, so the fuzzer picks the live clients' frames (subscribe,
//! publish, `_sync`, closes, vanishing, peer faults), which consumers are
//! slow or mute, the replicas' mutations, store latency and failures,
//! crashes and restarts, broker outages, trims, reloads and time jumps. The
//! simulator's invariants (nothing acknowledged, served or poked before
//! durable; acknowledged pushes survive crashes exactly once with their
//! original results; slow consumers closed without slowing the others; every
//! request answered once; no session, waiter, command or timer left after the
//! shutdown; convergence) panic when broken.

use server_core::testing::simulation::{Decisions, Sim};

/// Runs one input; panics on a broken invariant.
pub fn run(data: &[u8]) {
    // Every step reads a handful of choices; more input, more steps.
    let steps = 20 + data.len().min(4096) / 4;
    Sim::new(Decisions::from_bytes(data), std::time::Instant::now()).run(steps);
}
