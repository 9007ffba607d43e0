//! Sync load: K clients, each on one keep-alive HTTP connection, pushing one
//! mutation per request (its own `client_id`, contiguous `seq`), as fast as
//! answered or paced at a total rate, then pulling the scope back page by page
//! and, with `--verify`, checking every client's acknowledged pushes against
//! its snapshot.

use std::fmt;
use std::time::{Duration, Instant};

use futures_util::future;
use serde_json::{Value, json};

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
    /// With `--verify`: the clients checked (each found complete, or the run
    /// fails).
    pub verified: Option<usize>,
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
        write!(f, "pull latency: {}", self.pull_latency)?;
        if let Some(n) = self.verified {
            write!(
                f,
                "\nverified: {n} clients, every acknowledged push applied exactly as acknowledged"
            )?;
        }
        Ok(())
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

/// The key client `k`'s push number `seq` writes.
pub fn key_of(args: &SyncArgs, k: usize, seq: u64) -> String {
    match args.keys {
        Some(n) if n > 0 => format!("k{k}-{}", seq % n),
        _ => format!("k{k}-{seq}"),
    }
}

/// The client id of client `k` in run `run_id`.
fn client_of(args: &SyncArgs, run_id: u128, k: usize) -> String {
    match &args.client_prefix {
        Some(prefix) => format!("{prefix}-{k}"),
        None => format!("load-{run_id}-{k}"),
    }
}

/// `POST /snapshot` of `scope` as `client_id` (which adds its `client_seq`).
async fn snapshot_as(
    http: &mut SyncHttp,
    scope: &str,
    client_id: &str,
) -> Result<Value, LoadError> {
    let body = json!({"scope": scope, "client_id": client_id}).to_string();
    let r = http
        .call(http::Method::POST, "/snapshot", body)
        .await
        .map_err(|e| LoadError::Server(e.to_string()))?;
    if r.status != 200 {
        return Err(LoadError::Server(format!(
            "snapshot answered {}: {}",
            r.status,
            r.text()
        )));
    }
    Ok(r.json())
}

struct PushResult {
    /// The last sequence the server acknowledged (0: none ever).
    last_seq: u64,
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
    let client_id = client_of(&args, run_id, k);
    // Paced: this client's share of the total rate, on a fixed schedule (a
    // late push does not move the later ones).
    let interval = args
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(args.clients.max(1) as f64 / r));
    let paced_from = tokio::time::Instant::now()
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(k as f64 / args.clients.max(1) as f64)
        });
    // A returning client continues after what the server applied for it.
    let resume_from = if args.client_prefix.is_some() {
        snapshot_as(&mut http, &scope, &client_id).await?["client_seq"]
            .as_u64()
            .unwrap_or(0)
    } else {
        0
    };
    let mut r = PushResult {
        last_seq: resume_from,
        pushes: 0,
        failures: 0,
        latencies: Latencies::new(),
    };
    let mut seq = resume_from + 1;
    loop {
        let done = match args.mutations {
            Some(n) => r.pushes >= n,
            None => Instant::now() >= until,
        };
        if done {
            return Ok(r);
        }
        if let Some(i) = interval {
            let attempt = r.pushes + r.failures;
            tokio::time::sleep_until(paced_from + i.mul_f64(attempt as f64)).await;
        }
        let m = with_client(
            put(
                &format!("{client_id}-{seq}"),
                &scope,
                &key_of(&args, k, seq),
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
            r.last_seq = seq;
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

/// Checks client `k` after its last acknowledged sequence `last`: the snapshot,
/// read as that client, reports `last` as its applied sequence and holds
/// that push's value. Returns what is wrong, if anything.
async fn verify_client(
    cli: Cli,
    args: SyncArgs,
    k: usize,
    run_id: u128,
    last: u64,
) -> Result<Option<String>, LoadError> {
    let mut http = SyncHttp::new(&cli.url, &cli.sync_prefix, cli.token.as_deref())
        .map_err(|e| LoadError::Args(e.to_string()))?;
    let snap = snapshot_as(&mut http, &scope_of(&args, k), &client_of(&args, run_id, k)).await?;
    let applied = snap["client_seq"].as_u64().unwrap_or(0);
    if applied != last {
        return Ok(Some(format!(
            "client {k}: pushes up to {last} acknowledged, the server applied up to {applied}"
        )));
    }
    if last > 0 {
        let key = key_of(&args, k, last);
        if snap["data"][&key] != json!(last) {
            return Ok(Some(format!(
                "client {k}: key {key} holds {} instead of its last acknowledged value {last}",
                snap["data"][&key]
            )));
        }
    }
    Ok(None)
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
    let mut acknowledged = Vec::with_capacity(args.clients);
    for r in future::join_all(tasks).await {
        let r = r.map_err(|e| LoadError::Task(e.to_string()))??;
        acknowledged.push(r.last_seq);
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
    let mut verified = None;
    if args.verify {
        let tasks: Vec<_> = acknowledged
            .iter()
            .enumerate()
            .map(|(k, last)| {
                tokio::spawn(verify_client(cli.clone(), args.clone(), k, run_id, *last))
            })
            .collect();
        let mut wrong = Vec::new();
        for r in future::join_all(tasks).await {
            if let Some(w) = r.map_err(|e| LoadError::Task(e.to_string()))?? {
                wrong.push(w);
            }
        }
        if !wrong.is_empty() {
            return Err(LoadError::Server(format!(
                "acknowledged pushes missing for {} of {} clients: {}",
                wrong.len(),
                args.clients,
                wrong.join("; ")
            )));
        }
        verified = Some(args.clients);
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
        verified,
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
            verified: Some(32),
        };
        let s = r.to_string();
        assert!(s.contains("mutations/s: 20000"), "{s}");
        assert!(s.contains("pulled changes: 20000 (40000/s)"), "{s}");
        assert!(s.contains("verified: 32 clients"), "{s}");
    }

    #[test]
    fn keys_new_per_push_or_round_and_round() {
        assert_eq!(key_of(&sync_args(&[]), 2, 150), "k2-150");
        assert_eq!(key_of(&sync_args(&["--keys", "100"]), 2, 150), "k2-50");
    }
}
