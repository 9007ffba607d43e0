//! What the core does while a shared store is away: it waits it out for a
//! while instead of answering 503 at once.
//!
//! The store's session may have ended under a batch (a database restart, a
//! failover, an operator ending sessions) while the database itself is back
//! or was never down, and whether the batch landed is then unknown. Another
//! try is safe either way: a shared store checks every batch against the
//! versions it knows of its scopes, so if an earlier try landed the next is
//! refused as stale, the scopes are read back with that try's records, and
//! its pushes are answered as replays with their first answers; if none
//! landed, the next writes it.
//!
//! So a batch that meets an outage is tried again at once, then, while
//! [`crate::CoreConfig::outage_wait`] has not passed since the outage
//! began, after pauses growing from [`PAUSE`] to [`PAUSE_MAX`] during which
//! no job goes out (pushes arriving meanwhile join the next try). Past
//! that, a failed try answers its pushes 503 at once, until a job succeeds
//! again: a store that stays away is not waited for twice. A read that
//! meets the outage (the locking read pushes on a contended scope wait for,
//! a read a pull waits for) is tried again the same way, its requests
//! waiting meanwhile (see reload.rs). A store of one node's own is not
//! waited for: its failures are answered at once.
//!
//! The outage begins when the first failed try went out, not when it
//! failed: a database that does not answer at all (a network partition)
//! fails a try only at the store's own timeout, and the try at once is
//! made only if that failure came quickly ([`QUICK_FAILURE`]) or the wait
//! has time left. So a push waits at most `outage_wait` plus one store
//! timeout, not two timeouts past the wait.

use std::time::{Duration, Instant};

use sync_core::App;

use super::ServerCore;
use crate::policy::Policy;

/// The first pause after a job met an outage (after the try at once);
/// each later one doubles, up to [`PAUSE_MAX`].
pub(super) const PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between tries.
pub(super) const PAUSE_MAX: Duration = Duration::from_millis(500);

/// A first try that failed within this of going out met an ended session
/// or a refused connection rather than a timeout: it is tried again at once
/// even when `outage_wait` is shorter (0 included), since the database is
/// often back by then and another try costs little.
pub(super) const QUICK_FAILURE: Duration = Duration::from_millis(500);

/// A shared store found unreachable by this node's jobs, until one
/// succeeds again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outage {
    /// When the first job that met it went out.
    since: Instant,
    /// Jobs that met it since.
    failures: u32,
    /// No job goes out before this: the pause after a failed try.
    resume_at: Option<Instant>,
}

impl Outage {
    fn began(tried_at: Instant) -> Outage {
        Outage {
            since: tried_at,
            failures: 0,
            resume_at: None,
        }
    }

    /// A job failed at `now`: whether what waits for it is tried again,
    /// waiting for at most `wait` since the outage began; the pause before
    /// that try is [`Outage::resume_at`].
    fn failed(&mut self, now: Instant, wait: Duration) -> bool {
        self.failures += 1;
        let elapsed = now.saturating_duration_since(self.since);
        let Some(pause) = pause_after(self.failures, elapsed, wait) else {
            return false;
        };
        self.resume_at = (!pause.is_zero()).then(|| now + pause);
        true
    }

    /// When the pause after a failed try ends, if one is under way.
    pub(super) fn resume_at(&self) -> Option<Instant> {
        self.resume_at
    }
}

/// The pause before the next try after failed try number `failures` (the
/// first is 1), `elapsed` after the outage began (when the first failed try
/// went out): none after the first if it failed quickly or `wait` has not
/// passed, then doubling from [`PAUSE`] to [`PAUSE_MAX`], ending no later
/// than `wait` after the outage began; `None` once `wait` has passed.
fn pause_after(failures: u32, elapsed: Duration, wait: Duration) -> Option<Duration> {
    if failures <= 1 {
        return (elapsed < wait.max(QUICK_FAILURE)).then_some(Duration::ZERO);
    }
    let left = wait.checked_sub(elapsed).filter(|left| !left.is_zero())?;
    let doublings = (failures - 2).min(16);
    Some((PAUSE * 2u32.pow(doublings)).min(PAUSE_MAX).min(left))
}

impl<U, P, A> ServerCore<U, P, A>
where
    U: Clone + Send + 'static,
    P: Policy<U> + Send + Sync + 'static,
    A: App,
{
    /// A job that went out at `tried_at` met an outage of the store:
    /// whether, the store being shared, what waits for the job (a batch's
    /// pushes, the requests waiting for a read) is tried again.
    pub(super) fn waits_out_outage(&mut self, tried_at: Instant) -> bool {
        if !self.config.shared_store {
            return false;
        }
        let (now, wait) = (self.now, self.config.outage_wait);
        let outage = self.outage.get_or_insert_with(|| Outage::began(tried_at));
        outage.failed(now, wait)
    }

    /// Whether jobs wait for a pause after a failed try to end.
    pub(super) fn pausing_for_outage(&self) -> bool {
        self.outage.is_some_and(|o| o.resume_at.is_some())
    }

    /// The pause after a failed try is over, by `now`: the next job may go
    /// out.
    pub(super) fn resume_after_outage(&mut self) {
        if let Some(outage) = &mut self.outage
            && outage.resume_at.is_some_and(|at| at <= self.now)
        {
            outage.resume_at = None;
        }
    }

    /// A job succeeded: the store is back.
    pub(super) fn store_back(&mut self) {
        self.outage = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tries' times, in ms since the outage began, when every try
    /// fails at once and the next starts when its pause ends.
    fn schedule(wait: Duration) -> Vec<u128> {
        let mut elapsed = Duration::ZERO;
        let mut tries = vec![0];
        let mut failures = 0;
        loop {
            failures += 1;
            let Some(pause) = pause_after(failures, elapsed, wait) else {
                return tries;
            };
            elapsed += pause;
            tries.push(elapsed.as_millis());
        }
    }

    #[test]
    fn tries_at_once_then_after_doubling_pauses_until_the_wait_is_over() {
        let tries = schedule(Duration::from_secs(2));
        assert_eq!(tries, [0, 0, 50, 150, 350, 750, 1250, 1750, 2000]);
        assert_eq!(schedule(Duration::ZERO), [0, 0], "one more try at once");
        let long = schedule(Duration::from_secs(60));
        let pauses: Vec<u128> = long.windows(2).map(|w| w[1] - w[0]).collect();
        let capped = &pauses[5..pauses.len() - 1];
        assert!(capped.iter().all(|p| *p == 500), "{pauses:?}");
        assert_eq!(long.last(), Some(&60_000));
    }

    #[test]
    fn a_first_try_that_failed_slowly_is_tried_at_once_only_within_the_wait() {
        let (ms, wait) = (Duration::from_millis, Duration::from_secs(2));
        // A store timing out after 5 s: 503 then, not after a second 5 s.
        assert_eq!(pause_after(1, Duration::from_secs(5), wait), None);
        assert_eq!(pause_after(1, ms(1_999), wait), Some(Duration::ZERO));
        // An ended session or a refused connection fails quickly: tried
        // again at once even with no wait.
        assert_eq!(pause_after(1, ms(20), Duration::ZERO), Some(Duration::ZERO));
        assert_eq!(pause_after(1, ms(600), Duration::ZERO), None);
        // Later tries stop at the wait, however they failed.
        assert_eq!(pause_after(2, ms(1_900), wait), Some(ms(50)));
        assert_eq!(pause_after(2, ms(2_000), wait), None);
    }
}
