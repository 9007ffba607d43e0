//! Hostile clients over real sockets against the tokio server: each test plays
//! one kind of abuse and checks, through the server's handle and metrics (never
//! through timing), that the server bounds what it holds, answers with the
//! documented error, and keeps serving everyone else.
//!
//! A timeout around a wait is only a guard that turns a hang into a failure; no
//! assertion depends on how fast anything happens.

use std::net::SocketAddr;
use std::time::Duration;

mod open_server;

use futures_util::{SinkExt, StreamExt};
use open_server::{GUARD, start};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn subscribe(topic: &str) -> Message {
    Message::text(json!({"topic": "subscribe", "data": {"topic": topic}}).to_string())
}

/// The next text frame as JSON; fails on anything else or after [`GUARD`].
async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(GUARD, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Opens a WebSocket by hand on a raw socket and returns it after the 101.
async fn raw_websocket(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// Reads up to the end of a response head, byte by byte (nothing after it).
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = tokio::time::timeout(GUARD, tcp.read_u8())
            .await
            .expect("a response in time")
            .expect("response head");
        head.push(b);
    }
    String::from_utf8(head).unwrap()
}

/// One masked client frame (RFC 6455 5.2) with an all-zero mask.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Reads server frames until a close frame; returns its status code.
async fn read_close_code(tcp: &mut TcpStream) -> u16 {
    loop {
        let mut head = [0u8; 2];
        tokio::time::timeout(GUARD, tcp.read_exact(&mut head))
            .await
            .expect("a frame in time")
            .expect("a close frame before the end");
        let len = match head[1] & 0x7f {
            126 => u64::from(tcp.read_u16().await.unwrap()),
            127 => tcp.read_u64().await.unwrap(),
            n => u64::from(n),
        };
        let mut payload = vec![0; len as usize];
        tcp.read_exact(&mut payload).await.unwrap();
        if head[0] & 0x0f == 0x8 {
            assert!(payload.len() >= 2, "close frame without a code");
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_as_slow_and_its_queue_dropped() {
    let server = start(|c| {
        c.hub.limits.max_queued_messages = 64;
        c.hub.limits.max_queued_bytes = 256 * 1024;
        c.close_grace = Duration::from_millis(100);
    })
    .await;
    // A healthy subscriber reading everything, and one that never reads.
    let (mut healthy, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let (mut stalled, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    healthy.send(subscribe("feed")).await.unwrap();
    stalled.send(subscribe("feed")).await.unwrap();
    server
        .wait_for("two subscribers", |m| m.live.subscriptions == 2)
        .await;

    // The healthy subscriber reports each message it reads; the next one is
    // published only then, so it never has more than one queued, while the
    // stalled one's socket buffers fill and then its queue.
    let (got, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut received = 0u64;
        loop {
            let v = next_json(&mut healthy).await;
            if v["data"] == json!("end") {
                // Handed back, so the healthy session stays open.
                return (received, healthy);
            }
            received += 1;
            let _ = got.send(received);
        }
    });
    let chunk = json!("x".repeat(16 * 1024)).to_string();
    let mut published = 0u64;
    while server.metrics().await.live.slow_consumer_closes == 0 {
        assert!(published < 100_000, "the stalled client was never closed");
        server.handle.publish("feed", chunk.clone()).await.unwrap();
        published += 1;
        assert_eq!(acks.recv().await, Some(published));
    }
    server.handle.publish("feed", "\"end\"").await.unwrap();
    // The healthy subscriber got every message, the stalled one is gone with its
    // queue, and its socket task ended.
    let (received, _healthy) = reader.await.unwrap();
    assert_eq!(received, published);
    server
        .wait_for("only the healthy session left", |m| {
            (m.live.sessions, m.live.subscriptions) == (1, 1)
        })
        .await;
    assert_eq!(server.metrics().await.live.slow_consumer_closes, 1);
    let service = server.service.clone();
    tokio::time::timeout(GUARD, async {
        while service.open_websockets() > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the stalled connection's task ends");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_flood_stops_at_the_topic_limit_with_an_error_per_refusal() {
    const LIMIT: usize = 32;
    const FLOOD: usize = 2000;
    // Every refusal is an error frame queued to the flooder itself; the queue
    // is made big enough for all of them, because the flooder's flush reports
    // reach the hub only after its flood (one inbox, in order). With the default
    // 256 the flooder is closed as a slow consumer instead, which is bounded too.
    let server = start(|c| {
        c.hub.limits.max_topics_per_session = LIMIT;
        c.hub.limits.max_queued_messages = 4096;
    })
    .await;
    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    let flood = tokio::spawn(async move {
        for i in 0..FLOOD {
            tx.send(subscribe(&format!("t{i}"))).await.unwrap();
        }
        tx
    });
    let mut refused = 0;
    while refused < FLOOD - LIMIT {
        let v = next_json(&mut rx).await;
        assert_eq!(v["topic"], "error", "{v}");
        assert_eq!(v["data"]["code"], "too_many_topics", "{v}");
        refused += 1;
    }
    let _tx = flood.await.unwrap();
    let m = server.metrics().await;
    assert_eq!(m.live.subscriptions, LIMIT);
    assert_eq!(m.live.topics, LIMIT);
    assert_eq!(m.live.sessions, 1, "the flooding session stays open");
    // It still receives what it did subscribe to.
    server.handle.publish("t0", "1").await.unwrap();
    assert_eq!(next_json(&mut rx).await, json!({"topic": "t0", "data": 1}));
}

/// `[[[ ... ]]]` nested `depth` deep.
fn nested(depth: usize) -> String {
    let mut s = "[".repeat(depth);
    s.push_str(&"]".repeat(depth));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_and_huge_json_frames_are_refused_without_harm() {
    let server = start(|c| c.hub.limits.read_limit = 512 * 1024).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let (mut other, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    other.send(subscribe("deep")).await.unwrap();
    server
        .wait_for("the subscriber", |m| m.live.subscriptions == 1)
        .await;
    let deep = nested(100_000);
    // As an envelope: never parsed into a tree; as a command target: an error.
    ws.send(Message::text(deep.clone())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["data"]["code"], "bad_json");
    let command = format!(r#"{{"topic":"subscribe","data":{deep}}}"#);
    ws.send(Message::text(command)).await.unwrap();
    assert_eq!(next_json(&mut ws).await["topic"], "error");
    // As sync data over the socket: the sync parser's depth limit answers 400.
    let sync = format!(r#"{{"topic":"_sync","data":{{"rid":1,"op":"push","body":{deep}}}}}"#);
    ws.send(Message::text(sync)).await.unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(answer["topic"], "_sync", "{answer}");
    assert_eq!(answer["data"]["status"], 400, "{answer}");
    // As publish data it is passed through untouched as the raw JSON it is.
    let publish = format!(r#"{{"topic":"publish","data":{{"topic":"deep","data":{deep}}}}}"#);
    ws.send(Message::text(publish)).await.unwrap();
    let got = tokio::time::timeout(GUARD, other.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let expected = format!(r#"{{"topic":"deep","data":{deep}}}"#);
    assert_eq!(got.into_text().unwrap().as_str(), expected);

    // Over the read limit: closed with 1009, everyone else unaffected.
    let huge = format!(r#"{{"topic":"x","data":"{}"}}"#, "y".repeat(600 * 1024));
    ws.send(Message::text(huge)).await.unwrap();
    let closed = loop {
        match tokio::time::timeout(GUARD, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed, Some(1009));
    server.handle.publish("deep", "2").await.unwrap();
    let v = loop {
        let m = tokio::time::timeout(GUARD, other.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            break serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    assert_eq!(v, json!({"topic": "deep", "data": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_http_body_is_a_400_not_a_stack_overflow() {
    let server = start(|_| {}).await;
    let body = format!(r#"{{"mutations":{}}}"#, nested(100_000));
    for (path, body) in [
        ("/_sync/push", body.clone()),
        ("/_sync/pull", nested(100_000)),
    ] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(GUARD, tcp.read_to_string(&mut response))
            .await
            .unwrap()
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
        let json_body = &response[response.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(json_body).unwrap();
        assert_eq!(v["code"], "invalid_mutation", "{v}");
    }
    // The server is still up and serving.
    assert_eq!(server.metrics().await.live.sessions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_handshake_is_dropped_after_the_header_read_timeout() {
    let server = start(|c| c.header_read_timeout = Duration::from_millis(200)).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // Half a WebSocket handshake, then silence.
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(GUARD, tcp.read_to_end(&mut rest)).await;
    assert!(
        ended.is_ok(),
        "the server never dropped the partial handshake"
    );
    // Whatever was answered (hyper may send a 408 first), the socket is closed,
    // and no session was ever opened for it.
    let text = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert_eq!(server.metrics().await.live.sessions_opened, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connect_disconnect_cycles_leak_nothing() {
    const CYCLES: usize = 2000;
    let server = start(|c| c.close_grace = Duration::from_millis(50)).await;
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    // One warm-up cycle so lazily started machinery is counted in the baseline.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    server
        .wait_for("warm-up closed", |m| m.live.sessions == 0)
        .await;
    let baseline = tasks();

    for i in 0..CYCLES {
        let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
            .await
            .unwrap();
        let topic = format!("t{}", i % 10);
        ws.send(subscribe(&topic)).await.unwrap();
        match i % 3 {
            // A clean close handshake.
            0 => {
                ws.close(None).await.unwrap();
                while ws.next().await.is_some() {}
            }
            // The socket dropped without a close frame.
            1 => drop(ws),
            // Subscribed for sure (it got its own publish, which the hub
            // handles after the subscribe), then dropped.
            _ => {
                let publish = json!({"topic": "publish", "data": {"topic": topic, "data": 1}});
                ws.send(Message::text(publish.to_string())).await.unwrap();
                let _ = next_json(&mut ws).await;
                drop(ws);
            }
        }
    }
    server
        .wait_for("every session, subscription and topic gone", |m| {
            m.live.sessions == 0 && m.live.subscriptions == 0 && m.live.topics == 0
        })
        .await;
    assert_eq!(
        server.metrics().await.live.sessions_opened,
        CYCLES as u64 + 1
    );
    let service = server.service.clone();
    tokio::time::timeout(GUARD, async {
        while service.open_websockets() > 0 || tasks() > baseline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "leaked: {} websockets, {} tasks over the baseline {baseline}",
            service.open_websockets(),
            tasks() - baseline
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_body_over_the_limit_is_refused_413_before_it_is_sent() {
    let server = start(|c| c.sync_limits.max_body_bytes = 64 * 1024).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // Headers promising 10 GB; not one byte of the body follows.
    tcp.write_all(
        b"POST /_sync/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 10000000000\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a sized answer");
    let mut body = vec![0; length];
    tcp.read_exact(&mut body).await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "payload_too_large", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let server = start(|_| {}).await;
    let mut tcp = raw_websocket(server.addr).await;
    tcp.write_all(&client_frame(
        0x1,
        b"{\"topic\":\"a\",\"data\":\"\xff\xfe\"}",
    ))
    .await
    .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, 1007);
    server
        .wait_for("the session closed", |m| m.live.sessions == 0)
        .await;
    // tungstenite refused the text before the hub saw it; the close is still
    // the peer's fault, not a close the server chose.
    assert_eq!(server.metrics().await.live.peer_fault_closes, 1);
    // Binary frames carry no UTF-8 promise: the same bytes are a JSON error.
    let mut tcp = raw_websocket(server.addr).await;
    tcp.write_all(&client_frame(0x2, b"\xff\xfe"))
        .await
        .unwrap();
    tcp.write_all(&client_frame(0x8, &1000u16.to_be_bytes()))
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, 1000);
}
