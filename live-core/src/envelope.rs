//! The wire envelope `{"topic": string, "data": any JSON}`: parsing what clients
//! send and encoding what the hub sends.
//!
//! `data` is never parsed into a value: it stays the raw JSON slice of the
//! received frame, and an outgoing envelope is spliced around it once.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ErrorCode;

/// The envelope fields, borrowed from the frame. Unknown fields are ignored (mizu
/// clients send `type` and `ref`).
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    topic: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// A parsed envelope: its topic, and its data as a raw JSON slice of the payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub(crate) topic: String,
    /// `None` when the field was absent or `null`.
    pub(crate) data: Option<&'a str>,
}

/// A wire error found while parsing: the code and a message for the client.
pub(crate) type WireError = (ErrorCode, &'static str);

/// Parses one message. `payload` must already be known to be UTF-8.
pub(crate) fn parse(payload: &str) -> Result<Envelope<'_>, WireError> {
    // serde would also read a struct from a JSON array; the envelope is an object.
    if !is_object(payload) {
        return Err((ErrorCode::BadJson, "message is not a JSON object"));
    }
    let raw: RawEnvelope<'_> = serde_json::from_str(payload)
        .map_err(|_| (ErrorCode::BadJson, "message is not a JSON object"))?;
    let topic = raw
        .topic
        .ok_or((ErrorCode::BadTopic, "message has no topic"))?;
    let topic: String = serde_json::from_str(topic.get())
        .map_err(|_| (ErrorCode::BadTopic, "topic is not a string"))?;
    if topic.is_empty() {
        return Err((ErrorCode::BadTopic, "topic is empty"));
    }
    Ok(Envelope {
        topic,
        data: raw.data.map(RawValue::get),
    })
}

/// Parses a command's `data`, itself `{"topic": T, "data"?: any}`.
pub(crate) fn parse_command(data: Option<&str>) -> Result<Envelope<'_>, WireError> {
    let data = data.ok_or((ErrorCode::BadData, "command has no data"))?;
    if !is_object(data) {
        return Err((ErrorCode::BadData, "command data is not an object"));
    }
    let raw: RawEnvelope<'_> = serde_json::from_str(data)
        .map_err(|_| (ErrorCode::BadData, "command data is not an object"))?;
    let topic = raw
        .topic
        .ok_or((ErrorCode::BadTopic, "command has no target topic"))?;
    let topic: String = serde_json::from_str(topic.get())
        .map_err(|_| (ErrorCode::BadTopic, "target topic is not a string"))?;
    if topic.is_empty() {
        return Err((ErrorCode::BadTopic, "target topic is empty"));
    }
    Ok(Envelope {
        topic,
        data: raw.data.map(RawValue::get),
    })
}

/// Whether the JSON text starts like an object.
fn is_object(json: &str) -> bool {
    json.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
}

/// Checks that `data` is exactly one JSON value and returns it without
/// surrounding whitespace.
pub(crate) fn validate_json(data: &[u8]) -> Result<&[u8], String> {
    let raw: &RawValue = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    Ok(raw.get().as_bytes())
}

/// Encodes `{"topic":<topic>,"data":<data>}`; `data` must be valid JSON.
pub(crate) fn encode(topic: &str, data: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(topic.len() + data.len() + 22);
    buf.extend_from_slice(b"{\"topic\":");
    write_json_string(&mut buf, topic);
    buf.extend_from_slice(b",\"data\":");
    buf.extend_from_slice(data);
    buf.push(b'}');
    Bytes::from(buf)
}

/// Encodes `{"topic":<topic>,"data":<data>,"offset":<offset>}`, a publication
/// on a topic with history. Clients that do not know offsets ignore the field.
pub(crate) fn encode_with_offset(topic: &str, data: &[u8], offset: u64) -> Bytes {
    let mut buf = Vec::with_capacity(topic.len() + data.len() + 52);
    buf.extend_from_slice(b"{\"topic\":");
    write_json_string(&mut buf, topic);
    buf.extend_from_slice(b",\"data\":");
    buf.extend_from_slice(data);
    buf.extend_from_slice(b",\"offset\":");
    buf.extend_from_slice(offset.to_string().as_bytes());
    buf.push(b'}');
    Bytes::from(buf)
}

/// Encodes an error frame `{"topic":"error","data":{"code":..,"message":..}}`.
pub(crate) fn encode_error(code: ErrorCode, message: &str) -> Bytes {
    let mut data = Vec::with_capacity(message.len() + 40);
    data.extend_from_slice(b"{\"code\":");
    write_json_string(&mut data, code.as_str());
    data.extend_from_slice(b",\"message\":");
    write_json_string(&mut data, message);
    data.push(b'}');
    encode(ERROR_TOPIC, &data)
}

/// The topic of error frames; clients may not subscribe or publish on it.
pub(crate) const ERROR_TOPIC: &str = "error";

pub(crate) fn write_json_string(buf: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_topic_and_keeps_data_raw() {
        let env = parse(r#"{"topic":"chat","data": {"b": 1,  "a":[2]} ,"ref":"x"}"#).unwrap();
        assert_eq!(env.topic, "chat");
        assert_eq!(env.data, Some(r#"{"b": 1,  "a":[2]}"#));
    }

    #[test]
    fn rejections_have_the_right_codes() {
        assert_eq!(parse("{").unwrap_err().0, ErrorCode::BadJson);
        assert_eq!(parse("[1]").unwrap_err().0, ErrorCode::BadJson);
        assert_eq!(parse(r#"{"data":1}"#).unwrap_err().0, ErrorCode::BadTopic);
        assert_eq!(parse(r#"{"topic":3}"#).unwrap_err().0, ErrorCode::BadTopic);
        assert_eq!(
            parse(r#"{"topic":null}"#).unwrap_err().0,
            ErrorCode::BadTopic
        );
        assert_eq!(parse(r#"{"topic":""}"#).unwrap_err().0, ErrorCode::BadTopic);
        assert_eq!(parse_command(None).unwrap_err().0, ErrorCode::BadData);
        assert_eq!(parse_command(Some("[]")).unwrap_err().0, ErrorCode::BadData);
        assert_eq!(
            parse_command(Some("{}")).unwrap_err().0,
            ErrorCode::BadTopic
        );
    }

    #[test]
    fn encoding_escapes_the_topic_and_splices_data() {
        let b = encode("a\"b", br#"{"x":1}"#);
        assert_eq!(&b[..], br#"{"topic":"a\"b","data":{"x":1}}"#);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["topic"], "a\"b");
    }

    #[test]
    fn error_frames_are_valid_json() {
        let b = encode_error(ErrorCode::Forbidden, "no \"way\"");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["topic"], "error");
        assert_eq!(v["data"]["code"], "forbidden");
        assert_eq!(v["data"]["message"], "no \"way\"");
    }

    #[test]
    fn validate_json_trims_and_rejects() {
        assert_eq!(validate_json(b"  [1, 2] ").unwrap(), b"[1, 2]");
        assert!(validate_json(b"1 2").is_err());
        assert!(validate_json(b"").is_err());
    }
}
