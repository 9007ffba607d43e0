//! Abuse limits decided without IO, for the loops that meet clients before
//! the server core does: connections in total and per client IP (the accept
//! loop) and sync requests per second per client (the HTTP routes). Time is
//! an argument; the loops hold these under a lock and only ask.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use crate::config::RateLimit;

/// A token bucket: `burst` tokens at most, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(limit: RateLimit, now: Instant) -> Self {
        Self {
            tokens: f64::from(limit.burst.max(1)),
            at: now,
        }
    }

    /// Refills for the time since the last call, then takes one token if
    /// there is one. Time going backwards refills nothing.
    pub fn take(&mut self, limit: RateLimit, now: Instant) -> bool {
        self.refill(limit, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full at `now` (an idle client's can be dropped).
    pub fn is_full(&mut self, limit: RateLimit, now: Instant) -> bool {
        self.refill(limit, now);
        self.tokens >= f64::from(limit.burst.max(1))
    }

    fn refill(&mut self, limit: RateLimit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = self.at.max(now);
        let burst = f64::from(limit.burst.max(1));
        self.tokens = (self.tokens + elapsed * f64::from(limit.per_second)).min(burst);
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionRefused {
    /// The server holds its most connections.
    Total,
    /// This client IP holds its most connections.
    PerIp,
}

impl ConnectionRefused {
    /// The HTTP status of the refusal (503 for the server's limit, 429 for
    /// the client's).
    pub fn status(self) -> u16 {
        match self {
            ConnectionRefused::Total => 503,
            ConnectionRefused::PerIp => 429,
        }
    }

    /// The JSON error code.
    pub fn code(self) -> &'static str {
        "too_many_connections"
    }

    /// The message.
    pub fn message(self) -> &'static str {
        match self {
            ConnectionRefused::Total => "the server holds its most connections; retry later",
            ConnectionRefused::PerIp => "too many connections from this address",
        }
    }
}

/// Open connections, in total and per client IP, against their bounds.
#[derive(Debug, Clone, Default)]
pub struct ConnectionLimits {
    max_total: Option<usize>,
    max_per_ip: Option<usize>,
    total: usize,
    per_ip: BTreeMap<IpAddr, usize>,
    refused: u64,
    /// Loopback is bounded per IP like any other address.
    loopback_limited: bool,
}

impl ConnectionLimits {
    /// Limits with these bounds (`None`: unbounded).
    pub fn new(max_total: Option<usize>, max_per_ip: Option<usize>) -> Self {
        Self {
            max_total,
            max_per_ip,
            ..Self::default()
        }
    }

    /// Bounds loopback per IP too (by default it counts toward the total
    /// only): for a server whose clients reach it directly on this machine.
    pub fn limit_loopback(mut self, limited: bool) -> Self {
        self.loopback_limited = limited;
        self
    }

    /// Counts a new connection from `ip`, or refuses it (counted in
    /// [`ConnectionLimits::refused`]). Each `Ok` must be matched by one
    /// [`ConnectionLimits::close`]. Loopback counts toward the total only:
    /// it is this machine (local services, load tests, or a reverse proxy
    /// whose clients all arrive from one address), not one client.
    pub fn try_open(&mut self, ip: IpAddr) -> Result<(), ConnectionRefused> {
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        let refusal = if self.max_total.is_some_and(|m| self.total >= m) {
            Some(ConnectionRefused::Total)
        } else if (self.loopback_limited || !ip.is_loopback())
            && self.max_per_ip.is_some_and(|m| from_ip >= m)
        {
            Some(ConnectionRefused::PerIp)
        } else {
            None
        };
        if let Some(r) = refusal {
            self.refused += 1;
            return Err(r);
        }
        self.total += 1;
        self.per_ip.insert(ip, from_ip + 1);
        Ok(())
    }

    /// A connection from `ip` counted by `try_open` ended.
    pub fn close(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
            self.total -= 1;
        }
    }

    /// Connections open.
    pub fn open(&self) -> usize {
        self.total
    }

    /// Connections open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

/// Requests per second per client (a token bucket each), for sync requests.
#[derive(Debug, Clone)]
pub struct ClientRates {
    limit: RateLimit,
    buckets: BTreeMap<String, TokenBucket>,
    refused: u64,
}

impl ClientRates {
    /// Clients remembered before idle ones (full buckets) are forgotten.
    pub const PRUNE_ABOVE: usize = 4096;

    /// Rates bounded by `limit` per client.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: BTreeMap::new(),
            refused: 0,
        }
    }

    /// Whether `client` may make one more request at `now`.
    pub fn admit(&mut self, now: Instant, client: &str) -> bool {
        if self.buckets.len() > Self::PRUNE_ABOVE {
            let limit = self.limit;
            self.buckets.retain(|_, b| !b.is_full(limit, now));
        }
        let limit = self.limit;
        let bucket = self
            .buckets
            .entry(client.to_owned())
            .or_insert_with(|| TokenBucket::full(limit, now));
        let admitted = bucket.take(limit, now);
        if !admitted {
            self.refused += 1;
        }
        admitted
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Clients remembered.
    pub fn clients(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn connections_are_bounded_per_ip_and_in_total() {
        let mut l = ConnectionLimits::new(Some(3), Some(2));
        assert_eq!(l.try_open(ip(1)), Ok(()));
        assert_eq!(l.try_open(ip(1)), Ok(()));
        assert_eq!(l.try_open(ip(1)), Err(ConnectionRefused::PerIp));
        assert_eq!(l.try_open(ip(2)), Ok(()));
        assert_eq!(l.try_open(ip(3)), Err(ConnectionRefused::Total));
        assert_eq!((l.open(), l.open_from(ip(1)), l.refused()), (3, 2, 2));
        l.close(ip(1));
        assert_eq!(l.try_open(ip(3)), Ok(()));
        // A close never counted changes nothing.
        l.close(ip(9));
        assert_eq!(l.open(), 3);
        for i in [1, 2, 3] {
            l.close(ip(i));
        }
        assert_eq!(l.open(), 0);
        assert_eq!(ConnectionRefused::PerIp.status(), 429);
        assert_eq!(ConnectionRefused::Total.status(), 503);
    }

    #[test]
    fn loopback_counts_toward_the_total_only() {
        let mut l = ConnectionLimits::new(Some(4), Some(1));
        let local = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..3 {
            assert_eq!(l.try_open(local), Ok(()));
        }
        assert_eq!(l.try_open(ip(1)), Ok(()));
        assert_eq!(l.try_open(local), Err(ConnectionRefused::Total));
        assert_eq!(l.open_from(local), 3);
        let mut l = ConnectionLimits::new(None, Some(1)).limit_loopback(true);
        assert_eq!(l.try_open(local), Ok(()));
        assert_eq!(l.try_open(local), Err(ConnectionRefused::PerIp));
    }

    #[test]
    fn unbounded_limits_refuse_nothing() {
        let mut l = ConnectionLimits::new(None, None);
        for _ in 0..10_000 {
            assert!(l.try_open(ip(1)).is_ok());
        }
    }
}
