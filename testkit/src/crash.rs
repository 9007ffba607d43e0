//! The crash-test driver: pushes from several clients into a server child process,
//! SIGKILLs it mid-stream, restarts it on the same database, and checks that every
//! acknowledged mutation is present exactly once and that clients converge.
//!
//! The child is started as `program args.. --addr 127.0.0.1:PORT --db PATH` (a
//! fresh free port on each start). The driver speaks plain sync HTTP, so the
//! child needs no special test mode; if it authenticates, give the driver a token
//! and a scope the token may use.
//!
//! Each client owns a `client_id` and pushes `put` mutations with contiguous `seq`
//! (one per request, key `crash-<client>-<seq>`). A push that gets no answer (the
//! server is dead) is retried, unchanged, until acknowledged; the client never
//! moves past an unacknowledged mutation. After the last kill and restart the
//! driver checks, through pull and snapshot:
//!
//! - every mutation is acknowledged, and present in the log exactly once, at the
//!   cursor its acknowledgement named;
//! - the log's cursors are dense (1..=n) and it holds nothing else;
//! - the snapshot holds every key with its value, at the log's last cursor;
//! - every client, pulling on its own connection, reads the identical log;
//! - after one more SIGKILL and restart with no traffic, all of the above still
//!   holds (the final state was durable, not just in memory).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::RwLock;

use crate::sync_client::{SyncHttp, kv_lookup, mentions, push_body, put, with_client};

/// What to run and how hard to push.
#[derive(Debug, Clone)]
pub struct CrashConfig {
    /// The server executable.
    pub program: PathBuf,
    /// Arguments before `--addr` and `--db`.
    pub args: Vec<String>,
    /// The database file; must not exist yet (or hold no data of this scope).
    pub db: PathBuf,
    /// Concurrent clients.
    pub clients: usize,
    /// Mutations each client pushes.
    pub mutations_per_client: u64,
    /// SIGKILLs during the stream (each followed by a restart).
    pub kills: usize,
    /// Sync scope pushed to.
    pub scope: String,
    /// Bearer token sent with every request, if any.
    pub token: Option<String>,
    /// Sync endpoint prefix.
    pub sync_prefix: String,
    /// Hang guard for a start to accept HTTP requests.
    pub startup_timeout: Duration,
    /// Hang guard for the whole run.
    pub deadline: Duration,
    /// Show the child's stderr (its logs) in the test output.
    pub show_child_stderr: bool,
}

impl CrashConfig {
    /// Four clients of 250 mutations, three kills, scope `crash`, no token,
    /// prefix `/_sync`.
    pub fn new(program: impl Into<PathBuf>, db: impl Into<PathBuf>) -> Self {
        CrashConfig {
            program: program.into(),
            args: Vec::new(),
            db: db.into(),
            clients: 4,
            mutations_per_client: 250,
            kills: 3,
            scope: "crash".into(),
            token: None,
            sync_prefix: "/_sync".into(),
            startup_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(300),
            show_child_stderr: true,
        }
    }
}

/// What a successful run saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashReport {
    /// Acknowledged mutations (all of them, on success).
    pub acknowledged: u64,
    /// SIGKILLs delivered mid-stream (plus the final one).
    pub kills: usize,
    /// Pushes retried because the server did not answer.
    pub retries: u64,
    /// Changes in the final log.
    pub log_len: usize,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrashError {
    /// The child could not be spawned or killed.
    #[error("child process: {0}")]
    Process(#[from] std::io::Error),
    /// The child never answered HTTP.
    #[error("server did not come up within {0:?}")]
    NotReady(Duration),
    /// The run exceeded its deadline.
    #[error("run exceeded its deadline of {0:?}")]
    Deadline(Duration),
    /// An invariant does not hold.
    #[error("crash invariant violated: {0}")]
    Violation(String),
}

struct Server {
    child: Child,
    base: String,
}

async fn free_port() -> Result<u16, CrashError> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(l.local_addr()?.port())
}

async fn start(cfg: &CrashConfig) -> Result<Server, CrashError> {
    let port = free_port().await?;
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(&cfg.program);
    cmd.args(&cfg.args)
        .arg("--addr")
        .arg(&addr)
        .arg("--db")
        .arg(&cfg.db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if cfg.show_child_stderr {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let base = format!("http://{addr}");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(CrashError::Violation(format!(
                "server exited at start: {status}"
            )));
        }
        if started.elapsed() > cfg.startup_timeout {
            return Err(CrashError::NotReady(cfg.startup_timeout));
        }
        let mut probe = client(cfg, &base)?;
        if probe.pull(&cfg.scope, 0, Some(1)).await.is_ok() {
            return Ok(Server { child, base });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn kill(server: &mut Server) -> Result<(), CrashError> {
    // SIGKILL on Unix: no chance to flush anything not yet durable.
    server.child.start_kill()?;
    server.child.wait().await?;
    Ok(())
}

fn client(cfg: &CrashConfig, base: &str) -> Result<SyncHttp, CrashError> {
    SyncHttp::new(base, &cfg.sync_prefix, cfg.token.as_deref())
        .map_err(|e| CrashError::Violation(format!("bad base url: {e}")))
}

/// Shared between the driver and its clients.
struct Shared {
    base: RwLock<String>,
    acks: AtomicU64,
    retries: AtomicU64,
}

fn key(client: usize, seq: u64) -> String {
    format!("crash-{client}-{seq}")
}

/// One client's stream; returns the acknowledged cursor of each seq.
async fn client_loop(
    cfg: Arc<CrashConfig>,
    shared: Arc<Shared>,
    index: usize,
    client_id: String,
    deadline: Instant,
) -> Result<BTreeMap<u64, u64>, CrashError> {
    let mut acked = BTreeMap::new();
    let mut base = shared.base.read().await.clone();
    let mut http = client(&cfg, &base)?;
    for seq in 1..=cfg.mutations_per_client {
        let k = key(index, seq);
        let m = with_client(
            put(
                &format!("{client_id}-{seq}"),
                &cfg.scope,
                &k,
                json!({"client": index, "seq": seq}),
            ),
            &client_id,
            seq,
        );
        let body = push_body(&[m]);
        loop {
            if Instant::now() > deadline {
                return Err(CrashError::Deadline(cfg.deadline));
            }
            let current = shared.base.read().await.clone();
            if current != base {
                base = current;
                http = client(&cfg, &base)?;
            }
            match http.push(&body).await {
                Ok(r) if r.status == 200 => {
                    let res = r.json()["results"][0].clone();
                    if res["ok"] != true {
                        return Err(CrashError::Violation(format!(
                            "client {index} seq {seq} refused: {res}"
                        )));
                    }
                    let cursor = res["cursor"].as_u64().ok_or_else(|| {
                        CrashError::Violation(format!("result without cursor: {res}"))
                    })?;
                    acked.insert(seq, cursor);
                    shared.acks.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                // A server shutting down or starting may answer 5xx: retry.
                Ok(r) if r.status.is_server_error() => {}
                Ok(r) => {
                    return Err(CrashError::Violation(format!(
                        "client {index} seq {seq}: push answered {}: {}",
                        r.status,
                        r.text()
                    )));
                }
                Err(_) => {}
            }
            shared.retries.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(acked)
}

/// Checks the durable state against the acknowledgements.
async fn verify(
    cfg: &CrashConfig,
    base: &str,
    acked: &[BTreeMap<u64, u64>],
) -> Result<usize, CrashError> {
    let violation = |s: String| CrashError::Violation(s);
    let mut reader = client(cfg, base)?;
    let log = reader
        .pull_all(&cfg.scope, 0)
        .await
        .map_err(|e| violation(format!("pull of the whole log failed: {e}")))?;
    let cursors: Vec<u64> = log.iter().filter_map(|c| c["cursor"].as_u64()).collect();
    let dense: Vec<u64> = (1..=log.len() as u64).collect();
    if cursors != dense {
        return Err(violation(format!(
            "log cursors are not 1..={}: {cursors:?}",
            log.len()
        )));
    }
    let expected: u64 = acked.iter().map(|a| a.len() as u64).sum();
    if log.len() as u64 != expected {
        return Err(violation(format!(
            "log has {} changes, {expected} mutations acknowledged",
            log.len()
        )));
    }
    for (i, client_acks) in acked.iter().enumerate() {
        for (&seq, &cursor) in client_acks {
            let k = key(i, seq);
            let hits: Vec<u64> = log
                .iter()
                .filter(|c| mentions(&c["data"], &k))
                .filter_map(|c| c["cursor"].as_u64())
                .collect();
            if hits != [cursor] {
                return Err(violation(format!(
                    "{k} acknowledged at cursor {cursor}, found in the log at {hits:?}"
                )));
            }
        }
    }
    let snap = reader
        .snapshot(&cfg.scope)
        .await
        .map_err(|e| violation(format!("snapshot failed: {e}")))?;
    if snap.status != 200 {
        return Err(violation(format!(
            "snapshot answered {}: {}",
            snap.status,
            snap.text()
        )));
    }
    let snap = snap.json();
    if snap["cursor"].as_u64() != Some(log.len() as u64) {
        return Err(violation(format!(
            "snapshot cursor {} but log ends at {}",
            snap["cursor"],
            log.len()
        )));
    }
    for (i, client_acks) in acked.iter().enumerate() {
        for &seq in client_acks.keys() {
            let want = json!({"client": i, "seq": seq});
            if kv_lookup(&snap["data"], &key(i, seq)) != Some(&want) {
                return Err(violation(format!(
                    "snapshot lacks {} = {want}",
                    key(i, seq)
                )));
            }
        }
    }
    // Convergence: every client reads the identical log on its own connection.
    for i in 0..cfg.clients {
        let mut own = client(cfg, base)?;
        let theirs: Vec<Value> = own
            .pull_all(&cfg.scope, 0)
            .await
            .map_err(|e| violation(format!("client {i} pull failed: {e}")))?;
        if theirs != log {
            return Err(violation(format!("client {i} reads a different log")));
        }
    }
    Ok(log.len())
}

/// Runs the crash test. See the module docs for what is checked.
pub async fn run(cfg: CrashConfig) -> Result<CrashReport, CrashError> {
    let cfg = Arc::new(cfg);
    let begun = Instant::now();
    let deadline = begun + cfg.deadline;
    let mut server = start(&cfg).await?;
    let shared = Arc::new(Shared {
        base: RwLock::new(server.base.clone()),
        acks: AtomicU64::new(0),
        retries: AtomicU64::new(0),
    });
    // Unique per run so a reused database cannot turn pushes into replays.
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut tasks = Vec::new();
    for i in 0..cfg.clients {
        let id = format!("crash-{run_id}-{i}");
        tasks.push(tokio::spawn(client_loop(
            cfg.clone(),
            shared.clone(),
            i,
            id,
            deadline,
        )));
    }

    let total = cfg.clients as u64 * cfg.mutations_per_client;
    let mut kills = 0;
    for k in 0..cfg.kills {
        // Spread the kills over the stream.
        let at = total * (k as u64 + 1) / (cfg.kills as u64 + 1);
        while shared.acks.load(Ordering::SeqCst) < at {
            if Instant::now() > deadline {
                return Err(CrashError::Deadline(cfg.deadline));
            }
            if tasks.iter().all(|t| t.is_finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        kill(&mut server).await?;
        kills += 1;
        server = start(&cfg).await?;
        *shared.base.write().await = server.base.clone();
    }

    let mut acked = Vec::new();
    for t in tasks {
        let r = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), t)
            .await
            .map_err(|_| CrashError::Deadline(cfg.deadline))?
            .map_err(|e| CrashError::Violation(format!("client task panicked: {e}")))?;
        acked.push(r?);
    }
    verify(&cfg, &server.base, &acked).await?;

    // The final state must survive a kill too.
    kill(&mut server).await?;
    kills += 1;
    let mut server = start(&cfg).await?;
    let log_len = verify(&cfg, &server.base, &acked).await?;
    kill(&mut server).await?;

    Ok(CrashReport {
        acknowledged: shared.acks.load(Ordering::SeqCst),
        kills,
        retries: shared.retries.load(Ordering::SeqCst),
        log_len,
    })
}

/// [`run`] on a runtime of its own, for a plain `#[test]`.
pub fn run_blocking(cfg: CrashConfig) -> Result<CrashReport, CrashError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(cfg))
}

/// The crash test every adapter runs against its server binary `exe`: SQLite
/// in a fresh directory, the default clients and kills, then every
/// acknowledged mutation must be in the log exactly once. Panics with the
/// driver's report when anything is off.
pub fn assert_binary_loses_nothing(exe: &str) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut cfg = CrashConfig::new(exe, dir.path().join("crash.db"));
    cfg.args = vec!["--log-level".into(), "warn".into()];
    let report = run_blocking(cfg.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.acknowledged,
        cfg.clients as u64 * cfg.mutations_per_client
    );
    assert_eq!(report.log_len as u64, report.acknowledged);
    // Every kill mid-stream, plus the final one with no traffic.
    assert_eq!(report.kills, cfg.kills + 1, "{report:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_not_prefixes_that_collide() {
        assert_ne!(key(1, 1), key(11, 1));
        assert!(!mentions(&json!({"key": key(1, 10)}), &key(1, 1)));
    }

    #[test]
    fn a_missing_program_is_a_process_error() {
        let cfg = CrashConfig::new("/nonexistent/server-binary", "/tmp/none.db");
        match run_blocking(cfg) {
            Err(CrashError::Process(_)) => {}
            other => panic!("expected a process error, got {other:?}"),
        }
    }

    #[test]
    fn a_child_that_exits_is_reported() {
        let mut cfg = CrashConfig::new("/bin/sh", "/tmp/none.db");
        cfg.args = vec!["-c".into(), "exit 3".into(), "sh".into()];
        cfg.show_child_stderr = false;
        match run_blocking(cfg) {
            Err(CrashError::Violation(msg)) => assert!(msg.contains("exited"), "{msg}"),
            other => panic!("expected an exit violation, got {other:?}"),
        }
    }
}
