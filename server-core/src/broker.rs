//! The broker backplane as the server core sees it.
//!
//! The hub reports which topics gained their first or lost their last local
//! subscriber and what local clients published (with
//! `HubConfig::backplane_events`); the core turns those into
//! [`BackplaneCommand`]s for a broker link, and the link hands other nodes'
//! publishes back as input, which the core fans out locally only.
//!
//! Rules kept here:
//! - a node asks the broker for a topic only while it has local subscribers,
//!   and the changes of one step go out as one batched command;
//! - `sync:<scope>` topics never cross the broker: pokes are sent by each
//!   node after it has the change (see the core's reload policy), so a poke
//!   never reaches a client before its node can serve the change;
//! - a local publish is delivered locally by the hub and sent to the broker
//!   once; the link drops the broker's copy of its own messages;
//! - on a topic whose history the broker keeps (`HubConfig::broker_history`)
//!   a publish is not delivered locally: it goes out as
//!   [`BackplaneCommand::Append`], the broker numbers it and every node
//!   interested in the topic, this one included, delivers it numbered; when
//!   the broker cannot take it, it is delivered on this node only, without
//!   an offset;
//! - a subscribe that names a position is answered from a
//!   [`BackplaneCommand::ReadHistory`] sent after the step's interest
//!   change, so the link subscribes to the topic before it reads;
//! - presence spans the nodes (`HubConfig::broker_presence`): each local
//!   join and leave goes out as [`BackplaneCommand::Presence`] (the link
//!   records the member, keeps it fresh while it stays, and tells the other
//!   nodes), and a `presence` query reads the broker's members
//!   ([`BackplaneCommand::ReadPresence`]).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use live_core::{HistoryLimits, PresenceMember};

/// What the core asks of a broker link.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackplaneCommand {
    /// Start receiving `subscribe`, stop receiving `unsubscribe` (the net
    /// changes of one step; the two never share a topic).
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
    /// Number a publication on a topic whose history the broker keeps, keep
    /// it within `limits`, and deliver it to every node interested in the
    /// topic, this one included (`ServerHandle::deliver_numbered`). When it
    /// cannot, hand it back (`ServerHandle::append_failed`).
    Append {
        /// The topic.
        topic: String,
        /// The raw JSON data.
        data: Bytes,
        /// What the topic's history keeps.
        limits: HistoryLimits,
    },
    /// Read the topic's epoch, latest offset and, when `after` is given,
    /// the publications after it; answer with `ServerHandle::history_read`
    /// (`None` when the broker cannot be read). Sent after the interest
    /// change that subscribes to the topic.
    ReadHistory {
        /// Names the answer.
        request: u64,
        /// The topic.
        topic: String,
        /// Read the publications after this offset; `None`: the position only.
        after: Option<u64>,
        /// What the topic's history keeps.
        limits: HistoryLimits,
    },
    /// A local session joined (`joined`) or left `topic`: record it in the
    /// broker (refreshed while it stays; a node that dies leaves entries
    /// that expire) and tell the other nodes
    /// (`ServerHandle::deliver_presence`).
    Presence {
        /// The topic.
        topic: String,
        /// The session and its presence user.
        member: PresenceMember,
        /// Joined or left.
        joined: bool,
    },
    /// Read the members of `topic` the broker holds (every node's) and
    /// answer with `ServerHandle::presence_read` (`None`: it could not be
    /// read).
    ReadPresence {
        /// Names the answer.
        request: u64,
        /// The topic.
        topic: String,
    },
}

/// True for topics that stay on their node (sync pokes).
pub fn is_local_only(topic: &str) -> bool {
    live_core::sync_scope(topic).is_some()
}

/// Interest changes gathered during one step. A topic subscribed and
/// unsubscribed in the same step cancels out.
#[derive(Debug, Default)]
pub(crate) struct PendingInterest {
    /// topic -> wanted (true: subscribe, false: unsubscribe).
    changes: BTreeMap<String, bool>,
    /// What the broker was last told it should deliver.
    told: BTreeSet<String>,
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

    /// Forget what the broker was told: the link lost its connection, so the
    /// next [`PendingInterest::take`] asks again for every wanted topic.
    pub(crate) fn reset(&mut self) {
        for topic in std::mem::take(&mut self.told) {
            self.changes.entry(topic).or_insert(true);
        }
    }

    /// The batched command for this step, if anything changed.
    pub(crate) fn take(&mut self) -> Option<BackplaneCommand> {
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        for (topic, wanted) in std::mem::take(&mut self.changes) {
            let known = self.told.contains(&topic);
            if wanted && !known {
                self.told.insert(topic.clone());
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

    /// The topics the broker should be delivering now.
    #[cfg(test)]
    pub(crate) fn told(&self) -> impl Iterator<Item = &str> {
        self.told.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_topics_stay_local() {
        assert!(is_local_only("sync:doc"));
        assert!(!is_local_only("chat"));
    }

    #[test]
    fn one_step_batches_and_cancels_interest_changes() {
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
        // Gone and back within one step: the broker hears nothing.
        p.inactive("c".into());
        p.active("c".into());
        assert_eq!(p.take(), None);
    }

    #[test]
    fn a_reset_asks_again_for_every_wanted_topic() {
        let mut p = PendingInterest::default();
        p.active("a".into());
        p.active("b".into());
        p.take();
        p.reset();
        p.inactive("b".into());
        assert_eq!(
            p.take(),
            Some(BackplaneCommand::Interest {
                subscribe: vec!["a".into()],
                unsubscribe: vec![],
            })
        );
        assert_eq!(p.told().collect::<Vec<_>>(), ["a"]);
    }
}
