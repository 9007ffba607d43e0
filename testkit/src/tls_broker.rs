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
/// authorities that vouches for it); killed when dropped. It may also ask
/// clients for a certificate: the test's client certificate
/// ([`TlsBroker::client_cert`]) is then the one it takes.
pub struct TlsBroker {
    _child: Child,
    /// The port it listens on, on 127.0.0.1 (reach it as `localhost`).
    pub port: u16,
    /// The URL scheme that asks for TLS (`rediss`, `tls`) and the plain one
    /// (`redis`, `nats`).
    schemes: (&'static str, &'static str),
    dir: tempfile::TempDir,
}

/// The files a broker is started with.
struct Files<'a> {
    cert: &'a str,
    key: &'a str,
    /// The authority of clients' certificates, when they must show one.
    clients: Option<&'a str>,
    dir: &'a std::path::Path,
}

impl TlsBroker {
    /// `redis-server` on a free port, TLS only (no plain port); with
    /// `verify_clients`, clients must show a certificate.
    pub async fn redis(verify_clients: bool) -> Option<TlsBroker> {
        TlsBroker::start(
            "redis-server",
            ("rediss", "redis"),
            verify_clients,
            |port, files| {
                let mut args: Vec<String> = [
                    "--port",
                    "0",
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--tls-cert-file",
                    files.cert,
                    "--tls-key-file",
                    files.key,
                    "--tls-ca-cert-file",
                    files.clients.unwrap_or(files.cert),
                    "--tls-auth-clients",
                    if files.clients.is_some() { "yes" } else { "no" },
                ]
                .map(str::to_owned)
                .into();
                args.extend(["--tls-port".to_owned(), port.to_string()]);
                args
            },
        )
        .await
    }

    /// `nats-server` with JetStream on a free port, TLS required; with
    /// `verify_clients`, clients must show a certificate.
    pub async fn nats(verify_clients: bool) -> Option<TlsBroker> {
        TlsBroker::start(
            "nats-server",
            ("tls", "nats"),
            verify_clients,
            |port, files| {
                let store = files.dir.join("jetstream").display().to_string();
                let mut args: Vec<String> = [
                    "-a",
                    "127.0.0.1",
                    "--tls",
                    "--tlscert",
                    files.cert,
                    "--tlskey",
                    files.key,
                    "-js",
                    "-sd",
                    &store,
                ]
                .map(str::to_owned)
                .into();
                if let Some(clients) = files.clients {
                    args.extend(["--tlsverify", "--tlscacert", clients].map(str::to_owned));
                }
                args.extend(["-p".to_owned(), port.to_string()]);
                args
            },
        )
        .await
    }

    async fn start(
        program: &str,
        schemes: (&'static str, &'static str),
        verify_clients: bool,
        args: impl FnOnce(u16, Files<'_>) -> Vec<String>,
    ) -> Option<TlsBroker> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let certify =
            || rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
        let server = certify();
        let cert = write("cert.pem", server.cert.pem());
        let key = write("key.pem", server.signing_key.serialize_pem());
        write("other-ca.pem", certify().cert.pem());
        // The client's certificate is its own authority.
        let client = certify();
        let clients = write("client.pem", client.cert.pem());
        write("client.key", client.signing_key.serialize_pem());
        let port = free_port().await;
        let files = Files {
            cert: &cert,
            key: &key,
            clients: verify_clients.then_some(clients.as_str()),
            dir: dir.path(),
        };
        let args = args(port, files);
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
                    schemes,
                    dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{program} did not listen on {port}");
    }

    /// Its URL with the scheme that asks for TLS: `rediss://localhost:PORT`
    /// or `tls://localhost:PORT`.
    pub fn url(&self) -> String {
        format!("{}://localhost:{}", self.schemes.0, self.port)
    }

    /// Its URL with the plain scheme (`redis://`, `nats://`), which a CA
    /// file turns to TLS.
    pub fn plain_url(&self) -> String {
        format!("{}://localhost:{}", self.schemes.1, self.port)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The file of authorities that vouches for this broker.
    pub fn ca_file(&self) -> String {
        self.path("cert.pem")
    }

    /// Another authority's file, which does not vouch for this broker.
    pub fn other_ca_file(&self) -> String {
        self.path("other-ca.pem")
    }

    /// A certificate and key that this broker does not take from a client
    /// (its own server certificate's).
    pub fn stranger_cert(&self) -> (String, String) {
        (self.path("cert.pem"), self.path("key.pem"))
    }

    /// The client certificate and key this broker takes when it asks for
    /// one.
    pub fn client_cert(&self) -> (String, String) {
        (self.path("client.pem"), self.path("client.key"))
    }
}
