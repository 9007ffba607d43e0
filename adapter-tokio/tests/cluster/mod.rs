//! Helpers for tests with several server processes and real services.

#![allow(dead_code, unreachable_pub)]

use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use testkit::http_client::HttpConn;
use tokio::process::{Child, Command};

/// The PostgreSQL to test against (`TEST_POSTGRES_URL`, of the form
/// `postgres://USER@HOST[:PORT]/DB`), or `None` after saying so.
pub fn postgres_url() -> Option<String> {
    service_url("TEST_POSTGRES_URL")
}

/// A service URL from `var`, or `None` after saying so; a failure instead
/// when `TEST_SERVICES_REQUIRED=1`.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("TEST_SERVICES_REQUIRED").as_deref() != Ok("1"),
                "TEST_SERVICES_REQUIRED=1 but {var} is not set"
            );
            eprintln!("{var} not set: skipping a test that needs the service");
            None
        }
    }
}

/// One server process; SIGKILLed when dropped. Its log lines (stderr) are
/// collected in `log`.
pub struct Node {
    pub child: Child,
    pub addr: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

impl Node {
    /// Starts the server binary on a free port with `--db db` (none when
    /// empty) and extra `args`, and waits until `/healthz` answers.
    pub async fn start_with(db: &str, args: &[&str]) -> Node {
        let addr = format!("127.0.0.1:{}", free_port().await);
        let child = Command::new(env!("CARGO_BIN_EXE_adapter-tokio"))
            .args(["--addr", &addr, "--log-level", "warn"])
            .args(if db.is_empty() {
                vec![]
            } else {
                vec!["--db", db]
            })
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the server");
        let mut child = child;
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = log.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                eprintln!("[node] {line}");
                lines.lock().unwrap().push(line);
            }
        });
        for _ in 0..600 {
            if let Ok(mut conn) = HttpConn::new(&format!("http://{addr}")) {
                if let Ok(r) = conn.request(Method::GET, "/healthz", &[], "").await {
                    assert_eq!(r.status, 200);
                    return Node { child, addr, log };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not answer /healthz");
    }

    pub async fn start(db: &str) -> Node {
        Node::start_with(db, &[]).await
    }

    /// True once a log line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Whether a log line contains `needle` within `within`.
    pub async fn logs_within(&self, needle: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.logged(needle) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// The whole log, a line each.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The status and body of a GET of `path` on the node.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let base = format!("http://{}", self.addr);
        let mut http = HttpConn::new(&base).unwrap();
        let r = (http.request(Method::GET, path, &[], "").await).unwrap();
        (
            r.status.as_u16(),
            String::from_utf8_lossy(&r.body).into_owned(),
        )
    }

    /// The value of `name` in the node's `/metrics`.
    pub async fn metric(&self, name: &str) -> String {
        let (_, body) = self.get("/metrics").await;
        let line = body.lines().find(|l| l.split(' ').next() == Some(name));
        let value = line.and_then(|l| l.split(' ').nth(1));
        value
            .unwrap_or_else(|| panic!("no {name} in {body}"))
            .to_owned()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }
}

/// A schema of its own for one test in the shared database (dropped first,
/// and again when the test passes; a failed test's is kept to look at), so
/// tests running in parallel never see each other's rows.
pub struct PgSchema {
    base: String,
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl PgSchema {
    pub async fn fresh(base: &str, tag: &str) -> PgSchema {
        let name = format!(
            "c_{tag}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .expect("connect to postgres");
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await
            .expect("create schema");
        PgSchema {
            base: base.to_owned(),
            name,
        }
    }

    /// The URL whose connections use this schema.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    /// [`PgSchema::url`] with the host and port replaced by `addr`.
    pub fn url_via(&self, addr: &str) -> String {
        testkit::tcp_proxy::url_via(&self.url(), addr)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let (base, name) = (self.base.clone(), self.name.clone());
        // Dropped inside the test's runtime, which must not block: on a
        // thread and runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop schema {}: {e}", self.name);
        }
    }
}

pub use testkit::tcp_proxy::TcpProxy;
