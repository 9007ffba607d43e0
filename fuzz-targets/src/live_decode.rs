//! Live envelope and command decoding from arbitrary bytes.
//!
//! The first byte chooses how the bytes reach the hub: as a whole text or
//! binary frame, or as the target topic or the data of a built-in command. The
//! hub's answer is checked against an independent reading of the same bytes with
//! `serde_json::Value`:
//! - every frame sent is a UTF-8 JSON object with a string topic, and an error
//!   frame carries a string code and message;
//! - a message handed to the application is a JSON object whose `topic` and
//!   `data` are exactly what the event reports;
//! - invalid UTF-8 in a text frame closes with 1007, and nothing else closes the
//!   session.

use std::time::Instant;

use bytes::Bytes;
use live_core::{Action, Event, Frame, Hub, HubConfig, OutFrame, SessionId};
use serde_json::Value;

/// Runs one input; panics on a broken rule.
pub fn run(data: &[u8]) {
    let Some((&mode, payload)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut hub: Hub<()> = Hub::new(HubConfig::default(), 1);
    let sender = hub.handle_open_authenticated(now, ());
    let (frame, whole) = match mode % 4 {
        0 => (Frame::Text(Bytes::copy_from_slice(payload)), true),
        1 => (Frame::Binary(Bytes::copy_from_slice(payload)), true),
        2 => {
            // The bytes as a command's target topic.
            let topic = serde_json::to_string(&String::from_utf8_lossy(payload)).expect("string");
            let command = ["subscribe", "unsubscribe", "publish"][usize::from(mode / 4) % 3];
            let text = format!(r#"{{"topic":"{command}","data":{{"topic":{topic},"data":1}}}}"#);
            (Frame::Text(Bytes::from(text)), false)
        }
        _ => {
            // The bytes as a command's data, spliced in raw.
            let mut text = br#"{"topic":"publish","data":"#.to_vec();
            text.extend_from_slice(payload);
            text.push(b'}');
            (Frame::Binary(Bytes::from(text)), false)
        }
    };
    let sent = match &frame {
        Frame::Text(b) | Frame::Binary(b) => b.clone(),
        _ => unreachable!("only data frames are built"),
    };
    hub.handle_frame(now, sender, frame);

    let invalid_utf8 = mode % 4 == 0 && std::str::from_utf8(payload).is_err();
    let mut closed = None;
    while let Some(action) = hub.poll_action() {
        match action {
            Action::Send { id, frame } => {
                assert_eq!(id, sender, "only the sender is open");
                if let OutFrame::Text(text) = frame {
                    check_sent(&text);
                }
            }
            Action::Close { id, code, .. } => {
                assert_eq!(id, sender);
                closed = Some(code);
            }
        }
    }
    if invalid_utf8 {
        assert_eq!(closed, Some(1007), "invalid UTF-8 closes with 1007");
    } else {
        assert_eq!(closed, None, "a decodable or rejected message never closes");
        assert!(hub.contains(sender));
    }
    while let Some(event) = hub.poll_event() {
        if let Event::Message { id, topic, data } = event {
            assert_eq!(id, sender);
            assert!(
                whole,
                "a command's parts never become an application message"
            );
            check_message(&sent, &topic, &data);
        }
    }
    check_counts(&hub, sender);
}

/// A frame the hub sends is a JSON object with a string topic; error frames
/// carry a string code and message.
fn check_sent(text: &[u8]) {
    let v: Value = serde_json::from_slice(text).expect("sent frames are JSON");
    let topic = v["topic"]
        .as_str()
        .expect("sent frames have a string topic");
    if topic == "error" {
        assert!(v["data"]["code"].is_string(), "{v}");
        assert!(v["data"]["message"].is_string(), "{v}");
    }
}

/// An application message matches an independent parse of the frame.
fn check_message(sent: &[u8], topic: &str, data: &[u8]) {
    // The hub passes `data` through as raw JSON text, so numbers beyond f64
    // (grammatical JSON, e.g. `1e999`) reach the application unchanged; a
    // `Value` cannot hold them, so such messages are not compared.
    let whole: Value = match serde_json::from_slice(sent) {
        Ok(v) => v,
        Err(e) if e.to_string().starts_with("number out of range") => return,
        Err(e) => panic!("a delivered message is JSON: {e}"),
    };
    let object = whole.as_object().expect("a delivered message is an object");
    assert_eq!(object.get("topic"), Some(&Value::String(topic.to_owned())));
    assert!(!topic.is_empty());
    let data: Value = serde_json::from_slice(data).expect("message data is JSON");
    assert_eq!(&data, object.get("data").unwrap_or(&Value::Null));
}

/// Whatever was subscribed is consistent between the session and the topic.
fn check_counts(hub: &Hub<()>, sender: SessionId) {
    let Some(topics) = hub.topics_of(sender) else {
        return;
    };
    let topics: Vec<String> = topics.map(str::to_owned).collect();
    assert!(topics.len() <= hub.config().limits.max_topics_per_session);
    for t in &topics {
        assert_eq!(hub.subscriber_count(t), 1);
        assert!(t.len() <= hub.config().limits.max_topic_len);
    }
}
