//! Cases of the live protocol: envelopes, built-in commands, handshake rules,
//! limits and backpressure.

use http::Method;
use serde_json::{Value, json};

use super::Ctx;
use crate::http_client::HttpConn;
use crate::profile::ALLOWED_ORIGIN;
use crate::ws_client::{ConnectError, ConnectOptions, Incoming, TokenPlacement, WsClient};

fn assert_error_frame(m: &Value, what: &str) {
    assert_eq!(
        m["topic"], "error",
        "{what}: expected an error frame, got {m}"
    );
    let code = m["data"]["code"].as_str().unwrap_or_default();
    assert!(!code.is_empty(), "{what}: error frame without code: {m}");
    assert!(
        m["data"]["message"].is_string(),
        "{what}: error frame without message: {m}"
    );
}

fn delivery(topic: &str, data: Value) -> Value {
    json!({"topic": topic, "data": data})
}

/// Two subscribers and the (subscribed) publisher receive a publish exactly as
/// `{"topic","data"}`; a publisher that is not subscribed receives nothing.
pub(super) async fn live_subscribe_publish_reaches_every_subscriber(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    let mut b = cx.ws("bob").await;
    let mut outsider = cx.ws("carol").await;
    a.subscribe("room").await;
    b.subscribe("room").await;
    assert!(a.barrier().await.is_empty());
    assert!(b.barrier().await.is_empty());

    let data = json!({"text": "hi", "n": [1, 2.5, null, {"deep": true}]});
    a.publish("room", data.clone()).await;
    assert_eq!(
        a.recv_message().await,
        delivery("room", data.clone()),
        "publisher"
    );
    assert_eq!(
        b.recv_message().await,
        delivery("room", data.clone()),
        "subscriber"
    );

    // Publishing does not need a subscription, and does not make one.
    outsider.publish("room", json!("from outside")).await;
    assert_eq!(
        a.recv_message().await,
        delivery("room", json!("from outside"))
    );
    assert_eq!(
        b.recv_message().await,
        delivery("room", json!("from outside"))
    );
    assert!(
        outsider.barrier().await.is_empty(),
        "non-subscribed publisher got its own message"
    );

    // Order per publisher is preserved.
    for i in 0..20 {
        b.publish("room", json!(i)).await;
    }
    for i in 0..20 {
        assert_eq!(a.recv_message().await, delivery("room", json!(i)));
        assert_eq!(b.recv_message().await, delivery("room", json!(i)));
    }
}

/// Like go-mizu's live, the server sends nothing back for a successful subscribe
/// or unsubscribe: the next frame after them is the barrier's echo.
pub(super) async fn live_subscribe_sends_no_confirmation(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    a.subscribe("quiet").await;
    a.subscribe("quiet").await;
    let before = a.barrier().await;
    assert!(before.is_empty(), "subscribe answered with {before:?}");
    a.unsubscribe("quiet").await;
    a.unsubscribe("never-subscribed").await;
    let before = a.barrier().await;
    assert!(before.is_empty(), "unsubscribe answered with {before:?}");
}

/// After unsubscribe a session receives nothing more on the topic; others still do.
pub(super) async fn live_unsubscribe_stops_delivery(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    let mut b = cx.ws("bob").await;
    a.subscribe("t").await;
    b.subscribe("t").await;
    a.barrier().await;
    b.barrier().await;
    a.unsubscribe("t").await;
    assert!(a.barrier().await.is_empty());
    b.publish("t", json!("after")).await;
    assert_eq!(b.recv_message().await, delivery("t", json!("after")));
    let got = a.barrier().await;
    assert!(
        got.is_empty(),
        "unsubscribed session still received {got:?}"
    );
    // Subscribing again works.
    a.subscribe("t").await;
    a.barrier().await;
    b.publish("t", json!("again")).await;
    assert_eq!(a.recv_message().await, delivery("t", json!("again")));
}

/// A message that is not a built-in command reaches the on-message handler, which
/// under the profile echoes the original envelope to its sender only.
pub(super) async fn live_application_message_is_echoed(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    let mut b = cx.ws("bob").await;
    b.subscribe("chat").await;
    b.barrier().await;
    let env = json!({"topic": "chat", "data": {"text": "not a publish", "list": [1, "two"]}});
    a.send(&env).await;
    assert_eq!(
        a.recv_message().await,
        json!({"topic": "echo", "data": env})
    );
    // An application message is not a publish: subscribers of its topic get nothing.
    let got = b.barrier().await;
    assert!(
        got.is_empty(),
        "application message was fanned out: {got:?}"
    );
    // `data` may be any JSON, including absent.
    a.send(&json!({"topic": "scalar", "data": 42})).await;
    assert_eq!(
        a.recv_message().await,
        json!({"topic": "echo", "data": {"topic": "scalar", "data": 42}})
    );
}

/// A binary frame carrying the same JSON is handled like a text frame.
pub(super) async fn live_binary_frame_is_accepted(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    a.send_binary(br#"{"topic":"subscribe","data":{"topic":"bin"}}"#.to_vec())
        .await;
    let env = json!({"topic": "bin-app", "data": [1, 2, 3]});
    a.send_binary(env.to_string().into_bytes()).await;
    assert_eq!(
        a.recv_message().await,
        json!({"topic": "echo", "data": env})
    );
    a.send_binary(br#"{"topic":"publish","data":{"topic":"bin","data":"b"}}"#.to_vec())
        .await;
    assert_eq!(a.recv_message().await, delivery("bin", json!("b")));
}

/// No token, or the token `deny`, refuses the upgrade with 401.
pub(super) async fn live_auth_missing_or_denied_token_is_401(cx: &Ctx<'_>) {
    let url = cx.server.ws_url();
    for (what, opts) in [
        ("no token", ConnectOptions::default()),
        ("deny in header", ConnectOptions::bearer("deny")),
        (
            "deny in query",
            ConnectOptions {
                token: Some(("deny".into(), TokenPlacement::Query)),
                ..Default::default()
            },
        ),
        (
            "deny in cookie",
            ConnectOptions {
                token: Some(("deny".into(), TokenPlacement::Cookie)),
                ..Default::default()
            },
        ),
    ] {
        match WsClient::connect(&url, &opts).await {
            Err(ConnectError::Refused { status }) => assert_eq!(status.as_u16(), 401, "{what}"),
            Err(e) => panic!("{what}: expected 401, got {e}"),
            Ok(_) => panic!("{what}: upgrade accepted"),
        }
    }
}

/// The token may come from the header, the query or a cookie; the authenticated
/// value is the user name, which the private-topic rule proves.
pub(super) async fn live_auth_token_from_header_query_or_cookie(cx: &Ctx<'_>) {
    let url = cx.server.ws_url();
    for placement in [
        TokenPlacement::Header,
        TokenPlacement::Query,
        TokenPlacement::Cookie,
    ] {
        let opts = ConnectOptions {
            token: Some(("dave".into(), placement)),
            ..Default::default()
        };
        let mut c = WsClient::connect(&url, &opts)
            .await
            .unwrap_or_else(|e| panic!("{placement:?}: {e}"));
        c.subscribe("private:dave").await;
        let before = c.barrier().await;
        assert!(
            before.is_empty(),
            "{placement:?}: own private topic refused: {before:?}"
        );
        c.subscribe("private:erin").await;
        let (m, _) = c.recv_topic("error").await;
        assert_eq!(m["data"]["code"], "forbidden", "{placement:?}: {m}");
    }
}

/// An `Origin` other than the allowed one refuses the upgrade with 403.
pub(super) async fn live_origin_not_allowed_is_403(cx: &Ctx<'_>) {
    for origin in [
        "http://evil.test",
        "https://allowed.test",
        "http://allowed.test:8080",
        "null",
    ] {
        let opts = ConnectOptions {
            origin: Some(origin.into()),
            ..ConnectOptions::bearer("alice")
        };
        match WsClient::connect(&cx.server.ws_url(), &opts).await {
            Err(ConnectError::Refused { status }) => assert_eq!(status.as_u16(), 403, "{origin}"),
            Err(e) => panic!("{origin}: expected 403, got {e}"),
            Ok(_) => panic!("{origin}: upgrade accepted"),
        }
    }
}

/// The allowed origin, and no origin at all, connect.
pub(super) async fn live_origin_allowed_or_absent_connects(cx: &Ctx<'_>) {
    let opts = ConnectOptions {
        origin: Some(ALLOWED_ORIGIN.into()),
        ..ConnectOptions::bearer("alice")
    };
    let mut c = WsClient::connect(&cx.server.ws_url(), &opts)
        .await
        .expect("allowed origin refused");
    assert!(c.barrier().await.is_empty());
    let mut c = WsClient::connect(&cx.server.ws_url(), &ConnectOptions::bearer("alice"))
        .await
        .expect("request without Origin refused");
    assert!(c.barrier().await.is_empty());
}

/// `Sec-WebSocket-Version` other than 13 is answered 426 with
/// `Sec-WebSocket-Version: 13`.
pub(super) async fn live_bad_websocket_version_is_426(cx: &Ctx<'_>) {
    let mut conn = HttpConn::new(&cx.server.http_base()).expect("http base");
    let r = conn
        .request(
            Method::GET,
            cx.profile.ws_path,
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "12"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("authorization", "Bearer alice"),
            ],
            "",
        )
        .await
        .expect("response to a bad-version upgrade");
    assert_eq!(r.status.as_u16(), 426, "{}", r.text());
    let v = r
        .headers
        .get("sec-websocket-version")
        .map(|v| v.to_str().unwrap_or(""));
    assert_eq!(v, Some("13"), "426 must name the supported version");
}

/// A message over the read limit closes the connection with 1009; other sessions
/// are unaffected.
pub(super) async fn live_oversize_frame_closes_1009(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    let mut b = cx.ws("bob").await;
    let pad = "x".repeat(cx.profile.read_limit + 1024);
    a.send(&json!({"topic": "big", "data": pad})).await;
    let (code, before) = a.recv_until_closed().await;
    assert_eq!(
        code,
        Some(1009),
        "expected close 1009, messages before: {before:?}"
    );
    // A message just under the limit is fine on another connection.
    let fits = "y".repeat(cx.profile.read_limit - 1024);
    b.send(&json!({"topic": "fits", "data": fits})).await;
    let m = b.recv_message().await;
    assert_eq!(m["topic"], "echo");
    assert_eq!(m["data"]["data"].as_str().map(str::len), Some(fits.len()));
}

/// Malformed JSON, a non-object, a missing or non-string topic: each gets an
/// error frame, and the connection keeps working.
pub(super) async fn live_malformed_json_gets_error_and_connection_is_kept(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    for bad in [
        "{not json",
        "[1,2,3]",
        "42",
        r#"{"data":1}"#,
        r#"{"topic":5,"data":1}"#,
        "",
    ] {
        a.send_text(bad.to_owned()).await;
        let m = a.recv_message().await;
        assert_error_frame(&m, &format!("frame {bad:?}"));
    }
    a.subscribe("still-here").await;
    a.publish("still-here", json!("ok")).await;
    assert_eq!(a.recv_message().await, delivery("still-here", json!("ok")));
}

/// A built-in command with unusable data gets an error frame; the connection stays.
pub(super) async fn live_invalid_command_gets_error_frame(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    for bad in [
        json!({"topic": "subscribe", "data": {}}),
        json!({"topic": "subscribe", "data": {"topic": 7}}),
        json!({"topic": "subscribe"}),
        json!({"topic": "unsubscribe", "data": "x"}),
        json!({"topic": "publish", "data": {"data": 1}}),
    ] {
        a.send(&bad).await;
        let m = a.recv_message().await;
        assert_error_frame(&m, &format!("command {bad}"));
    }
    assert!(a.barrier().await.is_empty());
}

/// A reserved topic (leading `_`) that is no known command gets an error frame
/// `unknown_command`; the connection stays.
pub(super) async fn live_unknown_reserved_command_gets_error_frame(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    a.send(&json!({"topic": "_no_such_command", "data": {}}))
        .await;
    let m = a.recv_message().await;
    assert_error_frame(&m, "unknown command");
    assert_eq!(m["data"]["code"], "unknown_command", "{m}");
    assert!(a.barrier().await.is_empty());
}

/// `private:<user>` is subscribable by that user only; publishing to someone
/// else's private topic is forbidden too.
pub(super) async fn live_private_topic_is_owner_only(cx: &Ctx<'_>) {
    let mut alice = cx.ws("alice").await;
    let mut bob = cx.ws("bob").await;
    alice.subscribe("private:alice").await;
    assert!(alice.barrier().await.is_empty());
    bob.subscribe("private:alice").await;
    let m = bob.recv_message().await;
    assert_error_frame(&m, "subscribe to another user's private topic");
    assert_eq!(m["data"]["code"], "forbidden");
    bob.publish("private:alice", json!("sneaky")).await;
    let m = bob.recv_message().await;
    assert_eq!(m["data"]["code"], "forbidden", "{m}");
    alice.publish("private:alice", json!("note to self")).await;
    assert_eq!(
        alice.recv_message().await,
        delivery("private:alice", json!("note to self"))
    );
    // Bob's forbidden subscribe did not subscribe him, and his session is alive.
    assert!(bob.barrier().await.is_empty());
}

/// `readonly:*` may be subscribed but never published by a client.
pub(super) async fn live_readonly_topic_refuses_client_publish(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    let mut b = cx.ws("bob").await;
    a.subscribe("readonly:news").await;
    assert!(a.barrier().await.is_empty(), "readonly subscribe refused");
    b.publish("readonly:news", json!("fake news")).await;
    let m = b.recv_message().await;
    assert_error_frame(&m, "publish on readonly");
    assert_eq!(m["data"]["code"], "forbidden");
    let got = a.barrier().await;
    assert!(got.is_empty(), "forbidden publish was delivered: {got:?}");
}

/// A subscriber that stops reading is closed (4008, or the connection just ends)
/// once its queue overflows; a reading subscriber receives every message in order.
pub(super) async fn live_slow_consumer_is_closed_while_others_receive_everything(cx: &Ctx<'_>) {
    const TOTAL: usize = 2000;
    const ROUND: usize = 5;
    let url = cx.server.ws_url();
    let slow_opts = ConnectOptions {
        recv_buffer: Some(4096),
        ..ConnectOptions::bearer("slow")
    };
    let mut slow = WsClient::connect(&url, &slow_opts)
        .await
        .expect("slow client");
    let mut fast = cx.ws("fast").await;
    let mut publisher = cx.ws("pub").await;
    slow.subscribe("flood").await;
    fast.subscribe("flood").await;
    slow.barrier().await;
    fast.barrier().await;

    // 32 KiB payloads: the queue's byte bound (256 KiB) overflows after a few
    // messages once the socket buffers are full, and 2000 of them (64 MiB) exceed
    // anything the kernel buffers for a client that never reads.
    let payload = "p".repeat(32 * 1024);
    let mut next_expected = 0usize;
    for round in 0..TOTAL / ROUND {
        for i in 0..ROUND {
            let n = round * ROUND + i;
            publisher
                .publish("flood", json!({"n": n, "pad": payload}))
                .await;
        }
        // Pace on the fast reader so it never has more than one round (5 x 32 KiB,
        // under the 256 KiB queue bound) outstanding: it can never look slow.
        while next_expected < (round + 1) * ROUND {
            match fast.recv().await {
                Incoming::Message(m) => {
                    assert_eq!(m["topic"], "flood", "fast reader got {m}");
                    assert_eq!(
                        m["data"]["n"], next_expected,
                        "fast reader lost or reordered"
                    );
                    next_expected += 1;
                }
                other => panic!("fast reader cut off at message {next_expected}: {other:?}"),
            }
        }
    }
    assert_eq!(next_expected, TOTAL);

    // Now the slow one reads: it must end before receiving everything.
    let mut received = 0usize;
    let code = loop {
        match slow.recv().await {
            Incoming::Message(m) => {
                if m["topic"] == "flood" {
                    received += 1;
                }
            }
            Incoming::Close(code) => break code,
            Incoming::Ended(_) => break None,
            Incoming::TimedOut => panic!(
                "slow consumer was never closed ({received} of {TOTAL} messages read, then silence)"
            ),
        }
    };
    assert!(
        received < TOTAL,
        "slow consumer received all {TOTAL} messages: never closed"
    );
    if let Some(code) = code {
        assert_eq!(code, 4008, "slow consumer close code");
    }
    // The publisher and the fast reader are unaffected.
    publisher.publish("flood", json!({"n": "after"})).await;
    let m = fast.recv_message().await;
    assert_eq!(m["data"]["n"], "after");
}
