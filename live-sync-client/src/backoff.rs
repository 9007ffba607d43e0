//! Exponential backoff with full jitter for reconnects, from a seeded
//! generator so a test can predict every delay.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::ReconnectPolicy;

/// Reconnect delays after consecutive failures (see [`ReconnectPolicy`] for
/// the formula).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
    rng: ChaCha8Rng,
}

impl Backoff {
    /// A backoff following `policy`, seeded from `policy.seed` or, without one,
    /// from the process's hash randomness (different per client).
    pub fn new(policy: &ReconnectPolicy) -> Self {
        let seed = policy.seed.unwrap_or_else(|| {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        Backoff {
            base: policy.base,
            max: policy.max.max(policy.base),
            failures: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Failures since the last [`Backoff::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(31);
        self.failures = self.failures.saturating_add(1);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        let nanos = u64::try_from(full.as_nanos()).unwrap_or(u64::MAX);
        let jitter = match nanos.checked_add(1) {
            Some(span) => self.rng.next_u64() % span,
            None => self.rng.next_u64(),
        };
        Duration::from_nanos(jitter)
    }

    /// Forgets the failures after a healthy connection.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(seed: u64) -> ReconnectPolicy {
        ReconnectPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(3),
            seed: Some(seed),
            ..ReconnectPolicy::default()
        }
    }

    #[test]
    fn delays_stay_within_a_doubling_window_and_stop_at_max() {
        let mut b = Backoff::new(&policy(9));
        for n in 0..40u32 {
            let d = b.next_delay();
            let full = Duration::from_millis(100)
                .saturating_mul(1u32 << n.min(31))
                .min(Duration::from_secs(3));
            assert!(d <= full, "failure {n}: {d:?} vs {full:?}");
        }
        assert_eq!(b.failures(), 40);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn first_retries_of_many_clients_spread_over_the_whole_first_window() {
        // Full jitter: a crowd of clients (one seed each) lands all over
        // [0, base], not in its upper half only.
        let firsts: Vec<Duration> = (0..200)
            .map(|seed| Backoff::new(&policy(seed)).next_delay())
            .collect();
        let base = Duration::from_millis(100);
        assert!(firsts.iter().all(|d| *d <= base));
        let quarter = |q: u32| {
            firsts
                .iter()
                .filter(|d| **d >= base * q / 4 && **d < base * (q + 1) / 4)
                .count()
        };
        for q in 0..4 {
            assert!(quarter(q) >= 20, "quarter {q}: {} of 200", quarter(q));
        }
    }

    #[test]
    fn a_seed_fixes_the_sequence_and_seeds_differ() {
        let run = |seed| {
            let mut b = Backoff::new(&policy(seed));
            (0..10).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn zero_base_never_panics_and_waits_nothing() {
        let mut b = Backoff::new(&ReconnectPolicy {
            base: Duration::ZERO,
            max: Duration::ZERO,
            seed: Some(1),
            ..ReconnectPolicy::default()
        });
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}
