//! A broker server of a test's own that speaks only TLS (`redis-server`,
//! `nats-server` with JetStream), with a certificate for `localhost` made
//! by the test, for the tests of brokers over TLS on both adapters.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A broker server of the test's own that speaks only TLS, with a
/// certificate for `localhost` made by the test (which is also the file of
/// authorities that vouches for it); killed when dropped.
pub struct TlsBroker {
    _child: Child,
    /// The port it listens on, on 127.0.0.1 (reach it as `localhost`).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl TlsBroker {
    /// `redis-server` on a free port, TLS only (no plain port).
    pub async fn redis() -> Option<TlsBroker> {
        TlsBroker::start("redis-server", |port, cert, key| {
            vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--tls-cert-file".into(),
                cert.into(),
                "--tls-key-file".into(),
                key.into(),
                "--tls-ca-cert-file".into(),
                cert.into(),
                "--tls-auth-clients".into(),
                "no".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
            ]
        })
        .await
    }

    /// `nats-server` with JetStream on a free port, TLS required.
    pub async fn nats() -> Option<TlsBroker> {
        TlsBroker::start("nats-server", |port, cert, key| {
            let store = std::path::Path::new(cert).with_file_name("jetstream");
            vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
                "--tls".into(),
                "--tlscert".into(),
                cert.into(),
                "--tlskey".into(),
                key.into(),
                "-js".into(),
                "-sd".into(),
                store.display().to_string(),
            ]
        })
        .await
    }

    async fn start(
        program: &str,
        args: impl FnOnce(u16, &str, &str) -> Vec<String>,
    ) -> Option<TlsBroker> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let other =
            rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
        std::fs::write(dir.path().join("other-ca.pem"), other.cert.pem()).unwrap();
        let port = free_port().await;
        let args = args(port, cert.to_str().unwrap(), key.to_str().unwrap());
        // Debian installs nats-server in /usr/sbin, which a user's PATH may lack.
        let spawned = [program.to_owned(), format!("/usr/sbin/{program}")]
            .iter()
            .map(|p| {
                Command::new(p)
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
            })
            .find_map(Result::ok);
        let Some(child) = spawned else {
            assert!(
                std::env::var("TEST_SERVICES_REQUIRED").as_deref() != Ok("1"),
                "TEST_SERVICES_REQUIRED=1 but {program} cannot be started"
            );
            eprintln!("{program} not found: skipping a test that needs it");
            return None;
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(TlsBroker {
                    _child: child,
                    port,
                    dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{program} did not listen on {port}");
    }

    /// The file of authorities that vouches for this broker.
    pub fn ca_file(&self) -> String {
        self.dir.path().join("cert.pem").display().to_string()
    }

    /// Another authority's file, which does not vouch for this broker.
    pub fn other_ca_file(&self) -> String {
        self.dir.path().join("other-ca.pem").display().to_string()
    }
}
