//! The optional fields of a client's `subscribe` data and of the `presence`
//! query, parsed apart from the envelope so a plain mizu subscribe (which
//! names only `topic`) costs nothing more:
//! `{"topic":T,"since":{"epoch":E,"offset":N},"history":true,"presence":true}`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ErrorCode;
use crate::envelope::WireError;
use crate::history::Since;

/// What a subscribe asks beyond the subscription itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SubscribeOptions {
    /// Replay what was published after this position.
    pub(crate) since: Option<Since>,
    /// Reply with the topic's position even without `since`.
    pub(crate) history: bool,
    /// Receive `join` and `leave` for the topic.
    pub(crate) presence: bool,
}

impl SubscribeOptions {
    /// Whether the subscribe earns a `subscribed` reply (a plain mizu
    /// subscribe gets none).
    pub(crate) fn wants_reply(&self) -> bool {
        self.since.is_some() || self.history
    }

    /// Whether it asks nothing beyond the subscription.
    pub(crate) fn is_plain(&self) -> bool {
        !self.wants_reply() && !self.presence
    }
}

#[derive(Deserialize)]
struct RawOptions<'a> {
    #[serde(borrow, default)]
    since: Option<&'a RawValue>,
    #[serde(borrow, default)]
    history: Option<&'a RawValue>,
    #[serde(borrow, default)]
    presence: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawSince {
    epoch: String,
    offset: u64,
}

const BAD_SINCE: &str = "since must be {\"epoch\": string, \"offset\": non-negative integer}";

/// Parses the options of a subscribe's `data` (already known to be an
/// object with a topic). `null` counts as absent.
pub(crate) fn parse(data: &str) -> Result<SubscribeOptions, WireError> {
    // Cheap pre-check: a plain subscribe names none of the fields.
    if !(data.contains("since") || data.contains("history") || data.contains("presence")) {
        return Ok(SubscribeOptions::default());
    }
    let raw: RawOptions<'_> = serde_json::from_str(data)
        .map_err(|_| (ErrorCode::BadData, "command data is not an object"))?;
    let since = match raw.since.map(RawValue::get) {
        None | Some("null") => None,
        Some(text) => {
            let s: RawSince =
                serde_json::from_str(text).map_err(|_| (ErrorCode::BadData, BAD_SINCE))?;
            Some(Since {
                epoch: s.epoch,
                offset: s.offset,
            })
        }
    };
    Ok(SubscribeOptions {
        since,
        history: flag(raw.history, "history must be a boolean")?,
        presence: flag(raw.presence, "presence must be a boolean")?,
    })
}

fn flag(value: Option<&RawValue>, message: &'static str) -> Result<bool, WireError> {
    match value.map(RawValue::get) {
        None | Some("null") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err((ErrorCode::BadData, message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_full_subscribes() {
        assert_eq!(
            parse(r#"{"topic":"t"}"#).unwrap(),
            SubscribeOptions::default()
        );
        let o = parse(r#"{"topic":"t","since":{"epoch":"e","offset":7},"presence":true}"#).unwrap();
        assert_eq!(
            o.since,
            Some(Since {
                epoch: "e".into(),
                offset: 7
            })
        );
        assert!(o.presence && !o.history && o.wants_reply());
        let o = parse(r#"{"topic":"t","history":true,"since":null}"#).unwrap();
        assert!(o.history && o.since.is_none() && o.wants_reply());
    }

    #[test]
    fn malformed_fields_are_bad_data() {
        for bad in [
            r#"{"topic":"t","since":5}"#,
            r#"{"topic":"t","since":{"epoch":1,"offset":2}}"#,
            r#"{"topic":"t","since":{"epoch":"e","offset":-1}}"#,
            r#"{"topic":"t","since":{"epoch":"e","offset":1.5}}"#,
            r#"{"topic":"t","since":{"epoch":"e"}}"#,
            r#"{"topic":"t","history":"yes"}"#,
            r#"{"topic":"t","presence":1}"#,
        ] {
            assert_eq!(parse(bad).unwrap_err().0, ErrorCode::BadData, "{bad}");
        }
    }
}
