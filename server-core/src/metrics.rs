//! Operator counters and their Prometheus text rendering (`/metrics`).
//!
//! The live counters come from `live_core::Hub::metrics`; the sync ones are
//! counted by the server core around the engine (the engine keeps none itself).

use std::fmt::Write;

/// Counters of the sync side, kept by the server core.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct SyncMetrics {
    /// Total: push requests handled (HTTP and WebSocket).
    pub pushes: u64,
    /// Total: mutations in those pushes.
    pub mutations: u64,
    /// Total: pull requests handled.
    pub pulls: u64,
    /// Total: snapshot requests handled.
    pub snapshots: u64,
    /// Total: sync requests answered with a non-2xx status.
    pub errors: u64,
    /// Total: batches made durable (group commits).
    pub batches: u64,
    /// Total: log changes made durable.
    pub changes: u64,
    /// Total: batches the store failed to persist.
    pub persist_failures: u64,
    /// Total: seconds spent persisting batches.
    pub persist_seconds: f64,
    /// Total: pokes published on `sync:<scope>`.
    pub pokes: u64,
    /// Total: pushes pushed again after their batch was refused because
    /// another node wrote their scope.
    pub stale_retries: u64,
    /// Total: pushes tried again after their batch met an outage of a
    /// shared store (see `CoreConfig::outage_wait`), once per try.
    pub outage_retries: u64,
    /// Total: scopes reloaded because another node wrote them.
    pub reloads: u64,
    /// Total: other nodes' commits to scopes this node holds nothing of
    /// and nobody here watches, so not read (a request naming one reads it
    /// first).
    pub notices_ignored: u64,
    /// Total: other nodes' commits to scopes this node holds but nobody
    /// here watches, not read then (the next request naming one reads it
    /// first).
    pub notices_deferred: u64,
    /// Total: seconds from sending each read of what other nodes wrote
    /// (locking or not) to taking in its answer. Pushes on the scopes a
    /// read locks wait that long, the wait for other nodes' turns included.
    pub reload_seconds: f64,
    /// Total: reads sent to lock scopes other nodes write too, for this
    /// node's next batch on them: each is a turn this node takes on those
    /// scopes' row locks (unless the store fails it).
    pub locking_reads: u64,
    /// Gauge: scopes this node treats as written by other nodes too (its
    /// pushes on them wait for a locking read), until a few of those reads
    /// in a row find nothing new.
    pub contended_scopes: u64,
    /// Gauge: scopes known to the engine.
    pub scopes: u64,
    /// Gauge: 1 while the shared store is unreachable (from a job that met
    /// an outage until a job succeeds), else 0.
    pub store_unreachable: u64,
}

/// Counters of the limits and credentials that keep sessions in bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct GuardMetrics {
    /// Total: in-band token refreshes accepted.
    pub refreshes: u64,
    /// Total: in-band token refreshes refused.
    pub refreshes_refused: u64,
    /// Total: sessions closed because their token expired (4001).
    pub tokens_expired: u64,
    /// Total: messages dropped over a session's rate limit.
    pub messages_limited: u64,
    /// Total: sessions closed for going on over their rate limit (4029).
    pub sessions_limited: u64,
    /// Total: connections refused over the connection limits (counted by
    /// the accept loop).
    pub connections_refused: u64,
    /// Total: sync requests refused over their rate limit (429).
    pub sync_limited: u64,
    /// Total: connections dropped because their headers (or TLS
    /// handshake) did not arrive within the header read timeout (counted
    /// by the accept loop).
    pub header_timeouts: u64,
    /// Gauge: connections the accept loop holds open (HTTP and WebSocket,
    /// including those still shaking hands).
    pub connections_open: u64,
    /// Gauge: WebSocket connection tasks alive (a leak shows here first).
    pub websockets_open: u64,
}

/// The broker link's connection, as the link reports it: shown only when a
/// link is attached. A node whose link is down serves its own clients but
/// fans nothing out, and says so only in its log unless this is watched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerMetrics {
    /// Gauge: the link is connected to the broker.
    pub connected: bool,
    /// Total: times the link lost a connection it had.
    pub disconnects: u64,
}

/// Everything `/metrics` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// The hub's counters.
    pub live: live_core::Metrics,
    /// The sync counters.
    pub sync: SyncMetrics,
    /// The limits' and credentials' counters.
    pub guard: GuardMetrics,
    /// The broker link's connection, once a link is attached.
    pub broker: Option<BrokerMetrics>,
}

impl MetricsSnapshot {
    /// A snapshot from its parts.
    pub fn new(live: live_core::Metrics, sync: SyncMetrics) -> Self {
        Self {
            live,
            sync,
            guard: GuardMetrics::default(),
            broker: None,
        }
    }

    /// The same snapshot with the broker link's connection.
    pub fn with_broker(mut self, broker: Option<BrokerMetrics>) -> Self {
        self.broker = broker;
        self
    }

    /// The same snapshot with the limits' counters.
    pub fn with_guard(mut self, guard: GuardMetrics) -> Self {
        self.guard = guard;
        self
    }
}

/// Renders a snapshot in the Prometheus text exposition format (version 0.0.4).
pub fn render(m: &MetricsSnapshot) -> String {
    let l = &m.live;
    let s = &m.sync;
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    let gauge = "gauge";
    let counter = "counter";
    metric(
        "live_sessions",
        gauge,
        "Open WebSocket sessions.",
        l.sessions.to_string(),
    );
    metric(
        "live_topics",
        gauge,
        "Topics with at least one subscriber.",
        l.topics.to_string(),
    );
    metric(
        "live_subscriptions",
        gauge,
        "Session-topic subscriptions.",
        l.subscriptions.to_string(),
    );
    metric(
        "live_sessions_opened_total",
        counter,
        "Sessions ever opened.",
        l.sessions_opened.to_string(),
    );
    metric(
        "live_messages_in_total",
        counter,
        "Data frames received.",
        l.messages_in.to_string(),
    );
    metric(
        "live_bytes_in_total",
        counter,
        "Bytes of data frames received.",
        l.bytes_in.to_string(),
    );
    metric(
        "live_messages_out_total",
        counter,
        "Text frames queued for sending.",
        l.messages_out.to_string(),
    );
    metric(
        "live_bytes_out_total",
        counter,
        "Bytes of text frames queued for sending.",
        l.bytes_out.to_string(),
    );
    metric(
        "live_publishes_total",
        counter,
        "Publishes fanned out.",
        l.publishes.to_string(),
    );
    metric(
        "live_errors_sent_total",
        counter,
        "Error frames sent to clients.",
        l.errors_sent.to_string(),
    );
    metric(
        "live_slow_consumer_closes_total",
        counter,
        "Sessions closed as slow consumers.",
        l.slow_consumer_closes.to_string(),
    );
    metric(
        "live_peer_fault_closes_total",
        counter,
        "Sessions closed for what the peer sent (too big, invalid UTF-8, broken framing).",
        l.peer_fault_closes.to_string(),
    );
    metric(
        "live_history_topics",
        gauge,
        "Topics with a history running.",
        l.history_topics.to_string(),
    );
    metric(
        "live_history_entries",
        gauge,
        "Publications held in topic histories.",
        l.history_entries.to_string(),
    );
    metric(
        "live_history_bytes",
        gauge,
        "Bytes of the frames held in topic histories.",
        l.history_bytes.to_string(),
    );
    metric(
        "live_history_topics_dropped_total",
        counter,
        "Topic histories dropped for going over the most topics with history.",
        l.history_topics_dropped.to_string(),
    );
    metric(
        "live_presence_watchers",
        gauge,
        "Session-topic pairs that receive joins and leaves.",
        l.presence_watchers.to_string(),
    );
    metric(
        "live_recoveries_total",
        counter,
        "Subscribes naming a position that got everything they missed.",
        l.recoveries.to_string(),
    );
    metric(
        "live_recoveries_failed_total",
        counter,
        "Subscribes naming a position that was gone (recovered false).",
        l.recoveries_failed.to_string(),
    );
    metric(
        "live_history_unnumbered_total",
        counter,
        "Publications on broker-kept history topics the broker could not take (delivered on this node only, without offset).",
        l.history_unnumbered.to_string(),
    );
    metric(
        "sync_pushes_total",
        counter,
        "Push requests handled.",
        s.pushes.to_string(),
    );
    metric(
        "sync_mutations_total",
        counter,
        "Mutations received in pushes.",
        s.mutations.to_string(),
    );
    metric(
        "sync_pulls_total",
        counter,
        "Pull requests handled.",
        s.pulls.to_string(),
    );
    metric(
        "sync_snapshots_total",
        counter,
        "Snapshot requests handled.",
        s.snapshots.to_string(),
    );
    metric(
        "sync_errors_total",
        counter,
        "Sync requests answered with an error status.",
        s.errors.to_string(),
    );
    metric(
        "sync_batches_total",
        counter,
        "Batches made durable (group commits).",
        s.batches.to_string(),
    );
    metric(
        "sync_changes_total",
        counter,
        "Log changes made durable.",
        s.changes.to_string(),
    );
    metric(
        "sync_persist_failures_total",
        counter,
        "Batches the store failed to persist.",
        s.persist_failures.to_string(),
    );
    metric(
        "sync_persist_seconds_total",
        counter,
        "Seconds spent persisting batches.",
        format!("{:.6}", s.persist_seconds),
    );
    metric(
        "sync_pokes_total",
        counter,
        "Pokes published on sync topics.",
        s.pokes.to_string(),
    );
    metric(
        "sync_stale_retries_total",
        counter,
        "Pushes pushed again after another node wrote their scope.",
        s.stale_retries.to_string(),
    );
    metric(
        "sync_outage_retries_total",
        counter,
        "Pushes tried again after their batch met an outage of the shared store.",
        s.outage_retries.to_string(),
    );
    metric(
        "sync_reloads_total",
        counter,
        "Scopes reloaded because another node wrote them.",
        s.reloads.to_string(),
    );
    metric(
        "sync_notices_ignored_total",
        counter,
        "Other nodes' commits to scopes this node does not hold or watch, not read.",
        s.notices_ignored.to_string(),
    );
    metric(
        "sync_notices_deferred_total",
        counter,
        "Other nodes' commits to scopes this node holds but nobody here watches, read when a request names them.",
        s.notices_deferred.to_string(),
    );
    metric(
        "sync_reload_seconds_total",
        counter,
        "Seconds from sending reads of other nodes' writes to taking in their answers (waits for scope locks included).",
        format!("{:.6}", s.reload_seconds),
    );
    metric(
        "sync_locking_reads_total",
        counter,
        "Reads sent to lock scopes other nodes write too, for this node's next batch on them.",
        s.locking_reads.to_string(),
    );
    metric(
        "sync_contended_scopes",
        gauge,
        "Scopes this node treats as written by other nodes too: pushes on them wait for a locking read.",
        s.contended_scopes.to_string(),
    );
    metric(
        "sync_scopes",
        gauge,
        "Scopes known to the engine.",
        s.scopes.to_string(),
    );
    metric(
        "sync_store_unreachable",
        gauge,
        "1 while the shared store is unreachable (pushes wait, then get 503), else 0.",
        s.store_unreachable.to_string(),
    );
    if let Some(b) = &m.broker {
        metric(
            "live_broker_connected",
            gauge,
            "1 while the broker link is connected (publishes reach other nodes), else 0.",
            u64::from(b.connected).to_string(),
        );
        metric(
            "live_broker_disconnects_total",
            counter,
            "Times the broker link lost its connection.",
            b.disconnects.to_string(),
        );
    }
    let g = &m.guard;
    for (name, help, value) in [
        (
            "auth_refreshes_total",
            "In-band token refreshes accepted.",
            g.refreshes,
        ),
        (
            "auth_refreshes_refused_total",
            "In-band token refreshes refused.",
            g.refreshes_refused,
        ),
        (
            "auth_tokens_expired_total",
            "Sessions closed because their token expired (4001).",
            g.tokens_expired,
        ),
        (
            "limit_messages_dropped_total",
            "Messages dropped over a session's rate limit.",
            g.messages_limited,
        ),
        (
            "limit_sessions_closed_total",
            "Sessions closed for staying over their rate limit (4029).",
            g.sessions_limited,
        ),
        (
            "limit_connections_refused_total",
            "Connections refused over the connection limits.",
            g.connections_refused,
        ),
        (
            "limit_sync_requests_refused_total",
            "Sync requests refused over their rate limit (429).",
            g.sync_limited,
        ),
        (
            "limit_header_timeouts_total",
            "Connections dropped at the header read timeout.",
            g.header_timeouts,
        ),
    ] {
        metric(name, counter, help, value.to_string());
    }
    for (name, help, value) in [
        (
            "server_connections",
            "Connections open (HTTP and WebSocket, counted from accept).",
            g.connections_open,
        ),
        (
            "server_websockets",
            "WebSocket connection tasks alive.",
            g.websockets_open,
        ),
    ] {
        metric(name, gauge, help, value.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(text: &str, name: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_owned))
    }

    #[test]
    fn the_accept_loops_gauges_are_gauges_with_their_values() {
        let guard = GuardMetrics {
            connections_open: 12,
            websockets_open: 9,
            ..GuardMetrics::default()
        };
        let text = render(&MetricsSnapshot::default().with_guard(guard));
        assert_eq!(value_of(&text, "server_connections").as_deref(), Some("12"));
        assert_eq!(value_of(&text, "server_websockets").as_deref(), Some("9"));
        assert!(text.contains("# TYPE server_connections gauge"), "{text}");
        assert!(text.contains("# TYPE server_websockets gauge"), "{text}");
    }

    #[test]
    fn the_broker_link_is_shown_only_when_there_is_one() {
        let text = render(&MetricsSnapshot::default());
        assert!(!text.contains("live_broker"), "{text}");
        let link = BrokerMetrics {
            connected: true,
            disconnects: 2,
        };
        let text = render(&MetricsSnapshot::default().with_broker(Some(link)));
        assert_eq!(
            value_of(&text, "live_broker_connected").as_deref(),
            Some("1")
        );
        assert_eq!(
            value_of(&text, "live_broker_disconnects_total").as_deref(),
            Some("2")
        );
        assert!(
            text.contains("# TYPE live_broker_connected gauge"),
            "{text}"
        );
        let down = BrokerMetrics {
            connected: false,
            ..link
        };
        let text = render(&MetricsSnapshot::default().with_broker(Some(down)));
        assert_eq!(
            value_of(&text, "live_broker_connected").as_deref(),
            Some("0")
        );
    }

    #[test]
    fn every_sample_has_help_and_type_and_the_right_value() {
        let mut live = live_core::Metrics::default();
        live.sessions = 3;
        live.slow_consumer_closes = 7;
        live.history_bytes = 1234;
        live.presence_watchers = 2;
        let sync = SyncMetrics {
            pushes: 11,
            persist_seconds: 0.25,
            locking_reads: 5,
            outage_retries: 4,
            store_unreachable: 1,
            contended_scopes: 2,
            reload_seconds: 1.5,
            ..SyncMetrics::default()
        };
        let text = render(&MetricsSnapshot::new(live, sync));
        for (name, value) in [
            ("live_sessions", "3"),
            ("live_slow_consumer_closes_total", "7"),
            ("sync_pushes_total", "11"),
            ("live_history_bytes", "1234"),
            ("live_presence_watchers", "2"),
            ("sync_persist_seconds_total", "0.250000"),
            ("sync_locking_reads_total", "5"),
            ("sync_outage_retries_total", "4"),
            ("sync_store_unreachable", "1"),
            ("sync_contended_scopes", "2"),
            ("sync_reload_seconds_total", "1.500000"),
        ] {
            assert_eq!(value_of(&text, name).as_deref(), Some(value), "{name}");
        }
        assert!(
            text.contains("# TYPE sync_contended_scopes gauge"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE sync_store_unreachable gauge"),
            "{text}"
        );
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        for sample in &samples {
            let name = sample.split(' ').next().unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE"
            );
            assert!(
                !name.ends_with("_total") || text.contains(&format!("# TYPE {name} counter")),
                "{name} ends in _total but is not a counter"
            );
        }
        assert_eq!(samples.len(), 50);
    }
}
