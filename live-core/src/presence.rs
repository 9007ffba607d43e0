//! Presence: which sessions asked to hear who joins and leaves a topic, and
//! the frames that tell them.
//!
//! The members of a topic are its subscribers, so presence keeps no second
//! copy of them: only the watchers (sessions that subscribed with
//! `"presence":true`) are recorded, per topic. A topic nobody watches costs
//! one failed map lookup per subscribe and unsubscribe.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;

#[cfg(test)]
use crate::SessionId;
use crate::envelope::{encode, write_json_string};

/// The topic of presence queries and their answers.
pub(crate) const PRESENCE_TOPIC: &str = "presence";

/// Topic -> slab keys of the sessions watching it. A topic with no watcher is
/// removed.
#[derive(Default)]
pub(crate) struct Watchers {
    by_topic: BTreeMap<Arc<str>, BTreeSet<usize>>,
    count: usize,
}

impl Watchers {
    /// Records that `key` watches `topic`.
    pub(crate) fn add(&mut self, topic: Arc<str>, key: usize) {
        if self.by_topic.entry(topic).or_default().insert(key) {
            self.count += 1;
        }
    }

    /// Forgets that `key` watches `topic`.
    pub(crate) fn remove(&mut self, topic: &str, key: usize) {
        if let Some(set) = self.by_topic.get_mut(topic) {
            if set.remove(&key) {
                self.count -= 1;
            }
            if set.is_empty() {
                self.by_topic.remove(topic);
            }
        }
    }

    /// The watchers of `topic` other than `except`, in key order.
    pub(crate) fn others(&self, topic: &str, except: usize) -> Vec<usize> {
        self.by_topic
            .get(topic)
            .map(|set| set.iter().copied().filter(|&k| k != except).collect())
            .unwrap_or_default()
    }

    /// Whether nobody watches anything (the fast path of every subscribe).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// (session, topic) watch pairs held.
    pub(crate) fn count(&self) -> usize {
        self.count
    }
}

/// One member of a topic as other nodes report it: its session id and
/// presence user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PresenceMember {
    /// The session id (16 hex digits for this hub's sessions).
    pub session: String,
    /// What the presence user shows (`None`: `null`).
    pub user: Option<String>,
}

/// One member as the wire shows it: `{"session":S,"user":U}`.
fn write_member(buf: &mut Vec<u8>, session: &str, user: Option<&str>) {
    buf.extend_from_slice(b"{\"session\":");
    write_json_string(buf, session);
    buf.extend_from_slice(b",\"user\":");
    match user {
        Some(u) => write_json_string(buf, u),
        None => buf.extend_from_slice(b"null"),
    }
    buf.push(b'}');
}

/// `{"topic":"join"|"leave","data":{"topic":T,"session":S,"user":U}}`.
pub(crate) fn encode_change(kind: &str, topic: &str, session: &str, user: Option<&str>) -> Bytes {
    let mut data = Vec::with_capacity(topic.len() + 64);
    data.extend_from_slice(b"{\"topic\":");
    write_json_string(&mut data, topic);
    data.extend_from_slice(b",\"session\":");
    write_json_string(&mut data, session);
    data.extend_from_slice(b",\"user\":");
    match user {
        Some(u) => write_json_string(&mut data, u),
        None => data.extend_from_slice(b"null"),
    }
    data.push(b'}');
    encode(kind, &data)
}

/// `{"topic":"presence","data":{"topic":T,"clients":[{"session":S,"user":U},...]}}`.
pub(crate) fn encode_list<'a>(
    topic: &str,
    members: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Bytes {
    let mut data = Vec::with_capacity(topic.len() + 64);
    data.extend_from_slice(b"{\"topic\":");
    write_json_string(&mut data, topic);
    data.extend_from_slice(b",\"clients\":[");
    for (i, (session, user)) in members.enumerate() {
        if i > 0 {
            data.push(b',');
        }
        write_member(&mut data, session, user);
    }
    data.extend_from_slice(b"]}");
    encode(PRESENCE_TOPIC, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_the_documented_json() {
        let id = SessionId::from_u64(0xab).to_string();
        let s = id.as_str();
        let join = encode_change("join", "room", s, Some("ann"));
        assert_eq!(
            &join[..],
            br#"{"topic":"join","data":{"topic":"room","session":"00000000000000ab","user":"ann"}}"#
        );
        let list = encode_list("room", [(s, None), (s, Some("b\""))].into_iter());
        let v: serde_json::Value = serde_json::from_slice(&list).unwrap();
        assert_eq!(v["data"]["clients"][0]["user"], serde_json::Value::Null);
        assert_eq!(v["data"]["clients"][1]["user"], "b\"");
        assert_eq!(
            &encode_list("r", std::iter::empty())[..],
            br#"{"topic":"presence","data":{"topic":"r","clients":[]}}"#
        );
    }

    #[test]
    fn watchers_are_counted_once() {
        let mut w = Watchers::default();
        w.add(Arc::from("t"), 1);
        w.add(Arc::from("t"), 1);
        w.add(Arc::from("t"), 2);
        assert_eq!(w.count(), 2);
        assert_eq!(w.others("t", 1), vec![2]);
        w.remove("t", 1);
        w.remove("t", 2);
        assert!(w.is_empty());
        assert_eq!(w.count(), 0);
    }
}
