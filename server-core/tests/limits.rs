//! Per-client request rates over time (the instants come from the test, as
//! they come from a loop's clock in the server).

use std::time::{Duration, Instant};

use server_core::RateLimit;
use server_core::limits::ClientRates;

#[test]
fn client_rates_are_per_client_and_refill_with_time() {
    let limit = RateLimit {
        per_second: 2,
        burst: 2,
    };
    let t0 = Instant::now();
    let mut r = ClientRates::new(limit);
    assert!(r.admit(t0, "a"));
    assert!(r.admit(t0, "a"));
    assert!(!r.admit(t0, "a"));
    assert!(r.admit(t0, "b"), "another client has its own bucket");
    assert!(r.admit(t0 + Duration::from_millis(500), "a"));
    assert!(!r.admit(t0 + Duration::from_millis(500), "a"));
    assert_eq!(r.refused(), 2);
}

#[test]
fn idle_clients_are_forgotten_past_the_bound() {
    let limit = RateLimit {
        per_second: 1,
        burst: 1,
    };
    let t0 = Instant::now();
    let mut r = ClientRates::new(limit);
    for i in 0..=ClientRates::PRUNE_ABOVE {
        r.admit(t0, &i.to_string());
    }
    assert_eq!(r.clients(), ClientRates::PRUNE_ABOVE + 1);
    r.admit(t0 + Duration::from_secs(5), "new");
    assert_eq!(r.clients(), 1, "only the new client is remembered");
}
