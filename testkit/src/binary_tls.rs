//! The stock binary over TLS (`--tls-cert`, `--tls-key`), with a
//! certificate the test makes: `https://` answers, `wss://` carries live
//! messages, and plain HTTP on the TLS port gets nothing.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

use crate::binary_process::free_port;

const GUARD: Duration = Duration::from_secs(30);

fn connector(cert_der: &[u8]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots
        .add(cert_der.to_vec().into())
        .expect("the test certificate");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls(connector: &TlsConnector, addr: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name").to_owned();
    connector.connect(name, tcp).await
}

/// `GET path` over one TLS connection (closed after the answer).
async fn https_get(connector: &TlsConnector, addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = tls(connector, addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// HTTPS and WSS with a certificate made by the test.
pub async fn tls_serves_https_and_wss(exe: &str) {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let addr = format!("127.0.0.1:{}", free_port().await);
    let _child = Command::new(exe)
        .args(["--addr", &addr, "--log-level", "warn", "--memory"])
        .args([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the server");
    let connector = connector(made.cert.der());

    let mut health = None;
    for _ in 0..600 {
        if let Ok(answer) = https_get(&connector, &addr, "/healthz").await {
            health = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = health.expect("the server answered over HTTPS");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");

    // Plain HTTP on the TLS port is not served.
    let mut plain = TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(GUARD, plain.read_to_end(&mut out)).await;
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));

    // WSS: subscribe, publish, receive.
    let stream = tls(&connector, &addr).await.unwrap();
    let url = format!("wss://localhost:{}/ws", addr.rsplit_once(':').unwrap().1);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    for m in [
        json!({"topic":"subscribe","data":{"topic":"t"}}),
        json!({"topic":"publish","data":{"topic":"t","data":"over tls"}}),
    ] {
        ws.send(Message::text(m.to_string())).await.unwrap();
    }
    let got = loop {
        match tokio::time::timeout(GUARD, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(t))) => break serde_json::from_str::<Value>(&t).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("wss ended: {other:?}"),
        }
    };
    assert_eq!(got, json!({"topic":"t","data":"over tls"}));
    let _ = ws.close(None).await;
}
