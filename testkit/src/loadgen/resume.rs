//! Resume: N clients on a topic with history lose their connection (the node
//! they are on is restarted by whoever runs the load) and come back with the
//! position they last read, as the clients do. Measures how long until every
//! client has recovered and checks that nobody missed or got twice anything
//! published meanwhile.
//!
//! The clients subscribe with `"history":true` and keep the epoch and offset
//! of the `subscribed` reply and of each numbered delivery. When a connection
//! ends, the client waits a delay spread over `--jitter` seconds (as real
//! clients do, so a restarted node is not hit by everybody at once),
//! reconnects (retrying with backoff while the node is down) and subscribes
//! with `since`. A publisher, on `--publish-url` (another node of the
//! cluster) or `--url`, publishes at a steady rate throughout.
//!
//! Every delivery's offset is checked against the client's last one: a
//! smaller or equal offset is a duplicate, a jump is a gap. At the end each
//! client must have reached the highest offset any client saw. A reply with
//! `"recovered":false` is counted (the client would reload from its own
//! source); what it could not recover is not counted as missing.

use std::fmt;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::args::{Cli, ResumeArgs};
use super::stats::{Latencies, Summary};
use super::{LoadError, token_opts};
use crate::ws_client::{Incoming, WsClient};

/// What one client saw of the topic: its position and what was wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Track {
    /// The epoch of the position.
    pub epoch: String,
    /// The last offset read (or of the reply).
    pub last: u64,
    /// Deliveries at or below `last` in the same epoch.
    pub duplicates: u64,
    /// Offsets skipped over in the same epoch.
    pub gaps: u64,
    /// Replies that said `"recovered":false` after a reconnect.
    pub not_recovered: u64,
}

impl Track {
    /// A `subscribed` reply. The first one only sets the position; a later
    /// one (after a reconnect) is recovered or not.
    pub fn on_subscribed(&mut self, epoch: &str, offset: u64, recovered: bool, first: bool) {
        if !first && !recovered {
            self.not_recovered += 1;
        }
        if first || !recovered {
            // Starting over: the application would reload up to here.
            self.epoch = epoch.to_owned();
            self.last = offset;
        }
    }

    /// A numbered delivery.
    pub fn on_delivery(&mut self, offset: u64) {
        if offset <= self.last {
            self.duplicates += 1;
            return;
        }
        self.gaps += offset - self.last - 1;
        self.last = offset;
    }
}

/// One client's outcome.
#[derive(Debug, Clone, Default)]
struct ClientOutcome {
    track: Track,
    /// Connection losses.
    disconnects: u64,
    /// How each connection ended: the close code, or `None` without one.
    endings: Vec<Option<u16>>,
    /// Disconnect to recovered reply, one per recovery.
    recoveries: Vec<Duration>,
    /// Instant of the last recovered (or not-recovered) reply.
    last_reply: Option<Instant>,
    /// Instant of the first connection loss.
    first_loss: Option<Instant>,
    /// Why the client stopped early.
    failure: Option<String>,
}

/// Outcome of a resume run.
#[derive(Debug, Clone)]
pub struct ResumeReport {
    /// Clients that subscribed.
    pub clients: usize,
    /// Publishes sent.
    pub publishes: u64,
    /// Publishes that could not be sent (the publisher's node was down).
    pub publishes_unsent: u64,
    /// The highest offset any client read.
    pub final_offset: u64,
    /// Clients that lost their connection at least once.
    pub disconnected: usize,
    /// Recoveries (`"recovered":true` after a reconnect).
    pub recovered: usize,
    /// Replies with `"recovered":false` after a reconnect.
    pub not_recovered: u64,
    /// Clients that gave up or failed.
    pub failed: usize,
    /// The first failure.
    pub first_failure: Option<String>,
    /// From the first connection loss to the last client's reply.
    pub all_recovered_after: Option<Duration>,
    /// Wall time (ms since the Unix epoch) of the first connection loss
    /// and of the last reply, to set beside the node's own restart times.
    pub loss_and_last_reply_unix_ms: Option<(u128, u128)>,
    /// From each client's connection loss to its recovered reply.
    pub recovery: Summary,
    /// Offsets skipped over, plus each client's shortfall from the final offset.
    pub missing: u64,
    /// Of `missing`, the offsets skipped over (the rest: clients still
    /// behind when the run ended).
    pub gaps: u64,
    /// Clients behind the final offset when the run ended, and the most
    /// any of them was behind.
    pub behind: (usize, u64),
    /// Offsets received twice.
    pub duplicates: u64,
    /// Connection losses by close code (`None`: ended without a close frame).
    pub endings: std::collections::BTreeMap<Option<u16>, u64>,
}

impl fmt::Display for ResumeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "resume: {} clients, {} publishes ({} unsent), final offset {}",
            self.clients, self.publishes, self.publishes_unsent, self.final_offset
        )?;
        writeln!(
            f,
            "disconnected: {}, recovered: {}, not recovered: {}, failed: {}",
            self.disconnected, self.recovered, self.not_recovered, self.failed
        )?;
        if let Some(why) = &self.first_failure {
            writeln!(f, "first failure: {why}")?;
        }
        match self.all_recovered_after {
            Some(d) => writeln!(
                f,
                "all recovered: {:.3} s after the first connection loss",
                d.as_secs_f64()
            )?,
            None => writeln!(f, "all recovered: no connection was lost")?,
        }
        if let Some((loss, last)) = self.loss_and_last_reply_unix_ms {
            writeln!(
                f,
                "first loss at {loss} ms, last reply at {last} ms (Unix time)"
            )?;
        }
        writeln!(f, "loss to recovered reply: {}", self.recovery)?;
        let endings: Vec<String> = self
            .endings
            .iter()
            .map(|(code, n)| match code {
                Some(c) => format!("{c}: {n}"),
                None => format!("no close frame: {n}"),
            })
            .collect();
        writeln!(f, "connection losses by close code: {}", endings.join(", "))?;
        if self.behind.0 > 0 {
            writeln!(
                f,
                "clients behind at the end: {} (at most {} offsets)",
                self.behind.0, self.behind.1
            )?;
        }
        write!(
            f,
            "missing: {} ({} skipped over, {} not yet read at the end), duplicates: {}",
            self.missing,
            self.gaps,
            self.missing - self.gaps,
            self.duplicates
        )
    }
}

/// A number in `[0, 1)` from `(client, attempt)`: the spread of reconnect
/// delays, the same for the same client and attempt in every run.
pub fn spread(client: u64, attempt: u64) -> f64 {
    // splitmix64
    let mut z = client
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(attempt.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(0x94D0_49BB_1331_11EB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The offset of a delivery on `topic` (`{"topic":T,"data":D,"offset":N}`,
/// as the server writes it), read from the frame's two ends rather than by
/// parsing it: a thousand clients catching up read millions of frames. Any
/// other frame (another topic, a reply, an error) gives `None`.
pub fn delivery_offset(text: &str, topic: &str) -> Option<u64> {
    let rest = text.strip_prefix(r#"{"topic":""#)?;
    let rest = rest.strip_prefix(topic)?.strip_prefix(r#"","data":"#)?;
    let body = rest.strip_suffix('}')?;
    let at = body.rfind(r#","offset":"#)?;
    body[at + 10..].parse().ok()
}

/// Subscribes `ws` to `topic` (with `since` when given) and reads up to the
/// reply: `(epoch, offset, recovered)`.
async fn subscribe(
    ws: &mut WsClient,
    topic: &str,
    since: Option<(&str, u64)>,
) -> Result<(String, u64, bool), String> {
    let data = match since {
        Some((epoch, offset)) => {
            json!({"topic": topic, "since": {"epoch": epoch, "offset": offset}})
        }
        None => json!({"topic": topic, "history": true}),
    };
    ws.send(&json!({"topic": "subscribe", "data": data})).await;
    loop {
        match ws.recv().await {
            Incoming::Message(m) if m["topic"] == "subscribed" => {
                let d = &m["data"];
                let epoch = d["epoch"].as_str().unwrap_or_default().to_owned();
                let offset = d["offset"].as_u64().unwrap_or(0);
                let recovered = d["recovered"].as_bool().unwrap_or(false);
                return Ok((epoch, offset, recovered));
            }
            Incoming::Message(m) if m["topic"] == "error" => {
                return Err(format!("subscribe refused: {m}"));
            }
            Incoming::Message(_) => continue,
            other => return Err(format!("before the subscribed reply: {other:?}")),
        }
    }
}

/// How long one connection attempt may take: a node that is shutting down
/// may still complete TCP handshakes it will never answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One connection attempt, bounded by [`CONNECT_TIMEOUT`].
async fn connect_once(url: &str, cli: &Cli) -> Option<WsClient> {
    tokio::time::timeout(CONNECT_TIMEOUT, WsClient::connect(url, &token_opts(cli)))
        .await
        .ok()?
        .ok()
}

/// Connects, retrying with backoff until `give_up`.
async fn connect_retrying(url: &str, cli: &Cli, n: u64, give_up: Instant) -> Option<WsClient> {
    let mut attempt = 0u64;
    loop {
        if let Some(ws) = connect_once(url, cli).await {
            return Some(ws);
        }
        attempt += 1;
        let base = Duration::from_millis(100 * (1 << attempt.min(3)));
        let wait = base.mul_f64(0.5 + spread(n, attempt));
        if Instant::now() + wait > give_up {
            return None;
        }
        tokio::time::sleep(wait).await;
    }
}

/// Parameters every client shares.
#[derive(Clone)]
struct Plan {
    cli: Cli,
    url: String,
    topic: String,
    jitter: Duration,
    give_up: Duration,
}

/// One client: subscribes, signals `ready`, reads until `stop`, resuming
/// after every connection loss.
async fn client(
    plan: Plan,
    n: u64,
    ready: tokio::sync::mpsc::Sender<Result<(), String>>,
    mut stop: watch::Receiver<bool>,
) -> ClientOutcome {
    let mut out = ClientOutcome::default();
    let mut ws = match WsClient::connect(&plan.url, &token_opts(&plan.cli)).await {
        Ok(ws) => ws,
        Err(e) => {
            let _ = ready.send(Err(format!("client {n}: connect: {e}"))).await;
            out.failure = Some(format!("client {n}: connect: {e}"));
            return out;
        }
    };
    match subscribe(&mut ws, &plan.topic, None).await {
        Ok((epoch, offset, recovered)) => out.track.on_subscribed(&epoch, offset, recovered, true),
        Err(e) => {
            let _ = ready.send(Err(format!("client {n}: {e}"))).await;
            out.failure = Some(format!("client {n}: {e}"));
            return out;
        }
    }
    let _ = ready.send(Ok(())).await;
    drop(ready);
    loop {
        let event = tokio::select! {
            biased;
            event = ws.recv_raw() => event,
            _ = stop.changed() => return out,
        };
        match event {
            Ok(text) => {
                if let Some(offset) = delivery_offset(&text, &plan.topic) {
                    out.track.on_delivery(offset);
                }
            }
            Err(Incoming::Message(_) | Incoming::TimedOut) => continue,
            Err(ending @ (Incoming::Close(_) | Incoming::Ended(_))) => {
                out.endings.push(match ending {
                    Incoming::Close(code) => code,
                    _ => None,
                });
                let lost = Instant::now();
                out.disconnects += 1;
                out.first_loss.get_or_insert(lost);
                tokio::time::sleep(plan.jitter.mul_f64(spread(n, 0))).await;
                let Some(mut next) =
                    connect_retrying(&plan.url, &plan.cli, n, lost + plan.give_up).await
                else {
                    out.failure = Some(format!("client {n}: could not reconnect"));
                    return out;
                };
                let since = (out.track.epoch.clone(), out.track.last);
                match subscribe(&mut next, &plan.topic, Some((&since.0, since.1))).await {
                    Ok((epoch, offset, recovered)) => {
                        let at = Instant::now();
                        if recovered {
                            out.recoveries.push(at - lost);
                        }
                        out.last_reply = Some(at);
                        out.track.on_subscribed(&epoch, offset, recovered, false);
                    }
                    Err(e) => {
                        out.failure = Some(format!("client {n}: resubscribe: {e}"));
                        return out;
                    }
                }
                ws = next;
            }
        }
    }
}

/// Publishes `{"n": i}` on `topic` at `rate` for `duration`, reconnecting
/// when its connection ends; returns (sent, unsent).
async fn publisher(
    cli: Cli,
    url: String,
    topic: String,
    rate: f64,
    duration: Duration,
) -> (u64, u64) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let start = Instant::now();
    let (mut sent, mut unsent) = (0, 0);
    let mut ws: Option<WsClient> = None;
    for i in 0..total {
        tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
        if ws.is_none() {
            ws = connect_once(&url, &cli).await;
        }
        let Some(conn) = ws.as_mut() else {
            unsent += 1;
            continue;
        };
        let frame = json!({"topic": "publish", "data": {"topic": topic, "data": {"n": i}}});
        if conn.try_send(&frame).await {
            sent += 1;
        } else {
            unsent += 1;
            ws = None;
        }
    }
    if let Some(conn) = ws {
        conn.close().await;
    }
    (sent, unsent)
}

/// Runs the resume mode.
pub async fn run(cli: &Cli, args: &ResumeArgs) -> Result<ResumeReport, LoadError> {
    if args.rate.is_nan() || args.rate <= 0.0 {
        return Err(LoadError::Args("--rate must be above 0".into()));
    }
    if args.clients == 0 {
        return Err(LoadError::Args("--clients must be at least 1".into()));
    }
    let plan = Plan {
        cli: cli.clone(),
        url: cli.ws_url(),
        topic: args.topic.clone(),
        jitter: Duration::from_secs_f64(args.jitter.max(0.0)),
        give_up: Duration::from_secs_f64(args.give_up.max(0.0)),
    };
    let publish_url = match &args.publish_url {
        Some(origin) => Cli {
            url: origin.clone(),
            ..cli.clone()
        }
        .ws_url(),
        None => plan.url.clone(),
    };
    // Instants become wall times through this pair, for the report.
    let anchor = (Instant::now(), std::time::SystemTime::now());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.clients);
    let mut clients = JoinSet::new();
    let mut first_failure = None;
    let mut subscribed = 0usize;
    for n in 0..args.clients as u64 {
        clients.spawn(client(plan.clone(), n, ready_tx.clone(), stop_rx.clone()));
        // At most --connect-concurrency subscribes outstanding.
        if clients.len() - subscribed >= args.connect_concurrency.max(1)
            && let Some(r) = ready_rx.recv().await
        {
            subscribed += 1;
            if let Err(e) = r {
                first_failure.get_or_insert(e);
            }
        }
    }
    drop(ready_tx);
    while let Some(r) = ready_rx.recv().await {
        subscribed += 1;
        if let Err(e) = r {
            first_failure.get_or_insert(e);
        }
    }
    eprintln!("resume: {subscribed} clients subscribed; publishing");
    let (publishes, publishes_unsent) = publisher(
        cli.clone(),
        publish_url,
        args.topic.clone(),
        args.rate,
        Duration::from_secs_f64(args.duration.max(0.0)),
    )
    .await;
    tokio::time::sleep(Duration::from_secs_f64(args.drain.max(0.0))).await;
    let _ = stop_tx.send(true);
    let mut outcomes = Vec::with_capacity(args.clients);
    while let Some(joined) = clients.join_next().await {
        match joined {
            Ok(o) => outcomes.push(o),
            Err(e) => return Err(LoadError::Task(e.to_string())),
        }
    }
    let unix_ms = |at: Instant| {
        let wall = anchor.1 + at.saturating_duration_since(anchor.0);
        wall.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    };
    Ok(summarise(
        outcomes,
        publishes,
        publishes_unsent,
        first_failure,
        unix_ms,
    ))
}

fn summarise(
    outcomes: Vec<ClientOutcome>,
    publishes: u64,
    publishes_unsent: u64,
    mut first_failure: Option<String>,
    unix_ms: impl Fn(Instant) -> u128,
) -> ResumeReport {
    let final_offset = outcomes.iter().map(|o| o.track.last).max().unwrap_or(0);
    let final_epoch = outcomes
        .iter()
        .max_by_key(|o| o.track.last)
        .map(|o| o.track.epoch.clone())
        .unwrap_or_default();
    let mut latencies = Latencies::new();
    let mut report = ResumeReport {
        clients: outcomes.len(),
        publishes,
        publishes_unsent,
        final_offset,
        disconnected: 0,
        recovered: 0,
        not_recovered: 0,
        failed: 0,
        first_failure: None,
        all_recovered_after: None,
        loss_and_last_reply_unix_ms: None,
        recovery: Summary::default(),
        missing: 0,
        gaps: 0,
        behind: (0, 0),
        duplicates: 0,
        endings: Default::default(),
    };
    let first_loss = outcomes.iter().filter_map(|o| o.first_loss).min();
    let last_reply = outcomes.iter().filter_map(|o| o.last_reply).max();
    for o in &outcomes {
        if o.disconnects > 0 {
            report.disconnected += 1;
        }
        for code in &o.endings {
            *report.endings.entry(*code).or_default() += 1;
        }
        report.recovered += o.recoveries.len();
        for d in &o.recoveries {
            latencies.record(*d);
        }
        report.not_recovered += o.track.not_recovered;
        report.duplicates += o.track.duplicates;
        report.missing += o.track.gaps;
        report.gaps += o.track.gaps;
        if o.track.epoch == final_epoch {
            let short = final_offset - o.track.last;
            report.missing += short;
            if short > 0 {
                report.behind.0 += 1;
                report.behind.1 = report.behind.1.max(short);
            }
        }
        if let Some(why) = &o.failure {
            report.failed += 1;
            first_failure.get_or_insert(why.clone());
        }
    }
    report.first_failure = first_failure;
    if let (Some(a), Some(b)) = (first_loss, last_reply) {
        report.all_recovered_after = Some(b.saturating_duration_since(a));
        report.loss_and_last_reply_unix_ms = Some((unix_ms(a), unix_ms(b)));
    }
    report.recovery = latencies.summary();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dense_run_has_no_gap_or_duplicate() {
        let mut t = Track::default();
        t.on_subscribed("e1", 3, false, true);
        for o in 4..=10 {
            t.on_delivery(o);
        }
        assert_eq!((t.last, t.gaps, t.duplicates), (10, 0, 0));
    }

    #[test]
    fn gaps_and_duplicates_are_counted() {
        let mut t = Track::default();
        t.on_subscribed("e1", 0, false, true);
        for o in [1, 2, 5, 5, 3, 6] {
            t.on_delivery(o);
        }
        assert_eq!(t.gaps, 2, "3 and 4 skipped");
        assert_eq!(t.duplicates, 2, "5 again, then 3 late");
        assert_eq!(t.last, 6);
    }

    #[test]
    fn a_recovered_reply_keeps_the_position_and_a_lost_one_restarts_it() {
        let mut t = Track::default();
        t.on_subscribed("e1", 0, false, true);
        t.on_delivery(1);
        t.on_subscribed("e1", 7, true, false);
        assert_eq!((t.epoch.as_str(), t.last), ("e1", 1), "replay follows");
        t.on_delivery(2);
        t.on_subscribed("e2", 4, false, false);
        assert_eq!((t.epoch.as_str(), t.last, t.not_recovered), ("e2", 4, 1));
        t.on_delivery(5);
        assert_eq!((t.gaps, t.duplicates), (0, 0));
    }

    #[test]
    fn a_delivery_offset_is_read_from_the_frame_ends() {
        let t = "resume-1";
        assert_eq!(
            delivery_offset(r#"{"topic":"resume-1","data":{"n":3},"offset":42}"#, t),
            Some(42)
        );
        // Data that itself holds an "offset" key: the envelope's is the last.
        assert_eq!(
            delivery_offset(r#"{"topic":"resume-1","data":{"offset":9},"offset":10}"#, t),
            Some(10)
        );
        assert_eq!(delivery_offset(r#"{"topic":"resume-1","data":1}"#, t), None);
        assert_eq!(
            delivery_offset(r#"{"topic":"resume-10","data":1,"offset":1}"#, t),
            None
        );
        assert_eq!(
            delivery_offset(
                r#"{"topic":"subscribed","data":{"topic":"resume-1","offset":3}}"#,
                t
            ),
            None
        );
    }

    #[test]
    fn spread_is_in_range_and_differs_between_clients() {
        let xs: Vec<f64> = (0..1000).map(|c| spread(c, 0)).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let low = xs.iter().filter(|x| **x < 0.5).count();
        assert!((400..600).contains(&low), "{low} of 1000 below 0.5");
        assert_ne!(spread(1, 0), spread(1, 1));
    }

    #[test]
    fn the_summary_counts_a_client_short_of_the_final_offset_as_missing() {
        let client = |last: u64, recovered: usize| ClientOutcome {
            track: Track {
                epoch: "e".into(),
                last,
                ..Track::default()
            },
            disconnects: 1,
            endings: vec![Some(1001)],
            recoveries: vec![Duration::from_millis(5); recovered],
            ..ClientOutcome::default()
        };
        let r = summarise(
            vec![client(10, 1), client(8, 1), client(10, 0)],
            10,
            0,
            None,
            |_| 0,
        );
        assert_eq!(r.final_offset, 10);
        assert_eq!(r.missing, 2);
        assert_eq!(r.recovered, 2);
        assert_eq!(r.disconnected, 3);
        assert!(
            r.to_string()
                .contains("missing: 2 (0 skipped over, 2 not yet read at the end), duplicates: 0"),
            "{r}"
        );
        assert!(r.to_string().contains("by close code: 1001: 3"), "{r}");
    }
}
