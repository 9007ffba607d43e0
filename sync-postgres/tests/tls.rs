//! PostgreSQL over TLS. The test's PostgreSQL is reached through a front
//! that speaks PostgreSQL's TLS negotiation with a certificate made here
//! (for `localhost`) and hands the decrypted stream to the real server, so
//! what is checked is the store's side: it asks for TLS, verifies the
//! server against the given authorities (or the system's), and refuses a
//! server they do not vouch for.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Schema, postgres_url};
use sync_core::Store;
use sync_postgres::{Changed, PgStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// PostgreSQL's `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];

/// A front on a free port of 127.0.0.1 for the real server at `target`:
/// TLS with `certified`'s certificate for clients that ask for it, counted
/// in the first counter; in the clear for the others, counted in the
/// second.
struct TlsFront {
    port: u16,
    tls: Arc<AtomicUsize>,
    plain: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

impl TlsFront {
    fn start(certified: &rcgen::CertifiedKey<rcgen::KeyPair>, target: &str) -> TlsFront {
        TlsFront::start_verifying(certified, None, target)
    }

    /// [`TlsFront::start`], asking TLS clients for a certificate that
    /// `clients` (a self-signed certificate, its own authority) vouches
    /// for, when given.
    fn start_verifying(
        certified: &rcgen::CertifiedKey<rcgen::KeyPair>,
        clients: Option<&rcgen::CertifiedKey<rcgen::KeyPair>>,
        target: &str,
    ) -> TlsFront {
        use tokio_rustls::rustls;
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let config = match clients {
            None => config.with_no_client_auth(),
            Some(clients) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(clients.cert.der().clone()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                config.with_client_cert_verifier(verifier)
            }
        };
        let config = config
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("the test certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tls, plain) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (t, p, target) = (tls.clone(), plain.clone(), target.to_owned());
        rt.spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (acceptor, t, p, target) =
                    (acceptor.clone(), t.clone(), p.clone(), target.clone());
                tokio::spawn(async move {
                    let mut first = [0u8; 8];
                    inbound.read_exact(&mut first).await?;
                    let mut server = tokio::net::TcpStream::connect(&target).await?;
                    if first == SSL_REQUEST {
                        inbound.write_all(b"S").await?;
                        let mut client = acceptor.accept(inbound).await?;
                        t.fetch_add(1, Ordering::SeqCst);
                        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
                    } else {
                        p.fetch_add(1, Ordering::SeqCst);
                        server.write_all(&first).await?;
                        tokio::io::copy_bidirectional(&mut inbound, &mut server).await?;
                    }
                    Ok::<_, std::io::Error>(())
                });
            }
        });
        TlsFront {
            port,
            tls,
            plain,
            _rt: rt,
        }
    }

    /// `url` reaching the real server through this front, as `localhost`.
    fn url(&self, url: &str, query: &str) -> String {
        let via = testkit::tcp_proxy::url_via(url, &format!("localhost:{}", self.port));
        format!("{via}{query}")
    }
}

fn certified() -> rcgen::CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate")
}

#[test]
fn connections_use_tls_and_verify_the_server_against_the_ca_file() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "tls");
    let server = certified();
    let front = TlsFront::start(&server, "127.0.0.1:5432");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.cert.pem()).unwrap();

    let mut store = PgStore::connect(&front.url(&url, ""), schema.options().with_ca_file(&ca))
        .expect("connected over TLS");
    assert!(store.load().expect("load").scopes.is_empty());
    let (tx, rx) = std::sync::mpsc::channel();
    store.watch(move |changed| {
        let _ = tx.send(changed);
    });
    let heard = rx.recv_timeout(Duration::from_secs(20));
    assert_eq!(heard.ok(), Some(Changed::Everything), "the listener is up");
    assert!(front.tls.load(Ordering::SeqCst) >= 2, "pool and listener");
    assert_eq!(front.plain.load(Ordering::SeqCst), 0, "in the clear");
    drop(store);

    // The same, as a URL written for libpq says it.
    let query = format!("?sslmode=verify-full&sslrootcert={}", ca.display());
    let mut store =
        PgStore::connect(&front.url(&url, &query), schema.options()).expect("connected over TLS");
    assert!(store.load().expect("load").scopes.is_empty());
    assert_eq!(front.plain.load(Ordering::SeqCst), 0, "in the clear");
}

#[test]
fn a_server_the_authorities_do_not_vouch_for_is_refused() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "tls_refused");
    let front = TlsFront::start(&certified(), "127.0.0.1:5432");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, certified().cert.pem()).unwrap();

    // Another authority's file, then the system's authorities.
    let e = PgStore::connect(&front.url(&url, ""), schema.options().with_ca_file(&other))
        .expect_err("refused");
    assert!(e.to_string().contains("certificate"), "{e}");
    let e = PgStore::connect(&front.url(&url, "?sslmode=require"), schema.options())
        .expect_err("refused");
    assert!(e.to_string().contains("certificate"), "{e}");
    assert_eq!(
        front.tls.load(Ordering::SeqCst),
        0,
        "no session got through"
    );
    assert_eq!(front.plain.load(Ordering::SeqCst), 0);

    // A CA file that holds no certificate says so.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let e = PgStore::connect(&front.url(&url, ""), schema.options().with_ca_file(&empty))
        .expect_err("refused");
    assert!(e.to_string().contains("no certificate"), "{e}");
}

#[test]
fn without_sslmode_require_connections_are_in_the_clear() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "tls_plain");
    let front = TlsFront::start(&certified(), "127.0.0.1:5432");
    let mut store = PgStore::connect(&front.url(&url, ""), schema.options()).expect("connected");
    assert!(store.load().expect("load").scopes.is_empty());
    assert_eq!(front.tls.load(Ordering::SeqCst), 0);
    assert!(front.plain.load(Ordering::SeqCst) >= 1);
}

#[test]
fn a_client_certificate_is_presented_to_a_server_that_asks_for_one() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "tls_client");
    let (server, client) = (certified(), certified());
    let front = TlsFront::start_verifying(&server, Some(&client), "127.0.0.1:5432");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca = write("ca.pem", server.cert.pem());
    let cert = write("node.pem", client.cert.pem());
    let key = write("node.key", client.signing_key.serialize_pem());
    let stranger = certified();
    let other_cert = write("other.pem", stranger.cert.pem());
    let other_key = write("other.key", stranger.signing_key.serialize_pem());

    let mut store = PgStore::connect(
        &front.url(&url, ""),
        schema
            .options()
            .with_ca_file(&ca)
            .with_client_cert(&cert, &key),
    )
    .expect("connected with the client certificate");
    assert!(store.load().expect("load").scopes.is_empty());
    drop(store);
    // The same, as a URL written for libpq says it.
    let query = format!(
        "?sslrootcert={}&sslcert={}&sslkey={}",
        ca.display(),
        cert.display(),
        key.display()
    );
    let mut store =
        PgStore::connect(&front.url(&url, &query), schema.options()).expect("connected");
    assert!(store.load().expect("load").scopes.is_empty());
    drop(store);
    let through = front.tls.load(Ordering::SeqCst);
    assert!(through >= 2, "{through} sessions");

    // Without a certificate, or with one the server's authority does not
    // vouch for, no session gets through.
    let e = PgStore::connect(&front.url(&url, ""), schema.options().with_ca_file(&ca))
        .expect_err("refused");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let e = PgStore::connect(
        &front.url(&url, ""),
        schema
            .options()
            .with_ca_file(&ca)
            .with_client_cert(&other_cert, &other_key),
    )
    .expect_err("refused");
    // The server's alert (here DecryptError: the stranger's certificate
    // bears the vouched-for one's name but not its signature).
    assert!(e.to_string().contains("fatal alert"), "{e}");
    assert_eq!(
        front.tls.load(Ordering::SeqCst),
        through,
        "no session got through"
    );

    // A key file without a key is named.
    let e = PgStore::connect(
        &front.url(&url, ""),
        schema
            .options()
            .with_ca_file(&ca)
            .with_client_cert(&cert, &ca),
    )
    .expect_err("refused");
    assert!(e.to_string().contains("ca.pem"), "{e}");
}

/// A client certificate renewed in place (its files replaced while the
/// store runs, as a certificate manager does) is shown from the next
/// connection on, without a restart.
#[test]
fn a_renewed_client_certificate_is_shown_from_the_next_connection_on() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "tls_renewed");
    let (server, client, stranger) = (certified(), certified(), certified());
    let front = TlsFront::start_verifying(&server, Some(&client), "127.0.0.1:5432");
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("node.pem"),
        dir.path().join("node.key"),
    );
    std::fs::write(&ca, server.cert.pem()).unwrap();
    let show = |who: &rcgen::CertifiedKey<rcgen::KeyPair>| {
        std::fs::write(&cert, who.cert.pem()).unwrap();
        std::fs::write(&key, who.signing_key.serialize_pem()).unwrap();
    };
    show(&client);
    let app = schema.name.clone();
    let options = schema
        .options()
        .with_ca_file(&ca)
        .with_client_cert(&cert, &key)
        .with_pool_size(1);
    let mut store = PgStore::connect(
        &front.url(&url, &format!("?application_name={app}")),
        options,
    )
    .expect("connected");
    store.load().expect("load");

    // Renewed with a certificate the server does not take, and the
    // store's sessions ended: its next connections are turned away.
    show(&stranger);
    schema.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
    ));
    let turned_away = (0..20).any(|_| match store.load() {
        Err(e) => e.to_string().contains("fatal alert"),
        Ok(_) => false,
    });
    assert!(turned_away, "the new files were not read");

    // Renewed again with one it takes: served again.
    show(&client);
    assert!((0..20).any(|_| store.load().is_ok()), "served again");
}
