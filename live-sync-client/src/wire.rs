//! The client's side of the live envelope `{"topic": string, "data": any}`:
//! encoding commands and messages, parsing what the server sends.

use serde::Deserialize;
use serde_json::{Value, json};

/// The built-in command topics (see DESIGN "live").
pub(crate) const SUBSCRIBE: &str = "subscribe";
pub(crate) const UNSUBSCRIBE: &str = "unsubscribe";
pub(crate) const PUBLISH: &str = "publish";
/// The topic of error frames.
pub(crate) const ERROR: &str = "error";
/// The topic of the reply to a subscribe that asks for a position.
pub(crate) const SUBSCRIBED: &str = "subscribed";

/// `{"topic": topic, "data": data}`.
pub(crate) fn envelope(topic: &str, data: &Value) -> String {
    json!({"topic": topic, "data": data}).to_string()
}

/// `{"topic":"subscribe","data":{"topic": topic}}` and the like.
pub(crate) fn command(command: &str, topic: &str) -> String {
    json!({"topic": command, "data": {"topic": topic}}).to_string()
}

/// `{"topic":"publish","data":{"topic": topic, "data": data}}`.
pub(crate) fn publish(topic: &str, data: &Value) -> String {
    json!({"topic": PUBLISH, "data": {"topic": topic, "data": data}}).to_string()
}

/// A frame from the server.
#[derive(Debug, Deserialize)]
pub(crate) struct Incoming {
    pub(crate) topic: String,
    #[serde(default)]
    pub(crate) data: Value,
    /// A publication's offset on a topic with history. Read leniently: a
    /// field of another shape is no offset, never a dropped frame.
    #[serde(default)]
    offset: Value,
}

impl Incoming {
    /// The frame's offset, when it carries a valid one.
    pub(crate) fn offset(&self) -> Option<u64> {
        self.offset.as_u64()
    }
}

/// Parses a frame; `None` for anything that is not an envelope (a server bug
/// the client survives by ignoring the frame).
pub(crate) fn parse(text: &str) -> Option<Incoming> {
    serde_json::from_str(text).ok()
}

/// The topic of a `forbidden` error frame refusing a subscribe (its message
/// names it: `not allowed to subscribe to <topic>`).
pub(crate) fn refused_subscribe<'a>(code: &str, message: &'a str) -> Option<&'a str> {
    if code != "forbidden" {
        return None;
    }
    message.strip_prefix("not allowed to subscribe to ")
}

/// The `(code, message)` of an error frame's data.
pub(crate) fn error_fields(data: &Value) -> (String, String) {
    let field = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (field("code"), field("message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_seed_shape() {
        let v: Value = serde_json::from_str(&publish("room", &json!({"n": 1}))).unwrap();
        assert_eq!(
            v,
            json!({"topic":"publish","data":{"topic":"room","data":{"n":1}}})
        );
        let v: Value = serde_json::from_str(&command(SUBSCRIBE, "room")).unwrap();
        assert_eq!(v, json!({"topic":"subscribe","data":{"topic":"room"}}));
        let v: Value = serde_json::from_str(&envelope("chat", &json!("hi"))).unwrap();
        assert_eq!(v, json!({"topic":"chat","data":"hi"}));
    }

    #[test]
    fn parse_accepts_envelopes_and_rejects_the_rest() {
        let m = parse(r#"{"topic":"t","data":[1]}"#).unwrap();
        assert_eq!((m.topic.as_str(), m.data), ("t", json!([1])));
        assert_eq!(parse(r#"{"topic":"t"}"#).unwrap().data, Value::Null);
        assert!(parse("[1]").is_none());
        assert!(parse(r#"{"data":1}"#).is_none());
        assert!(parse("not json").is_none());
        assert_eq!(
            parse(r#"{"topic":"t","offset":4}"#).unwrap().offset(),
            Some(4)
        );
        assert_eq!(parse(r#"{"topic":"t"}"#).unwrap().offset(), None);
        for odd in ["-1", "1.5", "\"7\"", "null", "{}"] {
            let m = parse(&format!(r#"{{"topic":"t","data":1,"offset":{odd}}}"#)).unwrap();
            assert_eq!((m.offset(), m.data), (None, json!(1)), "{odd}");
        }
        assert_eq!(
            refused_subscribe("forbidden", "not allowed to subscribe to a b"),
            Some("a b")
        );
        assert_eq!(
            refused_subscribe("forbidden", "not allowed to publish on a"),
            None
        );
        assert_eq!(
            refused_subscribe("bad_data", "not allowed to subscribe to a"),
            None
        );
        let (code, msg) = error_fields(&json!({"code":"forbidden","message":"no"}));
        assert_eq!((code.as_str(), msg.as_str()), ("forbidden", "no"));
    }
}
