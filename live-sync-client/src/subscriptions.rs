//! The set of topics the application wants, independent of any connection:
//! it survives disconnects and is replayed on every new connection.
//!
//! With resume on (the default), it also keeps each topic's [`Position`]:
//! every subscribe asks for it (`"history":true`) and, once one is known,
//! names it (`since`), so a topic with history resumes where the client left
//! it; the `subscribed` replies and the offsets of the deliveries move it,
//! and a delivery at or below it is a duplicate. Pure bookkeeping: the
//! connection task sends the frames and emits the events.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::wire;
use super::{LiveEvent, Position};

/// What the client knows of one wanted topic.
#[derive(Debug, Default, Clone)]
struct Topic {
    /// The last position read (only for a topic with history).
    position: Option<Position>,
    /// The `since` of the latest subscribe sent on this connection.
    asked: Option<Position>,
}

/// Wanted topics, in a stable order so a resubscribe is reproducible.
#[derive(Debug, Clone)]
pub(crate) struct Subscriptions {
    resume: bool,
    topics: BTreeMap<String, Topic>,
    /// `subscribed` replies still owed on this connection, per topic (also
    /// for topics dropped since). Replies come in the order of the
    /// subscribes, so only the last one owed answers the subscription in
    /// force.
    awaiting: BTreeMap<String, u32>,
}

impl Default for Subscriptions {
    fn default() -> Self {
        Subscriptions::new(true)
    }
}

/// How a `subscribed` frame was taken.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    /// No subscribe of this client asked for it: the application's own.
    NotOurs,
    /// The answer to a subscribe undone or redone since: dropped.
    Stale,
    /// The answer to the subscription in force: these events.
    Events(Vec<LiveEvent>),
}

impl Subscriptions {
    /// An empty set; `resume` turns positions and `history`/`since` on.
    pub(crate) fn new(resume: bool) -> Self {
        Subscriptions {
            resume,
            topics: BTreeMap::new(),
            awaiting: BTreeMap::new(),
        }
    }

    /// Whether positions are kept and resumed.
    pub(crate) fn resume(&self) -> bool {
        self.resume
    }

    /// Adds `topic`, starting from `since` when given (and resumable); true
    /// if it was new (then its subscribe is to be sent). A topic already
    /// wanted keeps its position.
    pub(crate) fn add(&mut self, topic: String, since: Option<Position>) -> bool {
        if self.topics.contains_key(&topic) {
            return false;
        }
        let position = since.filter(|p| self.resume && p.is_resumable());
        self.topics.insert(
            topic,
            Topic {
                position,
                asked: None,
            },
        );
        true
    }

    /// Removes `topic` and forgets its position; the unsubscribe frame to
    /// send if it was there.
    pub(crate) fn remove(&mut self, topic: &str) -> Option<String> {
        self.topics
            .remove(topic)
            .map(|_| wire::command(wire::UNSUBSCRIBE, topic))
    }

    /// The subscribe frame of a wanted topic, to be sent on the current
    /// connection now (its reply is then owed).
    pub(crate) fn subscribe_frame(&mut self, topic: &str) -> Option<String> {
        let state = self.topics.get_mut(topic)?;
        if !self.resume {
            return Some(wire::command(wire::SUBSCRIBE, topic));
        }
        let mut data = json!({"topic": topic, "history": true});
        state.asked = state.position.clone();
        if let Some(since) = &state.asked {
            data["since"] = since.to_json();
        }
        *self.awaiting.entry(topic.to_owned()).or_default() += 1;
        Some(wire::envelope(wire::SUBSCRIBE, &data))
    }

    /// A new connection: nothing is owed on it yet. Returns one subscribe
    /// frame per wanted topic, to send on it first.
    pub(crate) fn replay(&mut self) -> Vec<String> {
        self.awaiting.clear();
        let topics: Vec<String> = self.topics.keys().cloned().collect();
        topics
            .iter()
            .filter_map(|t| self.subscribe_frame(t))
            .collect()
    }

    /// The position of `topic`, if it is wanted and one is known.
    pub(crate) fn position(&self, topic: &str) -> Option<Position> {
        self.topics.get(topic)?.position.clone()
    }

    /// Takes the data of a `subscribed` frame.
    pub(crate) fn on_subscribed(&mut self, data: &Value) -> Reply {
        let Some(topic) = data.get("topic").and_then(Value::as_str) else {
            return Reply::NotOurs;
        };
        let owed = match self.awaiting.get_mut(topic) {
            None => return Reply::NotOurs,
            Some(n) => {
                *n -= 1;
                *n + 1
            }
        };
        if owed == 1 {
            self.awaiting.remove(topic);
        }
        if owed > 1 {
            return Reply::Stale;
        }
        let Some(state) = self.topics.get_mut(topic) else {
            return Reply::Stale;
        };
        let epoch = data.get("epoch").and_then(Value::as_str).unwrap_or("");
        let offset = data.get("offset").and_then(Value::as_u64).unwrap_or(0);
        let recovered = data.get("recovered").and_then(Value::as_bool) == Some(true);
        let asked = state.asked.take();
        let reply = Position::new(epoch, offset);
        if epoch.is_empty() {
            // No history on this topic: nothing to resume.
            state.position = None;
        } else if recovered && asked.as_ref().is_some_and(|a| a.epoch == epoch) {
            // What was missed follows: go on from the position named, or
            // from further on if an older subscription's deliveries got there.
            if state.position.as_ref().is_none_or(|p| p.epoch != epoch) {
                state.position = asked.clone();
            }
        } else {
            state.position = Some(reply.clone());
        }
        let mut events = vec![LiveEvent::Subscribed {
            topic: topic.to_owned(),
            position: reply.clone(),
            recovered,
        }];
        if let Some(since) = asked
            && !recovered
        {
            events.push(LiveEvent::RecoveryFailed {
                topic: topic.to_owned(),
                since,
                position: reply,
            });
        }
        Reply::Events(events)
    }

    /// A subscribe of `topic` was refused (a `forbidden` error frame naming
    /// it): it gets no reply, so one fewer is owed.
    pub(crate) fn on_refused(&mut self, topic: &str) {
        if let Some(n) = self.awaiting.get_mut(topic) {
            *n -= 1;
            if *n == 0 {
                self.awaiting.remove(topic);
            }
        }
    }

    /// A publication on `topic` carrying `offset`: false if it was already
    /// delivered (at or below the topic's position), else moves the
    /// position on and returns true.
    pub(crate) fn on_delivery(&mut self, topic: &str, offset: Option<u64>) -> bool {
        if !self.resume {
            return true;
        }
        let (Some(offset), Some(state)) = (offset, self.topics.get_mut(topic)) else {
            return true;
        };
        match &mut state.position {
            Some(p) if offset <= p.offset => false,
            Some(p) => {
                p.offset = offset;
                true
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(topic: &str, epoch: &str, offset: u64, recovered: bool) -> Value {
        json!({"topic": topic, "epoch": epoch, "offset": offset, "recovered": recovered})
    }

    fn parsed(frame: &str) -> Value {
        serde_json::from_str(frame).unwrap()
    }

    #[test]
    fn only_changes_produce_frames_and_replay_lists_the_set() {
        let mut s = Subscriptions::new(false);
        assert!(s.add("b".into(), None));
        assert!(s.add("a".into(), None));
        assert!(!s.add("a".into(), None));
        assert!(s.remove("c").is_none());
        assert_eq!(
            s.replay(),
            vec![
                wire::command(wire::SUBSCRIBE, "a"),
                wire::command(wire::SUBSCRIBE, "b")
            ]
        );
        assert_eq!(s.remove("a"), Some(wire::command(wire::UNSUBSCRIBE, "a")));
        assert_eq!(s.replay().len(), 1);
    }

    #[test]
    fn without_resume_nothing_is_tracked_or_dropped() {
        let mut s = Subscriptions::new(false);
        s.add("t".into(), Some(Position::new("E", 3)));
        assert_eq!(
            parsed(&s.replay()[0]),
            json!({"topic":"subscribe","data":{"topic":"t"}})
        );
        assert_eq!(s.on_subscribed(&reply("t", "E", 3, false)), Reply::NotOurs);
        assert!(s.on_delivery("t", Some(1)));
        assert!(s.on_delivery("t", Some(1)));
        assert_eq!(s.position("t"), None);
    }

    #[test]
    fn the_position_follows_replies_and_deliveries_and_resumes_with_since() {
        let mut s = Subscriptions::new(true);
        s.add("t".into(), None);
        assert_eq!(
            parsed(&s.replay()[0]),
            json!({"topic":"subscribe","data":{"topic":"t","history":true}})
        );
        let Reply::Events(ev) = s.on_subscribed(&reply("t", "E", 5, false)) else {
            panic!("ours")
        };
        assert_eq!(
            ev,
            vec![LiveEvent::Subscribed {
                topic: "t".into(),
                position: Position::new("E", 5),
                recovered: false
            }]
        );
        assert!(s.on_delivery("t", Some(6)));
        assert!(!s.on_delivery("t", Some(6)), "a duplicate");
        assert!(!s.on_delivery("t", Some(2)), "older");
        assert!(s.on_delivery("t", None), "no offset: delivered");
        assert!(s.on_delivery("other", Some(1)), "not subscribed: delivered");
        assert_eq!(s.position("t"), Some(Position::new("E", 6)));
        // A new connection names the position; a recovery keeps it until the
        // replay arrives.
        assert_eq!(
            parsed(&s.replay()[0]),
            json!({"topic":"subscribe","data":{"topic":"t","history":true,"since":{"epoch":"E","offset":6}}})
        );
        let Reply::Events(ev) = s.on_subscribed(&reply("t", "E", 9, true)) else {
            panic!("ours")
        };
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(s.position("t"), Some(Position::new("E", 6)));
        assert!(s.on_delivery("t", Some(7)));
        // A lost position: RecoveryFailed, and the reply's position from then on.
        s.replay();
        let Reply::Events(ev) = s.on_subscribed(&reply("t", "F", 2, false)) else {
            panic!("ours")
        };
        assert_eq!(
            ev[1],
            LiveEvent::RecoveryFailed {
                topic: "t".into(),
                since: Position::new("E", 7),
                position: Position::new("F", 2)
            }
        );
        assert_eq!(s.position("t"), Some(Position::new("F", 2)));
    }

    #[test]
    fn a_topic_without_history_never_sends_since() {
        let mut s = Subscriptions::new(true);
        s.add("t".into(), None);
        s.replay();
        let Reply::Events(ev) = s.on_subscribed(&reply("t", "", 0, false)) else {
            panic!("ours")
        };
        assert_eq!(ev.len(), 1);
        assert_eq!(s.position("t"), None);
        assert!(parsed(&s.replay()[0])["data"].get("since").is_none());
        // A saved position with an empty epoch is no position either.
        s.add("u".into(), Some(Position::new("", 4)));
        assert_eq!(s.position("u"), None);
    }

    #[test]
    fn only_the_latest_subscribes_reply_counts() {
        let mut s = Subscriptions::new(true);
        s.replay();
        s.add("t".into(), None);
        s.subscribe_frame("t");
        s.remove("t");
        s.add("t".into(), None);
        s.subscribe_frame("t");
        assert_eq!(s.on_subscribed(&reply("t", "E", 3, false)), Reply::Stale);
        assert_eq!(s.position("t"), None);
        assert!(matches!(
            s.on_subscribed(&reply("t", "E", 4, false)),
            Reply::Events(_)
        ));
        assert_eq!(s.position("t"), Some(Position::new("E", 4)));
        // Dropped before its reply came; never asked; malformed.
        s.add("g".into(), None);
        s.subscribe_frame("g");
        s.remove("g");
        assert_eq!(s.on_subscribed(&reply("g", "G", 1, false)), Reply::Stale);
        assert_eq!(s.on_subscribed(&reply("n", "N", 1, false)), Reply::NotOurs);
        assert_eq!(s.on_subscribed(&json!("garbage")), Reply::NotOurs);
        assert_eq!(s.on_subscribed(&json!({"topic": 1})), Reply::NotOurs);
        // A refused subscribe owes no reply: the next one is the latest.
        s.subscribe_frame("t");
        s.subscribe_frame("t");
        s.on_refused("t");
        s.on_refused("never");
        assert!(matches!(
            s.on_subscribed(&reply("t", "E", 8, false)),
            Reply::Events(_)
        ));
        assert_eq!(s.position("t"), Some(Position::new("E", 8)));
        // A reply with odd fields never panics and counts as no history.
        s.subscribe_frame("t");
        assert!(matches!(
            s.on_subscribed(&json!({"topic":"t","epoch":5,"offset":-1})),
            Reply::Events(_)
        ));
        assert_eq!(s.position("t"), None);
    }
}
