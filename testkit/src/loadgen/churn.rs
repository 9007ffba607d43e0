//! Churn: clients arriving at a steady rate, each connecting, subscribing to
//! a topic of its own, publishing on it and hearing its own message back
//! (so its session demonstrably worked), staying a while and leaving with a
//! clean close. What a server must survive for hours without growing.

use std::fmt;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::args::{ChurnArgs, Cli};
use super::stats::{Latencies, Summary};
use super::{LoadError, token_opts};
use crate::ws_client::{Incoming, WsClient};

/// Outcome of a churn run.
#[derive(Debug, Clone)]
pub struct ChurnReport {
    /// Clients started.
    pub started: u64,
    /// Clients whose session worked from connect to clean close.
    pub completed: u64,
    /// Clients that failed.
    pub failed: u64,
    /// What went wrong first, if anything did.
    pub first_failure: Option<String>,
    /// Time from starting to connect until the client heard its own message.
    pub ready_latency: Summary,
}

impl fmt::Display for ChurnReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "churn: {} clients started, {} completed, {} failed",
            self.started, self.completed, self.failed
        )?;
        if let Some(why) = &self.first_failure {
            writeln!(f, "first failure: {why}")?;
        }
        write!(f, "connect to own message heard: {}", self.ready_latency)
    }
}

/// One client's life; `Err` says what went wrong.
async fn client(url: String, cli: Cli, n: u64, stay: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut ws = WsClient::connect(&url, &token_opts(&cli))
        .await
        .map_err(|e| format!("client {n}: connect: {e}"))?;
    let topic = format!("churn-{n}");
    ws.subscribe(&topic).await;
    ws.publish(&topic, json!({ "n": n })).await;
    loop {
        match ws.recv().await {
            Incoming::Message(m) if m["topic"] == topic.as_str() => break,
            Incoming::Message(_) => continue,
            other => return Err(format!("client {n}: before its own message: {other:?}")),
        }
    }
    let ready = started.elapsed();
    tokio::time::sleep_until(started + stay).await;
    ws.close().await;
    Ok(ready)
}

/// Runs the churn mode.
pub async fn run(cli: &Cli, args: &ChurnArgs) -> Result<ChurnReport, LoadError> {
    if args.rate.is_nan() || args.rate <= 0.0 {
        return Err(LoadError::Args("--rate must be above 0".into()));
    }
    let url = cli.ws_url();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let total = (args.rate * args.duration.max(0.0)).round() as u64;
    let stay = Duration::from_secs_f64(args.stay.max(0.0));
    let mut report = ChurnReport {
        started: 0,
        completed: 0,
        failed: 0,
        first_failure: None,
        ready_latency: Summary::default(),
    };
    let mut latencies = Latencies::new();
    let mut running = JoinSet::new();
    let mut reap = |joined: Result<Result<Duration, String>, tokio::task::JoinError>,
                    report: &mut ChurnReport| {
        match joined {
            Ok(Ok(ready)) => {
                latencies.record(ready);
                report.completed += 1;
            }
            Ok(Err(why)) => {
                report.failed += 1;
                report.first_failure.get_or_insert(why);
            }
            Err(e) => {
                report.failed += 1;
                report.first_failure.get_or_insert(format!("task: {e}"));
            }
        }
    };
    let start = Instant::now();
    for n in 0..total {
        tokio::time::sleep_until(start + interval.mul_f64(n as f64)).await;
        while let Some(joined) = running.try_join_next() {
            reap(joined, &mut report);
        }
        running.spawn(client(url.clone(), cli.clone(), n, stay));
        report.started += 1;
    }
    while let Some(joined) = running.join_next().await {
        reap(joined, &mut report);
    }
    report.ready_latency = latencies.summary();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_the_first_failure() {
        let r = ChurnReport {
            started: 10,
            completed: 9,
            failed: 1,
            first_failure: Some("client 3: connect: refused".into()),
            ready_latency: Summary::default(),
        };
        let s = r.to_string();
        assert!(
            s.contains("10 clients started, 9 completed, 1 failed"),
            "{s}"
        );
        assert!(s.contains("first failure: client 3"), "{s}");
    }
}
