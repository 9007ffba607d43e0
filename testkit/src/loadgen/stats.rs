//! Latency histograms and the numbers a load run prints.
//!
//! Latencies are recorded in microseconds in an HDR histogram with two significant
//! digits (1% resolution), small enough to keep one per connection task and merge
//! at the end instead of sharing a lock on the hot path.

use std::fmt;
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
