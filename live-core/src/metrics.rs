//! Counters an operator wants to graph.

/// A snapshot of the hub's counters, from [`Hub::metrics`](crate::Hub::metrics).
/// Gauges are current values; totals only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Gauge: open sessions (authenticating or active).
    pub sessions: usize,
    /// Gauge: topics with at least one subscriber.
    pub topics: usize,
    /// Gauge: subscriptions (session, topic pairs).
    pub subscriptions: usize,
    /// Total: sessions ever opened.
    pub sessions_opened: u64,
    /// Total: data frames (text or binary) received.
    pub messages_in: u64,
    /// Total: bytes of data frames received.
    pub bytes_in: u64,
    /// Total: text frames handed to the adapter (deliveries, error frames, sends).
    pub messages_out: u64,
    /// Total: bytes of text frames handed to the adapter.
    pub bytes_out: u64,
    /// Total: publishes fanned out (client and server).
    pub publishes: u64,
    /// Total: error frames sent to clients.
    pub errors_sent: u64,
    /// Total: sessions closed as slow consumers (4008).
    pub slow_consumer_closes: u64,
    /// Total: sessions closed for what the peer sent: over the read limit
    /// (1009), text that is not UTF-8 (1007), broken framing (1002), whether
    /// the hub or the transport's WebSocket library found it.
    pub peer_fault_closes: u64,
    /// Gauge: topics with a history running.
    pub history_topics: usize,
    /// Gauge: publications held in history.
    pub history_entries: usize,
    /// Gauge: bytes of the frames held in history.
    pub history_bytes: usize,
    /// Total: rings dropped because there were more than
    /// [`Limits::max_history_topics`](crate::Limits::max_history_topics).
    pub history_topics_dropped: u64,
    /// Gauge: (session, topic) pairs of sessions that hear joins and leaves.
    pub presence_watchers: usize,
    /// Total: subscribes naming a position that got everything they missed.
    pub recoveries: u64,
    /// Total: subscribes naming a position that was gone (`recovered:false`).
    pub recoveries_failed: u64,
    /// Total: publications on topics whose history a broker keeps that it
    /// could not take, delivered on this node only without an offset.
    pub history_unnumbered: u64,
}
