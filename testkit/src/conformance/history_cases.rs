//! Cases of history, recovery and presence: offsets on topics with history,
//! the `subscribed` reply, replay then live with no gap and no duplicate,
//! positions that are gone, `join`/`leave` and `presence` answers, and the
//! right to subscribe both need. The profile gives `hist:*` a history of
//! [`HISTORY_SIZE`] publications, and `long:*` one of [`LONG_HISTORY_SIZE`],
//! longer than the send queue.

use serde_json::{Value, json};

use super::Ctx;
use crate::profile::{HISTORY_SIZE, LONG_HISTORY_SIZE};
use crate::ws_client::WsClient;

fn numbered(topic: &str, data: Value, offset: u64) -> Value {
    json!({"topic": topic, "data": data, "offset": offset})
}

async fn subscribe_with(ws: &mut WsClient, data: Value) {
    ws.send(&json!({"topic": "subscribe", "data": data})).await;
}

/// Subscribes with `"history":true` and returns the reply's epoch and offset.
async fn position(ws: &mut WsClient, topic: &str) -> (String, u64) {
    subscribe_with(ws, json!({"topic": topic, "history": true})).await;
    let reply = ws.recv_message().await;
    assert_eq!(reply["topic"], "subscribed", "{reply}");
    let epoch = reply["data"]["epoch"].as_str().expect("epoch").to_owned();
    (epoch, reply["data"]["offset"].as_u64().expect("offset"))
}

fn reply(topic: &str, epoch: &str, offset: u64, recovered: bool) -> Value {
    json!({"topic": "subscribed", "data": {
        "topic": topic, "epoch": epoch, "offset": offset, "recovered": recovered}})
}

/// Publications on a topic with history carry offsets 1, 2, 3, ... counted
/// per topic; a topic without history is sent exactly as before.
pub(super) async fn history_offsets_are_dense_per_topic(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    for t in ["hist:a", "hist:b", "plain"] {
        a.subscribe(t).await;
    }
    a.barrier().await;
    a.publish("hist:a", json!("x")).await;
    a.publish("hist:b", json!("y")).await;
    a.publish("hist:a", json!("z")).await;
    a.publish("plain", json!("p")).await;
    a.publish("hist:a", json!({"n": 3})).await;
    assert_eq!(a.recv_message().await, numbered("hist:a", json!("x"), 1));
    assert_eq!(a.recv_message().await, numbered("hist:b", json!("y"), 1));
    assert_eq!(a.recv_message().await, numbered("hist:a", json!("z"), 2));
    assert_eq!(
        a.recv_message().await,
        json!({"topic": "plain", "data": "p"})
    );
    assert_eq!(
        a.recv_message().await,
        numbered("hist:a", json!({"n": 3}), 3)
    );
}

/// `since` or `"history":true` earns exactly
/// `{"topic":"subscribed","data":{"topic","epoch","offset","recovered"}}`.
pub(super) async fn history_subscribed_reply_has_the_documented_shape(cx: &Ctx<'_>) {
    let mut p = cx.ws("bob").await;
    p.publish("hist:shape", json!(1)).await;
    p.publish("hist:shape", json!(2)).await;
    p.barrier().await;
    let mut a = cx.ws("alice").await;
    subscribe_with(&mut a, json!({"topic": "hist:shape", "history": true})).await;
    let m = a.recv_message().await;
    let data = m["data"].as_object().expect("data is an object");
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["epoch", "offset", "recovered", "topic"], "{m}");
    assert_eq!(m["topic"], "subscribed");
    assert_eq!(m["data"]["topic"], "hist:shape");
    assert!(!m["data"]["epoch"].as_str().unwrap_or("").is_empty(), "{m}");
    assert_eq!(m["data"]["offset"], 2);
    assert_eq!(m["data"]["recovered"], false, "no since: nothing recovered");
    assert!(a.barrier().await.is_empty(), "nothing old without since");
}

/// A plain (mizu) subscribe to a topic with history gets no reply; its
/// publications still carry offsets.
pub(super) async fn history_plain_subscribe_gets_no_reply(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    a.publish("hist:plain", json!("before")).await;
    a.subscribe("hist:plain").await;
    let got = a.barrier().await;
    assert!(got.is_empty(), "a plain subscribe was answered: {got:?}");
    a.publish("hist:plain", json!("after")).await;
    assert_eq!(
        a.recv_message().await,
        numbered("hist:plain", json!("after"), 2)
    );
}

/// A client that reconnects naming its last offset gets the reply, every
/// publication after it in order, then live ones, each exactly once.
pub(super) async fn history_recovery_replays_in_order_then_live_without_duplicates(cx: &Ctx<'_>) {
    let topic = "hist:resume";
    let mut a = cx.ws("alice").await;
    let mut p = cx.ws("bob").await;
    let (epoch, offset) = position(&mut a, topic).await;
    assert_eq!(offset, 0);
    p.publish(topic, json!(1)).await;
    p.publish(topic, json!(2)).await;
    assert_eq!(a.recv_message().await, numbered(topic, json!(1), 1));
    assert_eq!(a.recv_message().await, numbered(topic, json!(2), 2));
    a.close().await;
    p.publish(topic, json!(3)).await;
    p.publish(topic, json!(4)).await;
    p.barrier().await;

    let mut a = cx.ws("alice").await;
    subscribe_with(
        &mut a,
        json!({"topic": topic, "since": {"epoch": epoch, "offset": 2}}),
    )
    .await;
    assert_eq!(a.recv_message().await, reply(topic, &epoch, 4, true));
    assert_eq!(a.recv_message().await, numbered(topic, json!(3), 3));
    assert_eq!(a.recv_message().await, numbered(topic, json!(4), 4));
    p.publish(topic, json!(5)).await;
    assert_eq!(a.recv_message().await, numbered(topic, json!(5), 5));
    let extra = a.barrier().await;
    assert!(extra.is_empty(), "duplicates or strays: {extra:?}");
}

/// A replay several send queues long arrives whole, in order, although its
/// topic has gone quiet and the client only reads: the rest of a replay
/// that did not fit follows as the client takes what was sent, with nothing
/// else (a publish, a ping, a frame from the client) needed to move it on.
pub(super) async fn history_replay_longer_than_the_queue_finishes_on_a_quiet_topic(cx: &Ctx<'_>) {
    let topic = "long:quiet";
    let mut a = cx.ws("alice").await;
    let (epoch, offset) = position(&mut a, topic).await;
    assert_eq!(offset, 0);
    a.close().await;
    let mut p = cx.ws("bob").await;
    let total = LONG_HISTORY_SIZE as u64;
    assert!(
        total > 2 * cx.profile.send_queue_messages as u64,
        "the replay must not fit the send queue"
    );
    for n in 1..=total {
        p.publish(topic, json!(n)).await;
    }
    p.barrier().await;
    p.close().await;

    let mut a = cx.ws("alice").await;
    subscribe_with(
        &mut a,
        json!({"topic": topic, "since": {"epoch": epoch, "offset": 0}}),
    )
    .await;
    assert_eq!(a.recv_message().await, reply(topic, &epoch, total, true));
    for n in 1..=total {
        assert_eq!(a.recv_message().await, numbered(topic, json!(n), n));
    }
    let extra = a.barrier().await;
    assert!(extra.is_empty(), "duplicates or strays: {extra:?}");
}

/// A position in another epoch is gone: `recovered:false`, nothing old, and
/// live publications follow.
pub(super) async fn history_wrong_epoch_is_not_recovered_and_sends_nothing_old(cx: &Ctx<'_>) {
    let topic = "hist:epoch";
    let mut p = cx.ws("bob").await;
    p.publish(topic, json!(1)).await;
    p.barrier().await;
    let mut a = cx.ws("alice").await;
    let (epoch, _) = position(&mut cx.ws("carol").await, topic).await;
    subscribe_with(
        &mut a,
        json!({"topic": topic, "since": {"epoch": "not-the-epoch", "offset": 0}}),
    )
    .await;
    assert_eq!(a.recv_message().await, reply(topic, &epoch, 1, false));
    p.publish(topic, json!(2)).await;
    assert_eq!(a.recv_message().await, numbered(topic, json!(2), 2));
    assert!(a.barrier().await.is_empty());
}

/// A position older than the history keeps is gone: `recovered:false`; one
/// still kept is recovered.
pub(super) async fn history_trimmed_position_is_not_recovered(cx: &Ctx<'_>) {
    let topic = "hist:trim";
    let mut p = cx.ws("bob").await;
    let total = HISTORY_SIZE as u64 + 3;
    for i in 1..=total {
        p.publish(topic, json!(i)).await;
    }
    p.barrier().await;
    let (epoch, last) = position(&mut cx.ws("carol").await, topic).await;
    assert_eq!(last, total);
    let mut a = cx.ws("alice").await;
    subscribe_with(
        &mut a,
        json!({"topic": topic, "since": {"epoch": epoch, "offset": 1}}),
    )
    .await;
    assert_eq!(a.recv_message().await, reply(topic, &epoch, total, false));
    assert!(a.barrier().await.is_empty(), "nothing old after a miss");
    let oldest_kept = total - HISTORY_SIZE as u64 + 1;
    let mut b = cx.ws("dave").await;
    subscribe_with(
        &mut b,
        json!({"topic": topic, "since": {"epoch": epoch, "offset": oldest_kept - 1}}),
    )
    .await;
    assert_eq!(b.recv_message().await, reply(topic, &epoch, total, true));
    for i in oldest_kept..=total {
        assert_eq!(b.recv_message().await, numbered(topic, json!(i), i));
    }
}

/// A malformed `since` is refused with a `bad_data` error frame and
/// subscribes nothing; the connection stays open.
pub(super) async fn history_malformed_since_gets_an_error_frame(cx: &Ctx<'_>) {
    let mut a = cx.ws("alice").await;
    for since in [
        json!("e:1"),
        json!({"epoch": "e", "offset": -1}),
        json!({"epoch": 1, "offset": 1}),
    ] {
        subscribe_with(&mut a, json!({"topic": "hist:bad", "since": since})).await;
        let m = a.recv_message().await;
        assert_eq!(m["topic"], "error", "{m}");
        assert_eq!(m["data"]["code"], "bad_data", "{m}");
    }
    let mut p = cx.ws("bob").await;
    p.publish("hist:bad", json!(1)).await;
    p.barrier().await;
    assert!(a.barrier().await.is_empty(), "subscribed despite the error");
}

/// `"presence":true` makes a session hear joins and leaves of the topic; a
/// `presence` query lists its subscribers with their users.
pub(super) async fn presence_join_leave_and_query(cx: &Ctx<'_>) {
    let topic = "room:presence";
    let mut w = cx.ws("alice").await;
    subscribe_with(&mut w, json!({"topic": topic, "presence": true})).await;
    assert!(
        w.barrier().await.is_empty(),
        "presence alone earns no reply"
    );
    let mut b = cx.ws("bob").await;
    b.subscribe(topic).await;
    b.barrier().await;
    let join = w.recv_message().await;
    assert_eq!(join["topic"], "join", "{join}");
    assert_eq!(join["data"]["topic"], topic);
    assert_eq!(join["data"]["user"], "bob");
    let bob_session = join["data"]["session"]
        .as_str()
        .expect("session")
        .to_owned();

    let mut q = cx.ws("carol").await;
    q.send(&json!({"topic": "presence", "data": {"topic": topic}}))
        .await;
    let answer = q.recv_message().await;
    assert_eq!(answer["topic"], "presence", "{answer}");
    assert_eq!(answer["data"]["topic"], topic);
    let mut users: Vec<&str> = answer["data"]["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| c["user"].as_str().unwrap_or("?"))
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["alice", "bob"], "{answer}");

    b.unsubscribe(topic).await;
    b.barrier().await;
    let leave = w.recv_message().await;
    assert_eq!(
        leave,
        json!({"topic": "leave", "data": {"topic": topic, "session": bob_session, "user": "bob"}})
    );
    assert!(
        b.barrier().await.is_empty(),
        "a session without presence heard presence frames"
    );
}

/// Without the right to subscribe to a topic, recovery and presence on it are
/// refused with `forbidden`, and nothing old or present is revealed.
pub(super) async fn presence_and_recovery_need_the_subscribe_right(cx: &Ctx<'_>) {
    let topic = "private:bob";
    let mut owner = cx.ws("bob").await;
    owner.subscribe(topic).await;
    owner.publish(topic, json!("secret")).await;
    assert_eq!(
        owner.recv_message().await,
        json!({"topic": topic, "data": "secret"})
    );
    let mut m = cx.ws("mallory").await;
    subscribe_with(
        &mut m,
        json!({"topic": topic, "since": {"epoch": "x", "offset": 0}, "presence": true}),
    )
    .await;
    m.send(&json!({"topic": "presence", "data": {"topic": topic}}))
        .await;
    subscribe_with(
        &mut m,
        json!({"topic": "sync:someone-else", "history": true}),
    )
    .await;
    for _ in 0..3 {
        let f = m.recv_message().await;
        assert_eq!(f["topic"], "error", "{f}");
        assert_eq!(f["data"]["code"], "forbidden", "{f}");
    }
    assert!(m.barrier().await.is_empty());
}
