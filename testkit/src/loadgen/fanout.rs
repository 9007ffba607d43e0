//! Fan-out load: N subscribers over T topics, P publishers at a set total rate,
//! through the built-in `subscribe` and `publish` commands.
//!
//! Every payload carries its send time in microseconds since the run's start
//! (one process, one monotonic clock), so a subscriber computes the delivery
//! latency on receipt.

use std::fmt;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use futures_util::{SinkExt, future};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::args::{Cli, FanoutArgs};
use super::stats::{LatencyBatch, SharedLatencies, Summary, per_second};
use super::{LoadError, token_opts};
use crate::ws_client::WsClient;

/// The topic of subscriber (or publish sequence number) `n` among `topics`.
pub fn topic_of(n: usize, topics: usize) -> String {
    format!("load-{}", n % topics.max(1))
}

/// Deliveries expected: each publish reaches every subscriber of its topic.
pub fn expected_deliveries(publishes_per_topic: &[u64], subscribers_per_topic: &[u64]) -> u64 {
    publishes_per_topic
        .iter()
        .zip(subscribers_per_topic)
        .map(|(p, s)| p * s)
        .sum()
}

/// Interval between two publishes of one publisher for a total `rate` over
/// `publishers` (`None` for a non-positive rate).
pub fn publish_interval(rate: f64, publishers: usize) -> Option<Duration> {
    if rate <= 0.0 || !rate.is_finite() || publishers == 0 {
        return None;
    }
    Some(Duration::from_secs_f64(publishers as f64 / rate))
}

/// Outcome of a fan-out run.
#[derive(Debug, Clone)]
pub struct FanoutReport {
    /// Subscribers that connected and subscribed.
    pub subscribers: usize,
    /// Subscribers that failed to connect.
    pub connect_failures: usize,
    /// Publishes sent.
    pub publishes: u64,
    /// Deliveries expected.
    pub expected: u64,
    /// Deliveries received.
    pub delivered: u64,
    /// From the first publish to the last delivery.
    pub elapsed: Duration,
    /// Delivery latency.
    pub latency: Summary,
    /// Subscribers closed with 4008 (slow consumer).
    pub closed_slow: u64,
    /// Subscribers whose connection ended otherwise before the run ended.
    pub closed_other: u64,
}

impl fmt::Display for FanoutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fanout: {} subscribers ({} failed to connect)",
            self.subscribers, self.connect_failures
        )?;
        writeln!(f, "publishes: {}", self.publishes)?;
        let pct = if self.expected == 0 {
            100.0
        } else {
            100.0 * self.delivered as f64 / self.expected as f64
        };
        writeln!(
            f,
            "delivered/expected: {}/{} ({pct:.2}%)",
            self.delivered, self.expected
        )?;
        writeln!(
            f,
            "deliveries/s: {:.0}",
            per_second(self.delivered, self.elapsed)
        )?;
        writeln!(f, "latency: {}", self.latency)?;
        write!(
            f,
            "closed as slow (4008): {}, closed otherwise: {}",
            self.closed_slow, self.closed_other
        )
    }
}

#[derive(Deserialize)]
struct Delivery {
    data: Stamp,
}

#[derive(Deserialize)]
struct Stamp {
    t: u64,
}

/// The send time a delivery carries (its data's `"t":N`). Found by a scan
/// rather than a JSON parse: at millions of deliveries a second the load
/// generator's own parsing would take the CPU the server is measured with.
/// The envelope's own keys (`topic`, `data`, `offset`) never read `"t":`,
/// and the padding is plain letters. Anything else falls back to a full
/// parse.
pub fn send_stamp(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if let Some(at) = memchr::memmem::find(b, b"\"t\":") {
        let digits = &b[at + 4..];
        let end = digits
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        if end > 0 && end <= 19 {
            return Some(
                digits[..end]
                    .iter()
                    .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
            );
        }
    }
    serde_json::from_str::<Delivery>(text)
        .ok()
        .map(|d| d.data.t)
}

enum Ending {
    Stopped,
    Slow,
    Other,
}

struct SubResult {
    delivered: u64,
    last_us: u64,
    ending: Ending,
}

async fn subscriber(
    client: WsClient,
    origin: Instant,
    mut latencies: LatencyBatch,
    mut stop: watch::Receiver<bool>,
) -> SubResult {
    let mut ws = client.into_stream();
    let mut r = SubResult {
        delivered: 0,
        last_us: 0,
        ending: Ending::Stopped,
    };
    loop {
        // The socket first: while frames are waiting, the stop signal's
        // future is never polled, so it does not register with (and
        // unregister from) the channel shared by every subscriber once per
        // frame.
        let msg = tokio::select! {
            biased;
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                if let Some(sent) = send_stamp(t.as_str()) {
                    let now = origin.elapsed().as_micros() as u64;
                    latencies.record_us(now.saturating_sub(sent));
                    r.delivered += 1;
                    r.last_us = now;
                }
            }
            Some(Ok(Message::Close(f))) => {
                r.ending = if f.is_some_and(|f| u16::from(f.code) == 4008) {
                    Ending::Slow
                } else {
                    Ending::Other
                };
                return r;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                r.ending = Ending::Other;
                return r;
            }
        }
    }
    let _ = ws.close(None).await;
    r
}

async fn publisher(
    client: WsClient,
    index: usize,
    args: FanoutArgs,
    origin: Instant,
    until: Instant,
) -> Vec<u64> {
    let (mut tx, mut rx) = client.into_stream().split();
    // Drain whatever the server sends (errors, pings) so the connection stays healthy.
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    let mut per_topic = vec![0u64; args.topics.max(1)];
    let Some(period) = publish_interval(args.rate, args.publishers) else {
        return per_topic;
    };
    let pad = "x".repeat(args.payload);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut k = 0usize;
    while Instant::now() < until {
        tick.tick().await;
        let n = k * args.publishers + index;
        k += 1;
        let topic = topic_of(n, args.topics);
        let t = origin.elapsed().as_micros() as u64;
        let frame =
            json!({"topic": "publish", "data": {"topic": topic, "data": {"t": t, "pad": pad}}});
        if tx.send(Message::text(frame.to_string())).await.is_err() {
            break;
        }
        per_topic[n % args.topics.max(1)] += 1;
    }
    drain.abort();
    per_topic
}

/// Runs the fan-out mode.
pub async fn run(cli: &Cli, args: &FanoutArgs) -> Result<FanoutReport, LoadError> {
    if args.topics == 0 || args.publishers == 0 {
        return Err(LoadError::Args(
            "--topics and --publishers must be at least 1".into(),
        ));
    }
    let url = cli.ws_url();
    let opts = token_opts(cli);
    let origin = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let latencies = SharedLatencies::new();

    let connected: Vec<(usize, Result<WsClient, String>)> = stream::iter(0..args.subscribers)
        .map(|j| {
            let url = url.clone();
            let opts = opts.clone();
            let topic = topic_of(j, args.topics);
            async move {
                let r = match WsClient::connect(&url, &opts).await {
                    Ok(mut c) => {
                        c.subscribe(&topic).await;
                        Ok(c)
                    }
                    Err(e) => Err(e.to_string()),
                };
                (j, r)
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let mut subs_per_topic = vec![0u64; args.topics];
    let mut readers = Vec::new();
    let mut connect_failures = 0;
    for (j, r) in connected {
        match r {
            Ok(c) => {
                subs_per_topic[j % args.topics] += 1;
                readers.push(tokio::spawn(subscriber(
                    c,
                    origin,
                    latencies.batch(),
                    stop_rx.clone(),
                )));
            }
            Err(e) => {
                if connect_failures == 0 {
                    eprintln!("subscriber connect failed: {e}");
                }
                connect_failures += 1;
            }
        }
    }

    let mut pubs = Vec::new();
    for _ in 0..args.publishers {
        pubs.push(
            WsClient::connect(&url, &opts)
                .await
                .map_err(|e| LoadError::Connect(e.to_string()))?,
        );
    }
    // The server binary may have no echo handler to round-trip a barrier through,
    // so subscriptions get a settle time before publishing starts.
    tokio::time::sleep(Duration::from_secs_f64(args.settle.max(0.0))).await;
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.duration.max(0.0));
    let start_us = origin.elapsed().as_micros() as u64;
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(publisher(c, i, args.clone(), origin, until)))
        .collect();
    let mut publishes_per_topic = vec![0u64; args.topics];
    for r in future::join_all(pub_tasks).await {
        let per = r.map_err(|e| LoadError::Task(e.to_string()))?;
        for (t, n) in per.into_iter().enumerate() {
            publishes_per_topic[t] += n;
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.drain.max(0.0))).await;
    let _ = stop_tx.send(true);

    let (mut delivered, mut last_us, mut closed_slow, mut closed_other) = (0, start_us, 0, 0);
    for r in future::join_all(readers).await {
        let r = r.map_err(|e| LoadError::Task(e.to_string()))?;
        delivered += r.delivered;
        last_us = last_us.max(r.last_us);
        match r.ending {
            Ending::Stopped => {}
            Ending::Slow => closed_slow += 1,
            Ending::Other => closed_other += 1,
        }
    }
    Ok(FanoutReport {
        subscribers: args.subscribers - connect_failures,
        connect_failures,
        publishes: publishes_per_topic.iter().sum(),
        expected: expected_deliveries(&publishes_per_topic, &subs_per_topic),
        delivered,
        elapsed: Duration::from_micros(last_us.saturating_sub(start_us)),
        latency: latencies.summary(),
        closed_slow,
        closed_other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_robin() {
        assert_eq!(topic_of(0, 3), "load-0");
        assert_eq!(topic_of(4, 3), "load-1");
        assert_eq!(topic_of(7, 0), "load-0");
    }

    #[test]
    fn expected_is_publishes_times_subscribers_per_topic() {
        assert_eq!(expected_deliveries(&[10, 5], &[3, 0]), 30);
        assert_eq!(expected_deliveries(&[500], &[1000]), 500_000);
        assert_eq!(expected_deliveries(&[], &[]), 0);
    }

    #[test]
    fn the_send_stamp_is_read_with_or_without_the_fast_path() {
        assert_eq!(
            send_stamp(r#"{"topic":"load-0","data":{"t":1234,"pad":"xx"}}"#),
            Some(1234)
        );
        assert_eq!(
            send_stamp(r#"{"topic":"load-0","data":{"pad":"x","t":77},"offset":3}"#),
            Some(77)
        );
        // Another layout still parses.
        assert_eq!(
            send_stamp(r#"{"data":{"pad":"x","t":5},"topic":"load-0"}"#),
            Some(5)
        );
        // Spaced out: only the full parse reads it.
        assert_eq!(send_stamp(r#"{"data": {"t" : 9}, "topic": "x"}"#), Some(9));
        assert_eq!(send_stamp(r#"{"topic":"error","data":{"code":"x"}}"#), None);
        assert_eq!(send_stamp(r#"{"topic":"t","data":{"t":"#), None);
    }

    #[test]
    fn intervals() {
        assert_eq!(publish_interval(500.0, 1), Some(Duration::from_millis(2)));
        assert_eq!(publish_interval(2000.0, 4), Some(Duration::from_millis(2)));
        assert_eq!(publish_interval(0.0, 1), None);
        assert_eq!(publish_interval(f64::NAN, 1), None);
        assert_eq!(publish_interval(10.0, 0), None);
    }

    #[test]
    fn report_prints_every_figure() {
        let r = FanoutReport {
            subscribers: 10,
            connect_failures: 0,
            publishes: 5,
            expected: 50,
            delivered: 49,
            elapsed: Duration::from_secs(1),
            latency: Summary {
                count: 49,
                p50_us: 100,
                p99_us: 900,
                max_us: 1000,
            },
            closed_slow: 1,
            closed_other: 0,
        };
        let s = r.to_string();
        assert!(s.contains("delivered/expected: 49/50 (98.00%)"), "{s}");
        assert!(s.contains("deliveries/s: 49"), "{s}");
        assert!(s.contains("p99 0.900ms"), "{s}");
        assert!(s.contains("closed as slow (4008): 1"), "{s}");
    }
}
