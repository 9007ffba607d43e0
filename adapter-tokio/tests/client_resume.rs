//! The live client resuming topics with history against the tokio server
//! over real sockets: a client cut off by a relay while messages are
//! published gets every one once and in order after it reconnects; a
//! restarted server (a new epoch) is reported as `RecoveryFailed`; a saved
//! position starts a subscription; `resume(false)` subscribes plainly.

mod common;

use common::*;
use live_sync_client::{LiveClient, LiveEvent, Position};
use serde_json::{Value, json};

/// Waits for the `Subscribed` event of `topic`; returns its position and
/// whether it recovered.
async fn subscribed(rec: &mut Recorder, topic: &str) -> (Position, bool) {
    rec.until(&format!("subscribed {topic}"), |ev| match ev {
        LiveEvent::Subscribed {
            topic: t,
            position,
            recovered,
        } if t == topic => Some((position.clone(), *recovered)),
        _ => None,
    })
    .await
}

/// The next message on `topic`, with its offset.
async fn numbered(rec: &mut Recorder, topic: &str) -> (Value, Option<u64>) {
    rec.until(&format!("message on {topic}"), |ev| match ev {
        LiveEvent::Message(m) if m.topic == topic => Some((m.data.clone(), m.offset)),
        _ => None,
    })
    .await
}

/// Every message of `topic` seen so far, as (data, offset).
fn seen_on(rec: &Recorder, topic: &str) -> Vec<(Value, Option<u64>)> {
    rec.seen
        .iter()
        .filter_map(|ev| match ev {
            LiveEvent::Message(m) if m.topic == topic => Some((m.data.clone(), m.offset)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_off_resumes_with_every_message_once_and_in_order() {
    const TOPIC: &str = "hist:room";
    let server = start_server_with_history(&[("hist:*", 100)]).await;
    let relay = Relay::start(server.addr()).await;
    let direct = format!("ws://{}/ws", server.addr());
    let (alice, mut a) = connect(&relay.ws_url(), "alice").await;
    let (bob, mut b) = connect(&direct, "bob").await;

    alice.subscribe(TOPIC).await.unwrap();
    let (start, recovered) = subscribed(&mut a, TOPIC).await;
    assert!(!recovered);
    assert!(start.is_resumable(), "{start:?}");
    for n in 1..=3 {
        bob.publish(TOPIC, json!(n)).await.unwrap();
    }
    for n in 1..=3u64 {
        assert_eq!(
            numbered(&mut a, TOPIC).await,
            (json!(n), Some(start.offset + n))
        );
    }

    // The network goes: alice's connection is cut and she cannot come back.
    relay.cut();
    a.until("disconnected", |ev| {
        matches!(ev, LiveEvent::Disconnected { .. }).then_some(())
    })
    .await;
    for n in 4..=23 {
        bob.publish(TOPIC, json!(n)).await.unwrap();
    }
    // Bob's frames are handled in order: after his barrier, all 20 are kept.
    b.barrier(&bob).await;

    // The network comes back: alice resumes from offset 3 by herself.
    relay.heal();
    let (at, recovered) = subscribed(&mut a, TOPIC).await;
    assert!(recovered, "the position was still held");
    assert_eq!(at, Position::new(start.epoch.clone(), start.offset + 23));
    a.barrier(&alice).await;
    bob.publish(TOPIC, json!(24)).await.unwrap();
    assert_eq!(
        numbered(&mut a, TOPIC).await,
        (json!(24), Some(start.offset + 24))
    );
    let want: Vec<(Value, Option<u64>)> = (1..=24u64)
        .map(|n| (json!(n), Some(start.offset + n)))
        .collect();
    assert_eq!(seen_on(&a, TOPIC), want, "each message once, in order");
    assert_eq!(
        alice.position(TOPIC).await.unwrap(),
        Some(Position::new(start.epoch, start.offset + 24))
    );
    assert!(
        !a.seen
            .iter()
            .any(|e| matches!(e, LiveEvent::RecoveryFailed { .. })),
        "{:?}",
        a.seen
    );
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_reported_as_a_failed_recovery() {
    const TOPIC: &str = "hist:restart";
    let server = ServerThread::start("127.0.0.1:0", None);
    let addr = server.addr;
    let (alice, mut a) = connect(&server.ws_url(), "alice").await;
    alice.subscribe(TOPIC).await.unwrap();
    let (before, _) = subscribed(&mut a, TOPIC).await;
    {
        let (bob, _b) = connect(&server.ws_url(), "bob").await;
        bob.publish(TOPIC, json!("one")).await.unwrap();
        bob.publish(TOPIC, json!("two")).await.unwrap();
        bob.close().await.unwrap();
    }
    assert_eq!(numbered(&mut a, TOPIC).await.0, json!("one"));
    assert_eq!(numbered(&mut a, TOPIC).await.0, json!("two"));
    let read = Position::new(before.epoch.clone(), before.offset + 2);

    // A restart loses the in-memory history: a new epoch.
    server.stop().await;
    let server = ServerThread::start(&addr.to_string(), None);
    let (since, now) = a
        .until("recovery failed", |ev| match ev {
            LiveEvent::RecoveryFailed {
                topic,
                since,
                position,
            } if topic == TOPIC => Some((since.clone(), position.clone())),
            _ => None,
        })
        .await;
    assert_eq!(since, read, "the client named the last position it read");
    assert_ne!(now.epoch, read.epoch, "a new epoch");
    assert!(now.is_resumable());
    // It reads on from the new position.
    a.barrier(&alice).await;
    let (bob, _b) = connect(&server.ws_url(), "bob").await;
    bob.publish(TOPIC, json!("three")).await.unwrap();
    assert_eq!(
        numbered(&mut a, TOPIC).await,
        (json!("three"), Some(now.offset + 1))
    );
    alice.close().await.unwrap();
    bob.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_from_a_saved_position_gets_what_came_after_it() {
    const TOPIC: &str = "hist:saved";
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let (alice, mut a) = connect(&url, "alice").await;
    alice.subscribe(TOPIC).await.unwrap();
    let (start, _) = subscribed(&mut a, TOPIC).await;
    for n in 1..=3 {
        alice.publish(TOPIC, json!(n)).await.unwrap();
    }
    for _ in 1..=3 {
        numbered(&mut a, TOPIC).await;
    }
    let (carol, mut c) = connect(&url, "carol").await;
    carol
        .subscribe_from(TOPIC, Position::new(start.epoch.clone(), start.offset + 1))
        .await
        .unwrap();
    let (_, recovered) = subscribed(&mut c, TOPIC).await;
    assert!(recovered);
    assert_eq!(
        numbered(&mut c, TOPIC).await,
        (json!(2), Some(start.offset + 2))
    );
    assert_eq!(
        numbered(&mut c, TOPIC).await,
        (json!(3), Some(start.offset + 3))
    );
    c.barrier(&carol).await;
    assert_eq!(seen_on(&c, TOPIC).len(), 2);
    alice.close().await.unwrap();
    carol.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_resume_subscribes_are_plain_and_nothing_is_recovered() {
    const TOPIC: &str = "hist:plain";
    let server = start_server_with_history(&[("hist:*", 100)]).await;
    let relay = Relay::start(server.addr()).await;
    let direct = format!("ws://{}/ws", server.addr());
    let (alice, events) =
        LiveClient::connect(&relay.ws_url(), options("alice").resume(false)).unwrap();
    let mut a = Recorder::new(events);
    a.until("connected", |ev| {
        matches!(ev, LiveEvent::Connected).then_some(())
    })
    .await;
    let (bob, mut b) = connect(&direct, "bob").await;
    alice.subscribe(TOPIC).await.unwrap();
    a.barrier(&alice).await;
    bob.publish(TOPIC, json!("live")).await.unwrap();
    // The offset is still read from the frame.
    assert_eq!(numbered(&mut a, TOPIC).await.0, json!("live"));
    assert_eq!(alice.position(TOPIC).await.unwrap(), None);

    relay.cut();
    a.until("disconnected", |ev| {
        matches!(ev, LiveEvent::Disconnected { .. }).then_some(())
    })
    .await;
    bob.publish(TOPIC, json!("missed")).await.unwrap();
    b.barrier(&bob).await;
    relay.heal();
    a.until("reconnected", |ev| {
        matches!(ev, LiveEvent::Connected).then_some(())
    })
    .await;
    a.barrier(&alice).await;
    bob.publish(TOPIC, json!("after")).await.unwrap();
    assert_eq!(numbered(&mut a, TOPIC).await.0, json!("after"));
    let data: Vec<Value> = seen_on(&a, TOPIC).into_iter().map(|(d, _)| d).collect();
    assert_eq!(data, vec![json!("live"), json!("after")]);
    assert!(
        !a.seen.iter().any(|e| matches!(
            e,
            LiveEvent::Subscribed { .. } | LiveEvent::RecoveryFailed { .. }
        )),
        "a plain subscribe gets no reply: {:?}",
        a.seen
    );
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// One side of a scripted WebSocket server the test speaks for.
type ScriptedWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn accept(listener: &tokio::net::TcpListener) -> ScriptedWs {
    let (tcp, _) = guard("the client connects", listener.accept())
        .await
        .unwrap();
    guard("handshake", tokio_tungstenite::accept_async(tcp))
        .await
        .unwrap()
}

/// The next text frame the client sent, as JSON.
async fn next_json(ws: &mut ScriptedWs) -> Value {
    use futures_util::StreamExt;
    loop {
        let msg = guard("a frame from the client", ws.next())
            .await
            .expect("the client is connected")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn send(ws: &mut ScriptedWs, frame: Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        frame.to_string(),
    ))
    .await
    .unwrap();
}

/// Waits for the message `marker` (no offset) on `topic`.
async fn until_marker(rec: &mut Recorder, topic: &str, marker: &str) {
    let want = json!(marker);
    rec.until(marker, |ev| match ev {
        LiveEvent::Message(m) if m.topic == topic && m.data == want => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_scripted_server_since_names_the_last_read_and_duplicates_and_stale_replies_are_dropped()
 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let (client, events) = LiveClient::connect(&url, options("alice")).unwrap();
    let mut rec = Recorder::new(events);
    client.subscribe("t").await.unwrap();

    // First connection: the subscribe asks for the position.
    let mut ws = accept(&listener).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"topic":"subscribe","data":{"topic":"t","history":true}})
    );
    send(
        &mut ws,
        json!({"topic":"subscribed","data":{"topic":"t","epoch":"E","offset":0,"recovered":false}}),
    )
    .await;
    for (data, offset) in [("a", 1), ("b", 2), ("b", 2), ("a", 1), ("c", 3)] {
        send(&mut ws, json!({"topic":"t","data":data,"offset":offset})).await;
    }
    // Odd offsets are no offsets: delivered, the position untouched.
    send(&mut ws, json!({"topic":"t","data":"odd","offset":"7"})).await;
    send(&mut ws, json!({"topic":"t","data":"end1"})).await;
    until_marker(&mut rec, "t", "end1").await;
    assert_eq!(
        seen_on(&rec, "t"),
        vec![
            (json!("a"), Some(1)),
            (json!("b"), Some(2)),
            (json!("c"), Some(3)),
            (json!("odd"), None),
            (json!("end1"), None),
        ]
    );
    drop(ws);

    // Second connection: the subscribe names the last position read; the
    // replay's duplicate of offset 3 is dropped.
    let mut ws = accept(&listener).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"topic":"subscribe","data":{"topic":"t","history":true,"since":{"epoch":"E","offset":3}}})
    );
    send(
        &mut ws,
        json!({"topic":"subscribed","data":{"topic":"t","epoch":"E","offset":5,"recovered":true}}),
    )
    .await;
    for (data, offset) in [("c", 3), ("d", 4), ("e", 5)] {
        send(&mut ws, json!({"topic":"t","data":data,"offset":offset})).await;
    }
    send(&mut ws, json!({"topic":"t","data":"end2"})).await;
    until_marker(&mut rec, "t", "end2").await;
    let after: Vec<Value> = seen_on(&rec, "t")
        .into_iter()
        .skip(5)
        .map(|(d, _)| d)
        .collect();
    assert_eq!(after, vec![json!("d"), json!("e"), json!("end2")]);

    // Unsubscribe and subscribe again, twice, before any reply: the first
    // reply answers a subscription undone since, is stale and must not move
    // the position.
    for _ in 0..2 {
        client.unsubscribe("t").await.unwrap();
        client.subscribe("t").await.unwrap();
        assert_eq!(
            next_json(&mut ws).await,
            json!({"topic":"unsubscribe","data":{"topic":"t"}})
        );
        assert_eq!(
            next_json(&mut ws).await,
            json!({"topic":"subscribe","data":{"topic":"t","history":true}}),
            "an unsubscribe forgets the position"
        );
    }
    send(
        &mut ws,
        json!({"topic":"subscribed","data":{"topic":"t","epoch":"OLD","offset":99,"recovered":false}}),
    )
    .await;
    send(
        &mut ws,
        json!({"topic":"subscribed","data":{"topic":"t","epoch":"E","offset":5,"recovered":false}}),
    )
    .await;
    send(&mut ws, json!({"topic":"t","data":"f","offset":6})).await;
    send(&mut ws, json!({"topic":"t","data":"end3"})).await;
    until_marker(&mut rec, "t", "end3").await;
    assert_eq!(
        client.position("t").await.unwrap(),
        Some(Position::new("E", 6))
    );
    let replies: Vec<&LiveEvent> = rec
        .seen
        .iter()
        .filter(|e| {
            matches!(
                e,
                LiveEvent::Subscribed { .. } | LiveEvent::RecoveryFailed { .. }
            )
        })
        .collect();
    assert_eq!(
        replies.len(),
        3,
        "the stale reply is not reported: {replies:?}"
    );
    assert!(
        replies
            .iter()
            .all(|e| matches!(e, LiveEvent::Subscribed { position, .. } if position.epoch == "E")),
        "{replies:?}"
    );
    drop(ws);
    client.close().await.unwrap();
}
