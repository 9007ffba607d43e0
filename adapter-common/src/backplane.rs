//! The broker backplane as the hub actor sees it: a runtime-neutral pair of
//! channels. The hub stays pure: it reports which topics gained their first
//! or lost their last local subscriber and what local clients published
//! (`live_core::Event::TopicActive`, `TopicInactive`, `Published`, with
//! `HubConfig::backplane_events`); the actor turns those into
//! [`BackplaneCommand`]s for a broker link (Redis, NATS: in the runtime
//! adapters), and the link hands messages from other nodes back with
//! [`crate::ServerHandle::deliver_remote`], which fans them out locally only.
//!
//! Rules kept here:
//! - a node asks the broker for a topic only while it has local subscribers,
//!   and the changes of one actor turn go out as one batched command;
//! - `sync:<scope>` topics never cross the broker: pokes are sent by each
//!   node after it has reloaded the scope (see `shared_store.rs`), so a poke
//!   never reaches a client before its node can serve the change;
//! - a local publish is delivered locally by the hub and sent to the broker
//!   once; the link drops the broker's copy of its own messages, so nothing
//!   is delivered twice.

use std::collections::BTreeMap;

use bytes::Bytes;

/// What the actor asks of a broker link.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackplaneCommand {
    /// Start receiving `subscribe`, stop receiving `unsubscribe` (the net
    /// changes of one actor turn; the two never share a topic).
    Interest {
        /// Topics that gained their first local subscriber.
        subscribe: Vec<String>,
        /// Topics that lost their last local subscriber.
        unsubscribe: Vec<String>,
    },
    /// Send a local client's publish to the other nodes.
    Publish {
        /// The topic.
        topic: String,
        /// The raw JSON data.
        data: Bytes,
    },
}

/// Which broker a server's backplane uses (`--broker`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerUrl {
    /// Redis pub/sub, `redis://HOST:PORT`.
    Redis(String),
    /// NATS core pub/sub, `nats://HOST:PORT`.
    Nats(String),
}

impl std::str::FromStr for BrokerUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("redis://") {
            Ok(BrokerUrl::Redis(s.to_owned()))
        } else if s.starts_with("nats://") {
            Ok(BrokerUrl::Nats(s.to_owned()))
        } else {
            Err(format!(
                "{s:?}: expected redis://HOST:PORT or nats://HOST:PORT"
            ))
        }
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerUrl::Redis(u) | BrokerUrl::Nats(u) => f.write_str(u),
        }
    }
}

/// What goes over the broker for one publish: the sending node's name, a
/// newline, the raw JSON data. Receivers drop their own messages by name.
pub fn encode_message(node: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(node.len() + 1 + data.len());
    out.extend_from_slice(node.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

/// The sending node and the data of a broker message, or `None` when it is
/// not one of ours.
pub fn decode_message(payload: &[u8]) -> Option<(&str, &[u8])> {
    let at = payload.iter().position(|&b| b == b'\n')?;
    let node = std::str::from_utf8(&payload[..at]).ok()?;
    Some((node, &payload[at + 1..]))
}

/// True for topics that stay on their node (sync pokes).
pub fn is_local_only(topic: &str) -> bool {
    live_core::sync_scope(topic).is_some()
}

/// Interest changes gathered during one actor turn. A topic subscribed and
/// unsubscribed in the same turn cancels out.
#[derive(Debug, Default)]
pub(crate) struct PendingInterest {
    /// topic -> wanted (true: subscribe, false: unsubscribe).
    changes: BTreeMap<String, bool>,
    /// Net effect relative to what the broker was last told.
    told: BTreeMap<String, ()>,
}

impl PendingInterest {
    pub(crate) fn active(&mut self, topic: String) {
        if !is_local_only(&topic) {
            self.changes.insert(topic, true);
        }
    }

    pub(crate) fn inactive(&mut self, topic: String) {
        if !is_local_only(&topic) {
            self.changes.insert(topic, false);
        }
    }

    /// The batched command for this turn, if anything changed.
    pub(crate) fn take(&mut self) -> Option<BackplaneCommand> {
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        for (topic, wanted) in std::mem::take(&mut self.changes) {
            let known = self.told.contains_key(&topic);
            if wanted && !known {
                self.told.insert(topic.clone(), ());
                subscribe.push(topic);
            } else if !wanted && known {
                self.told.remove(&topic);
                unsubscribe.push(topic);
            }
        }
        (!subscribe.is_empty() || !unsubscribe.is_empty()).then_some(BackplaneCommand::Interest {
            subscribe,
            unsubscribe,
        })
    }
}

/// The sending side of a backplane, held by the actor.
pub(crate) struct Backplane {
    pub(crate) commands: async_channel::Sender<BackplaneCommand>,
    pub(crate) interest: PendingInterest,
}

impl Backplane {
    pub(crate) fn send(&self, command: BackplaneCommand) {
        if self.commands.try_send(command).is_err() {
            tracing::warn!("broker link not keeping up or gone; a backplane command was dropped");
        }
    }

    /// Sends this turn's interest changes, batched.
    pub(crate) fn flush(&mut self) {
        if let Some(command) = self.interest.take() {
            self.send(command);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_and_messages_round_trip() {
        assert_eq!(
            "redis://127.0.0.1:6379".parse(),
            Ok(BrokerUrl::Redis("redis://127.0.0.1:6379".into()))
        );
        assert!(matches!("nats://h:4222".parse(), Ok(BrokerUrl::Nats(_))));
        assert!("kafka://h".parse::<BrokerUrl>().is_err());
        let m = encode_message("node-1", br#"{"a":"x\ny"}"#);
        assert_eq!(
            decode_message(&m),
            Some(("node-1", &br#"{"a":"x\ny"}"#[..]))
        );
        assert_eq!(decode_message(b"no newline"), None);
        assert!(is_local_only("sync:doc"));
        assert!(!is_local_only("chat"));
    }

    #[test]
    fn one_turn_batches_and_cancels_interest_changes() {
        let mut p = PendingInterest::default();
        p.active("a".into());
        p.active("b".into());
        p.active("sync:doc".into());
        p.inactive("b".into());
        assert_eq!(
            p.take(),
            Some(BackplaneCommand::Interest {
                subscribe: vec!["a".into()],
                unsubscribe: vec![],
            })
        );
        assert_eq!(p.take(), None);
        p.inactive("a".into());
        p.active("c".into());
        assert_eq!(
            p.take(),
            Some(BackplaneCommand::Interest {
                subscribe: vec!["c".into()],
                unsubscribe: vec!["a".into()],
            })
        );
        // Gone and back within one turn: the broker hears nothing.
        p.inactive("c".into());
        p.active("c".into());
        assert_eq!(p.take(), None);
    }
}
