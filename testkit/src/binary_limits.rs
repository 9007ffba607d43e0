//! The stock binary's abuse limits, end to end: 2 000 connections from one
//! address stop at `--max-connections-per-ip` (429 `too_many_connections`),
//! a subscribe storm over `--max-messages-per-second` gets a `rate_limited`
//! frame then a close with 4029, and a client that sends its headers one
//! byte at a time is dropped at `--header-read-timeout`; meanwhile another
//! client is served. Run by [`crate::server_binary_suite!`]. The clients
//! are on loopback, so the per-client limits are turned on for it
//! (`--limit-loopback`); without it they are exempt, which another case
//! checks.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::binary_process::start;
use crate::raw_http::RawConn;
use crate::ws_client::WsClient;

const GUARD: Duration = Duration::from_secs(30);

async fn get(conn: &mut RawConn, path: &str) -> crate::raw_http::RawResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    conn.write(request.as_bytes()).await.expect("write");
    conn.read_response().await.expect("an answer")
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// 2 000 connections from one address: those over the bound are answered
/// 429 `too_many_connections` and counted; the rest are served.
pub async fn connections_over_the_per_ip_bound_are_429(exe: &str) {
    const PER_IP: usize = 50;
    const ATTEMPTS: usize = 2000;
    let srv = start(
        exe,
        &[
            "--memory",
            "--limit-loopback",
            "--max-connections-per-ip",
            &PER_IP.to_string(),
            "--header-read-timeout",
            "600",
        ],
    )
    .await;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..ATTEMPTS {
        let mut conn = RawConn::connect(&srv.addr).await.expect("connect");
        let r = get(&mut conn, "/healthz").await;
        match r.status {
            200 => held.push(conn),
            429 => {
                assert_eq!(r.json()["code"], "too_many_connections", "{}", r.text());
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    // The start-up health check's connection may still be counted.
    assert!(
        held.len() <= PER_IP && held.len() >= PER_IP - 1,
        "{}",
        held.len()
    );
    assert_eq!(held.len() + refused, ATTEMPTS);
    // A held connection still serves, and /metrics counts the refusals.
    let m = get(&mut held[0], "/metrics").await;
    assert_eq!(
        metric(&m.text(), "limit_connections_refused_total"),
        Some(refused as u64),
        "{}",
        m.text()
    );
}

/// Without `--limit-loopback`, clients on this machine are bound only by
/// the total: more connections than the per-IP bound and a message burst
/// far over the rate are all served.
pub async fn loopback_is_bound_by_the_total_only(exe: &str) {
    let srv = start(
        exe,
        &[
            "--memory",
            "--max-connections-per-ip",
            "5",
            "--max-messages-per-second",
            "1",
            "--message-burst",
            "2",
        ],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut conn = RawConn::connect(&srv.addr).await.expect("connect");
        assert_eq!(get(&mut conn, "/healthz").await.status, 200);
        held.push(conn);
    }
    let url = format!("ws://{}/ws", srv.addr);
    let mut client = WsClient::connect_as(&url, "local").await;
    for i in 0..50 {
        client.subscribe(&format!("t{i}")).await;
    }
    client.publish("t49", json!("still here")).await;
    let (got, skipped) = client.recv_topic("t49").await;
    assert_eq!(got["data"], "still here", "{got}");
    assert!(skipped.is_empty(), "no error frame: {skipped:?}");
}

/// A subscribe storm: one `rate_limited` error frame, then 4029; a calm
/// session still gets what is published.
pub async fn a_subscribe_storm_is_rate_limited_then_closed(exe: &str) {
    let srv = start(
        exe,
        &[
            "--memory",
            "--limit-loopback",
            "--max-messages-per-second",
            "1",
            "--message-burst",
            "20",
        ],
    )
    .await;
    let url = format!("ws://{}/ws", srv.addr);
    let mut calm = WsClient::connect_as(&url, "calm").await;
    calm.subscribe("news").await;

    let flooder = WsClient::connect_as(&url, "flood").await;
    let (mut tx, mut rx) = flooder.into_stream().split();
    let storm = tokio::spawn(async move {
        for i in 0..2000 {
            let m = json!({"topic":"subscribe","data":{"topic":format!("t{i}")}});
            if tx.send(Message::text(m.to_string())).await.is_err() {
                break;
            }
        }
    });
    let mut limited = 0;
    let code = loop {
        match tokio::time::timeout(GUARD, rx.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["data"]["code"], "rate_limited", "{v}");
                limited += 1;
            }
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    let _ = storm.await;
    assert!(limited >= 1, "told before the close");
    assert_eq!(code, Some(4029));

    calm.publish("news", json!("still here")).await;
    let (got, _) = calm.recv_topic("news").await;
    assert_eq!(got["data"], "still here");
}

/// Headers sent one byte at a time are cut off at the header read timeout;
/// another client is answered meanwhile.
pub async fn headers_one_byte_at_a_time_are_cut_off(exe: &str) {
    let srv = start(exe, &["--memory", "--header-read-timeout", "1"]).await;
    let mut slow = TcpStream::connect(&srv.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let drip = async {
        for b in request {
            if slow.write_all(&[*b]).await.is_err() {
                return true;
            }
            let mut other = RawConn::connect(&srv.addr).await.unwrap();
            assert_eq!(get(&mut other, "/healthz").await.status, 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    let cut_off = tokio::time::timeout(GUARD, drip).await.expect("in time");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(GUARD, slow.read_to_end(&mut rest)).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(
        cut_off || !text.starts_with("HTTP/1.1 200"),
        "the dripping client was served: {text}"
    );
    // Counted once the server has closed it (polled: the count follows the close).
    let counted = async {
        loop {
            let mut other = RawConn::connect(&srv.addr).await.unwrap();
            let m = get(&mut other, "/metrics").await;
            if metric(&m.text(), "limit_header_timeouts_total").is_some_and(|n| n >= 1) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(GUARD, counted)
        .await
        .expect("the header timeout is counted in /metrics");
}
