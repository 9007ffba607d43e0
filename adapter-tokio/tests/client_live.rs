//! The live client against the tokio server (conformance profile) over real
//! sockets: subscribe / publish / unsubscribe, error frames, offline
//! behaviour, auth rejection, and reconnect with resubscribe after the server
//! restarts.

mod common;

use std::time::Duration;

use common::*;
use live_sync_client::{
    Backoff, ClientError, ConnectionState, DisconnectReason, LiveClient, LiveEvent, LiveOptions,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_publish_round_trip_in_order() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let (alice, mut a) = connect(&url, "alice").await;
    let (bob, mut b) = connect(&url, "bob").await;

    alice.subscribe("room").await.unwrap();
    a.barrier(&alice).await;
    for n in 1..=5 {
        bob.publish("room", json!({"n": n})).await.unwrap();
    }
    for n in 1..=5 {
        assert_eq!(a.message_on("room").await, json!({"n": n}));
    }
    // Bob is not subscribed: his next message is his own barrier's echo.
    b.barrier(&bob).await;
    assert!(
        b.messages().iter().all(|(t, _)| t == "echo"),
        "{:?}",
        b.messages()
    );

    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let (alice, mut a) = connect(&url, "alice").await;
    let (bob, _b) = connect(&url, "bob").await;

    alice.subscribe("a").await.unwrap();
    alice.subscribe("b").await.unwrap();
    a.barrier(&alice).await;
    alice.unsubscribe("a").await.unwrap();
    a.barrier(&alice).await;
    bob.publish("a", json!("dropped")).await.unwrap();
    bob.publish("b", json!("kept")).await.unwrap();
    // Bob's frames are handled in order, so "a" would arrive before "b".
    let first = a
        .until("a message", |ev| match ev {
            LiveEvent::Message(m) if m.topic != "echo" => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!((first.topic.as_str(), first.data), ("b", json!("kept")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_subscribe_is_a_server_error_and_the_connection_stays() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let (alice, mut a) = connect(&url, "alice").await;

    alice.subscribe("private:bob").await.unwrap();
    let code = a
        .until("error frame", |ev| match ev {
            LiveEvent::ServerError { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await;
    assert_eq!(code, "forbidden");
    a.barrier(&alice).await;
    assert_eq!(alice.state(), ConnectionState::Connected);
    assert!(
        !a.seen
            .iter()
            .any(|e| matches!(e, LiveEvent::Disconnected { .. })),
        "{:?}",
        a.seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_closed_with_1009_and_the_client_reconnects() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let (alice, mut a) = connect(&url, "alice").await;
    alice.subscribe("room").await.unwrap();
    let big = "x".repeat(100 * 1024); // the profile's read limit is 64 KiB
    alice.send("chat", json!(big)).await.unwrap();
    let reason = a
        .until("disconnected", |ev| match ev {
            LiveEvent::Disconnected { reason } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(
        matches!(reason, DisconnectReason::ClosedByServer { code: 1009, .. }),
        "{reason:?}"
    );
    a.until("reconnected", |ev| {
        matches!(ev, LiveEvent::Connected).then_some(())
    })
    .await;
    a.barrier(&alice).await;
    let (bob, _b) = connect(&url, "bob").await;
    bob.publish("room", json!("still here")).await.unwrap();
    assert_eq!(a.message_on("room").await, json!("still here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_handshake_is_reported_and_retried() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let (client, events) = LiveClient::connect(&url, options("deny")).unwrap();
    let mut rec = Recorder::new(events);
    let reason = rec
        .until("disconnected", |ev| match ev {
            LiveEvent::Disconnected { reason } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert_eq!(reason, DisconnectReason::Rejected { status: 401 });
    let attempt = rec
        .until("reconnecting", |ev| match ev {
            LiveEvent::Reconnecting { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .await;
    assert_eq!(attempt, 1);
    client.close().await.unwrap();
    rec.until("closed", |ev| matches!(ev, LiveEvent::Closed).then_some(()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_headers_and_query_tokens_authenticate() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let by_cookie = LiveOptions::default()
        .header("cookie", "token=alice")
        .unwrap();
    let by_query = LiveOptions::default();
    for (url, opts) in [
        (url.clone(), by_cookie),
        (format!("{url}?token=alice"), by_query),
    ] {
        let (live, events) = LiveClient::connect(&url, opts).unwrap();
        let mut rec = Recorder::new(events);
        rec.until("connected", |ev| match ev {
            LiveEvent::Connected => Some(()),
            LiveEvent::Disconnected { reason } => panic!("{url}: {reason:?}"),
            _ => None,
        })
        .await;
        // Authenticated as alice: her private topic is allowed.
        live.subscribe("private:alice").await.unwrap();
        rec.barrier(&live).await;
        assert!(
            !rec.seen
                .iter()
                .any(|e| matches!(e, LiveEvent::ServerError { .. }))
        );
        live.close().await.unwrap();
    }
    assert!(LiveOptions::default().header("bad header", "x").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_provider_is_asked_before_every_attempt() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    // The first token is refused; the "refreshed" one works.
    let opts = options("unused").token_provider(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move { Some(if n == 0 { "deny" } else { "alice" }.to_owned()) }
    });
    let (live, events) = LiveClient::connect(&url, opts).unwrap();
    let mut rec = Recorder::new(events);
    rec.until("connected", |ev| {
        matches!(ev, LiveEvent::Connected).then_some(())
    })
    .await;
    assert!(rec.seen.iter().any(|e| matches!(
        e,
        LiveEvent::Disconnected {
            reason: DisconnectReason::Rejected { status: 401 }
        }
    )));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Authenticated as alice.
    live.subscribe("private:alice").await.unwrap();
    rec.barrier(&live).await;
    assert!(
        !rec.seen
            .iter()
            .any(|e| matches!(e, LiveEvent::ServerError { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_publish_is_refused_and_close_ends_the_client() {
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (client, events) = LiveClient::connect(&url, options("alice")).unwrap();
    let mut rec = Recorder::new(events);
    let reason = rec
        .until("disconnected", |ev| match ev {
            LiveEvent::Disconnected { reason } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(
        matches!(reason, DisconnectReason::ConnectFailed(_)),
        "{reason:?}"
    );
    assert!(matches!(
        client.publish("room", json!(1)).await,
        Err(ClientError::NotConnected)
    ));
    // Subscribing offline is fine: it is kept for the next connection.
    client.subscribe("room").await.unwrap();
    client.close().await.unwrap();
    rec.until("closed", |ev| matches!(ev, LiveEvent::Closed).then_some(()))
        .await;
    assert_eq!(client.state(), ConnectionState::Closed);
    assert!(matches!(
        client.subscribe("room").await,
        Err(ClientError::Closed)
    ));
    assert!(matches!(
        client.wait_connected().await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_are_refused_up_front() {
    for url in [
        "http://127.0.0.1/ws",
        "wss://127.0.0.1/ws",
        "ws:///ws",
        "::",
    ] {
        assert!(
            matches!(
                LiveClient::connect(url, LiveOptions::default()),
                Err(ClientError::InvalidUrl { .. })
            ),
            "{url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_with_seeded_backoff_and_resubscribes_after_restart() {
    let server = ServerThread::start("127.0.0.1:0", None);
    let addr = server.addr;
    let url = server.ws_url();
    let (alice, mut a) = connect(&url, "alice").await;
    alice.subscribe("room").await.unwrap();
    alice.subscribe("lobby").await.unwrap();
    a.barrier(&alice).await;

    server.stop().await;
    let reason = a
        .until("disconnected", |ev| match ev {
            LiveEvent::Disconnected { reason } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(
        matches!(
            reason,
            DisconnectReason::ConnectionLost(_) | DisconnectReason::ClosedByServer { .. }
        ),
        "{reason:?}"
    );
    // Let the client fail a few attempts against the dead port.
    let mut delays = Vec::new();
    while delays.len() < 3 {
        let (attempt, delay) = a
            .until("reconnecting", |ev| match ev {
                LiveEvent::Reconnecting { attempt, delay } => Some((*attempt, *delay)),
                _ => None,
            })
            .await;
        assert_eq!(attempt as usize, delays.len() + 1);
        delays.push(delay);
    }
    let server = ServerThread::start(&addr.to_string(), None);
    a.until("reconnected", |ev| match ev {
        LiveEvent::Reconnecting { delay, .. } => {
            delays.push(*delay);
            None
        }
        LiveEvent::Connected => Some(()),
        _ => None,
    })
    .await;

    // The delays are the seeded sequence: reproducible run to run.
    let mut expected = Backoff::new(&options("alice").reconnect);
    let expected: Vec<Duration> = delays.iter().map(|_| expected.next_delay()).collect();
    assert_eq!(delays, expected);

    // Both topics were subscribed again without the application asking.
    a.barrier(&alice).await;
    let (bob, _b) = connect(&server.ws_url(), "bob").await;
    bob.publish("lobby", json!("after restart")).await.unwrap();
    bob.publish("room", json!("again")).await.unwrap();
    assert_eq!(a.message_on("lobby").await, json!("after restart"));
    assert_eq!(a.message_on("room").await, json!("again"));
    alice.close().await.unwrap();
    server.stop().await;
}
