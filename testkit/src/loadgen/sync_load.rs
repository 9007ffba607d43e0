//! Sync load: K clients, each on one keep-alive HTTP connection, pushing one
//! mutation per request (its own `client_id`, contiguous `seq`), then pulling the
//! scope back page by page.

use std::fmt;
use std::time::{Duration, Instant};

use futures_util::future;
use serde_json::json;

use super::LoadError;
use super::args::{Cli, SyncArgs};
use super::stats::{Latencies, Summary, per_second};
use crate::sync_client::{SyncHttp, push_body, put, with_client};

/// Outcome of a sync run.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// Clients.
    pub clients: usize,
    /// Acknowledged pushes (one mutation each).
    pub pushes: u64,
    /// Pushes answered with an error or not at all (each retried).
    pub failures: u64,
    /// Push phase wall time.
    pub push_elapsed: Duration,
    /// Push request latency.
    pub push_latency: Summary,
    /// Changes read in the pull phase.
    pub pulled: u64,
    /// Pull phase wall time.
    pub pull_elapsed: Duration,
    /// Pull request latency.
    pub pull_latency: Summary,
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sync: {} clients, one mutation per request",
            self.clients
        )?;
        writeln!(f, "pushes: {} ok, {} failed", self.pushes, self.failures)?;
        writeln!(
            f,
            "mutations/s: {:.0}",
            per_second(self.pushes, self.push_elapsed)
        )?;
        writeln!(f, "push latency: {}", self.push_latency)?;
        writeln!(
            f,
            "pulled changes: {} ({:.0}/s)",
            self.pulled,
            per_second(self.pulled, self.pull_elapsed)
        )?;
        write!(f, "pull latency: {}", self.pull_latency)
    }
}

/// The scope client `k` uses.
pub fn scope_of(args: &SyncArgs, k: usize) -> String {
    if args.scope_per_client {
        format!("{}-{k}", args.scope)
    } else {
        args.scope.clone()
    }
}

struct PushResult {
    pushes: u64,
    failures: u64,
    latencies: Latencies,
}

async fn pusher(
    cli: Cli,
    args: SyncArgs,
    k: usize,
    run_id: u128,
    until: Instant,
) -> Result<PushResult, LoadError> {
    let mut http = SyncHttp::new(&cli.url, &cli.sync_prefix, cli.token.as_deref())
        .map_err(|e| LoadError::Args(e.to_string()))?;
    let scope = scope_of(&args, k);
    let client_id = format!("load-{run_id}-{k}");
    let mut r = PushResult {
        pushes: 0,
        failures: 0,
        latencies: Latencies::new(),
    };
    let mut seq = 1u64;
    loop {
        let done = match args.mutations {
            Some(n) => seq > n,
            None => Instant::now() >= until,
        };
        if done {
            return Ok(r);
        }
        let m = with_client(
            put(
                &format!("{client_id}-{seq}"),
                &scope,
                &format!("k{k}-{seq}"),
                json!(seq),
            ),
            &client_id,
            seq,
        );
        let body = push_body(&[m]);
        let sent = Instant::now();
        let ok = match http.push(&body).await {
            Ok(resp) if resp.status == 200 => resp.json()["results"][0]["ok"] == true,
            Ok(_) | Err(_) => false,
        };
        if ok {
            r.latencies.record(sent.elapsed());
            r.pushes += 1;
            seq += 1;
        } else {
            r.failures += 1;
            if r.failures > 100 {
                return Err(LoadError::Server(format!(
                    "client {k}: over 100 failed pushes"
                )));
            }
        }
    }
}

async fn puller(cli: Cli, scope: String) -> Result<(u64, Latencies), LoadError> {
    let mut http = SyncHttp::new(&cli.url, &cli.sync_prefix, cli.token.as_deref())
        .map_err(|e| LoadError::Args(e.to_string()))?;
    let mut lat = Latencies::new();
    let (mut cursor, mut n) = (0u64, 0u64);
    loop {
        let sent = Instant::now();
        let r = http
            .pull(&scope, cursor, Some(1000))
            .await
            .map_err(|e| LoadError::Server(e.to_string()))?;
        lat.record(sent.elapsed());
        if r.status != 200 {
            return Err(LoadError::Server(format!(
                "pull answered {}: {}",
                r.status,
                r.text()
            )));
        }
        let page = r.json();
        n += page["changes"].as_array().map_or(0, |c| c.len() as u64);
        let next = page["next_cursor"].as_u64().unwrap_or(cursor);
        if page["has_more"] != true || next <= cursor {
            return Ok((n, lat));
        }
        cursor = next;
    }
}

/// Runs the sync mode.
pub async fn run(cli: &Cli, args: &SyncArgs) -> Result<SyncReport, LoadError> {
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.duration.max(0.0));
    let tasks: Vec<_> = (0..args.clients)
        .map(|k| tokio::spawn(pusher(cli.clone(), args.clone(), k, run_id, until)))
        .collect();
    let mut push_latency = Latencies::new();
    let (mut pushes, mut failures) = (0, 0);
    for r in future::join_all(tasks).await {
        let r = r.map_err(|e| LoadError::Task(e.to_string()))??;
        pushes += r.pushes;
        failures += r.failures;
        push_latency.merge(&r.latencies);
    }
    let push_elapsed = start.elapsed();

    let mut pull_latency = Latencies::new();
    let mut pulled = 0;
    let pull_start = Instant::now();
    if !args.no_pull {
        let tasks: Vec<_> = (0..args.clients)
            .map(|k| tokio::spawn(puller(cli.clone(), scope_of(args, k))))
            .collect();
        for r in future::join_all(tasks).await {
            let (n, lat) = r.map_err(|e| LoadError::Task(e.to_string()))??;
            pulled += n;
            pull_latency.merge(&lat);
        }
    }
    Ok(SyncReport {
        clients: args.clients,
        pushes,
        failures,
        push_elapsed,
        push_latency: push_latency.summary(),
        pulled,
        pull_elapsed: pull_start.elapsed(),
        pull_latency: pull_latency.summary(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::args::{Cli, Mode};
    use clap::Parser;

    fn sync_args(extra: &[&str]) -> SyncArgs {
        let mut argv = vec!["loadgen", "sync"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().mode {
            Mode::Sync(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scopes_shared_or_per_client() {
        assert_eq!(scope_of(&sync_args(&[]), 3), "load");
        assert_eq!(
            scope_of(&sync_args(&["--scope", "s", "--scope-per-client"]), 3),
            "s-3"
        );
    }

    #[test]
    fn report_prints_rates() {
        let r = SyncReport {
            clients: 32,
            pushes: 20_000,
            failures: 0,
            push_elapsed: Duration::from_secs(1),
            push_latency: Summary::default(),
            pulled: 20_000,
            pull_elapsed: Duration::from_millis(500),
            pull_latency: Summary::default(),
        };
        let s = r.to_string();
        assert!(s.contains("mutations/s: 20000"), "{s}");
        assert!(s.contains("pulled changes: 20000 (40000/s)"), "{s}");
    }
}
