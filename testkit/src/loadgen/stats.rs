//! Latency histograms and the numbers a load run prints.
//!
//! Latencies are recorded in microseconds in an HDR histogram with two significant
//! digits (1% resolution), small enough to keep one per connection task and merge
//! at the end instead of sharing a lock on the hot path. Where thousands of tasks
//! record millions of samples a second (fan-out), their histograms would not fit
//! in any cache: they share one instead, a batch of samples at a time
//! ([`SharedLatencies`]).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency a histogram records (60 s); larger values are clamped.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds.
#[derive(Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl fmt::Debug for Latencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Latencies({})", self.summary())
    }
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Self {
        Latencies {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, 2)
                .expect("static bounds are valid"),
        }
    }

    /// Records one latency (clamped to [1 us, 60 s]).
    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one latency in microseconds (clamped to [1, 60 s]).
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// Count and percentiles.
    pub fn summary(&self) -> Summary {
        if self.hist.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.hist.len(),
            p50_us: self.hist.value_at_quantile(0.50),
            p99_us: self.hist.value_at_quantile(0.99),
            max_us: self.hist.max(),
        }
    }
}

/// One histogram that many connection tasks record into, a batch at a time.
///
/// A histogram per connection is about 26 KiB; a thousand of them do not fit
/// in any cache, so at millions of samples a second recording into them costs
/// more than reading the frames. Tasks instead keep a small [`LatencyBatch`]
/// and add it to this shared histogram under a lock once per batch.
#[derive(Clone, Default)]
pub struct SharedLatencies {
    hist: Arc<Mutex<Latencies>>,
}

impl SharedLatencies {
    /// An empty shared histogram.
    pub fn new() -> Self {
        SharedLatencies::default()
    }

    /// A batch that records into this histogram.
    pub fn batch(&self) -> LatencyBatch {
        LatencyBatch {
            pending: Vec::with_capacity(LatencyBatch::CAPACITY),
            shared: self.clone(),
        }
    }

    /// Count and percentiles of everything flushed so far.
    pub fn summary(&self) -> Summary {
        self.hist
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .summary()
    }

    fn add(&self, samples: &[u64]) {
        let mut hist = self.hist.lock().unwrap_or_else(PoisonError::into_inner);
        for &us in samples {
            hist.record_us(us);
        }
    }
}

/// Samples of one task waiting to be added to a [`SharedLatencies`]; added
/// when full, on [`LatencyBatch::flush`] and when dropped.
pub struct LatencyBatch {
    pending: Vec<u64>,
    shared: SharedLatencies,
}

impl LatencyBatch {
    /// Samples kept before they are added to the shared histogram.
    pub const CAPACITY: usize = 256;

    /// Records one latency in microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.pending.push(us);
        if self.pending.len() >= Self::CAPACITY {
            self.flush();
        }
    }

    /// Adds the waiting samples to the shared histogram.
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.shared.add(&self.pending);
            self.pending.clear();
        }
    }
}

impl Drop for LatencyBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Count and latency percentiles of a run, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest sample.
    pub max_us: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} p99 {} max {} (n={})",
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.max_us),
            self.count
        )
    }
}

/// Microseconds as milliseconds with three decimals, e.g. `1.250ms`.
pub fn ms(us: u64) -> String {
    format!("{}.{:03}ms", us / 1000, us % 1000)
}

/// Events per second over `elapsed` (0 when nothing elapsed).
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s <= 0.0 { 0.0 } else { count as f64 / s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latencies::new();
        for us in 1..=1000 {
            l.record_us(us);
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        // Two significant digits: within 1% of the exact value.
        assert!((495..=505).contains(&s.p50_us), "{s:?}");
        assert!((980..=1000).contains(&s.p99_us), "{s:?}");
        assert!((990..=1010).contains(&s.max_us), "{s:?}");
    }

    #[test]
    fn merge_adds_samples_and_empty_is_zero() {
        assert_eq!(Latencies::new().summary(), Summary::default());
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(100));
        b.record(Duration::from_millis(100));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 3);
        assert!((99_000..=101_000).contains(&s.p50_us), "{s:?}");
        assert!(s.max_us >= 99_000);
    }

    #[test]
    fn batches_reach_the_shared_histogram_when_full_flushed_or_dropped() {
        let shared = SharedLatencies::new();
        let mut a = shared.batch();
        for us in 1..=LatencyBatch::CAPACITY as u64 {
            a.record_us(us);
        }
        // A full batch is added at once.
        assert_eq!(shared.summary().count, LatencyBatch::CAPACITY as u64);
        a.record_us(5);
        assert_eq!(shared.summary().count, LatencyBatch::CAPACITY as u64);
        a.flush();
        assert_eq!(shared.summary().count, LatencyBatch::CAPACITY as u64 + 1);
        let mut b = shared.batch();
        b.record_us(1_000_000);
        drop(b);
        let s = shared.summary();
        assert_eq!(s.count, LatencyBatch::CAPACITY as u64 + 2);
        assert!(s.max_us >= 990_000, "{s:?}");
    }

    #[test]
    fn clamps_out_of_range() {
        let mut l = Latencies::new();
        l.record_us(0);
        l.record(Duration::from_secs(3600));
        let s = l.summary();
        assert_eq!(s.count, 2);
        assert!(s.max_us >= MAX_LATENCY_US * 99 / 100);
    }

    #[test]
    fn formatting_and_rates() {
        assert_eq!(ms(1250), "1.250ms");
        assert_eq!(ms(7), "0.007ms");
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
        let s = Summary {
            count: 3,
            p50_us: 1000,
            p99_us: 2500,
            max_us: 3000,
        };
        assert_eq!(s.to_string(), "p50 1.000ms p99 2.500ms max 3.000ms (n=3)");
    }
}
