//! The abuse limits over real sockets: 2 000 connections from one IP (the
//! ones over the per-IP bound answered 429 `too_many_connections`, another
//! address still served), a message flood (one `rate_limited` error frame,
//! then a close with 4029, the others untouched) and a client that sends
//! its headers one byte at a time (dropped at the header read timeout).
//! Every check is on answers and counters; a timeout is only a guard.

use std::net::SocketAddr;
use std::time::Duration;

mod open_server;

use adapter_common::ServerConfig;
use futures_util::{SinkExt, StreamExt};
use open_server::{GUARD, Running};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// The server with the test's limits, applied to loopback (where the test
/// clients are) like to any other peer.
async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Running {
    open_server::start(|config| {
        config.limit_loopback = true;
        configure(config);
    })
    .await
}

/// A connection to `to` from the loopback address `from` (127.0.0.x).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends `GET path` on `tcp` (keep-alive) and reads the answer's status and
/// body.
async fn get(tcp: &mut TcpStream, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length || n == 0 {
                    let status = head[9..12].parse().unwrap();
                    return (status, body.to_owned());
                }
            }
            assert!(n > 0, "connection ended before an answer: {text}");
        }
    };
    tokio::time::timeout(GUARD, read)
        .await
        .expect("an answer in time")
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_connections_from_one_ip_stop_at_its_bound_and_others_get_in() {
    const PER_IP: usize = 100;
    const ATTEMPTS: usize = 2000;
    let server = start(|c| {
        c.max_connections_per_ip = Some(PER_IP);
        // Held keep-alive connections must not be dropped while the test runs.
        c.header_read_timeout = Duration::from_secs(600);
    })
    .await;
    let mut held = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..ATTEMPTS {
        let mut tcp = connect_from([127, 0, 0, 1], server.addr).await;
        match get(&mut tcp, "/healthz").await {
            (200, _) => {
                ok += 1;
                held.push(tcp);
            }
            (429, body) => {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["code"], "too_many_connections", "{v}");
                refused += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((ok, refused), (PER_IP, ATTEMPTS - PER_IP));

    // Another address is served at once, and the refusals are counted.
    let mut other = connect_from([127, 0, 0, 2], server.addr).await;
    let (status, body) = get(&mut other, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&body, "limit_connections_refused_total"),
        Some((ATTEMPTS - PER_IP) as u64),
        "{body}"
    );

    // Once the held connections end, the address may connect again.
    drop(held);
    let again = async {
        loop {
            let mut tcp = connect_from([127, 0, 0, 1], server.addr).await;
            if get(&mut tcp, "/healthz").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(GUARD, again)
        .await
        .expect("the permits were returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_is_told_once_then_closed_4029_and_others_are_untouched() {
    let server = start(|c| {
        c.message_rate = Some(server_core::RateLimit {
            per_second: 1,
            burst: 20,
        });
    })
    .await;
    let url = format!("ws://{}/ws", server.addr);
    let (calm, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut calm_tx, mut calm_rx) = calm.split();
    calm_tx
        .send(Message::text(
            json!({"topic":"subscribe","data":{"topic":"news"}}).to_string(),
        ))
        .await
        .unwrap();

    let (flood, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut tx, mut rx) = flood.split();
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
    // One error frame per run of dropped messages (a slow machine may let a
    // refilled token through mid-storm and start a second run).
    assert!(limited >= 1, "told before the close");
    assert_eq!(code, Some(4029));

    // The calm session still gets what is published.
    server.handle.publish("news", "1").await.unwrap();
    loop {
        match tokio::time::timeout(GUARD, calm_rx.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v, json!({"topic":"news","data":1}));
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("calm session lost: {other:?}"),
        }
    }
    let m = server.handle.metrics().await.unwrap();
    assert_eq!(m.guard.sessions_limited, 1);
    assert!(m.guard.messages_limited > 20, "{:?}", m.guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_one_byte_at_a_time_are_cut_off_and_others_are_served() {
    let server = start(|c| c.header_read_timeout = Duration::from_millis(300)).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let drip = async {
        for b in request {
            if slow.write_all(&[*b]).await.is_err() {
                return true;
            }
            // Meanwhile another client is answered at once.
            let mut other = TcpStream::connect(server.addr).await.unwrap();
            assert_eq!(get(&mut other, "/healthz").await.0, 200);
            tokio::time::sleep(Duration::from_millis(50)).await;
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
    assert!(
        rest.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    let counted = async {
        loop {
            let mut http = TcpStream::connect(server.addr).await.unwrap();
            let (_, body) = get(&mut http, "/metrics").await;
            if metric(&body, "limit_header_timeouts_total").is_some_and(|n| n >= 1) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(GUARD, counted)
        .await
        .expect("the timeout is counted in /metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_total_bound_every_address_gets_503() {
    let server = start(|c| {
        c.max_connections = Some(3);
        c.header_read_timeout = Duration::from_secs(600);
    })
    .await;
    let mut held = Vec::new();
    for last in 1..=3 {
        let mut tcp = connect_from([127, 0, 0, last], server.addr).await;
        assert_eq!(get(&mut tcp, "/healthz").await.0, 200);
        held.push(tcp);
    }
    let mut late = connect_from([127, 0, 0, 9], server.addr).await;
    let (status, body) = get(&mut late, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "too_many_connections");
    // A held connection still serves.
    assert_eq!(get(&mut held[0], "/healthz").await.0, 200);
}
