//! Taps: how a [`SyncClient`](super::SyncClient) shares a live connection.
//!
//! A tap claims topics (its `sync:<scope>` poke topic) and the `_sync` replies
//! whose `rid` carries its id, and hears every connect and disconnect. Claimed
//! frames go to the tap instead of the application's event stream.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sync_core::handler::WS_TOPIC;
use tokio::sync::mpsc;

/// What a tap is told.
#[derive(Debug)]
pub(crate) enum TapEvent {
    /// A connection is up (subscriptions already sent on it).
    Connected,
    /// The connection is gone; requests sent on it will not be answered.
    Disconnected,
    /// A claimed frame.
    Frame { topic: String, data: Value },
}

/// One attached listener. Its channel is unbounded because its only producer
/// is the server's answers to the tap's own requests plus pokes, and the
/// driver consumes them without awaiting anything else.
#[derive(Debug)]
pub(crate) struct Tap {
    pub(crate) id: u64,
    pub(crate) topics: BTreeSet<String>,
    pub(crate) tx: mpsc::UnboundedSender<TapEvent>,
}

/// Every attached tap.
#[derive(Debug, Default)]
pub(crate) struct Taps {
    taps: BTreeMap<u64, Tap>,
}

/// The `rid` a tap puts on its `_sync` requests: `[tap id, request id]`.
pub(crate) fn rid(tap: u64, request: u64) -> Value {
    Value::from(vec![tap, request])
}

/// The `(tap id, request id)` of a reply's `rid`.
pub(crate) fn parse_rid(rid: &Value) -> Option<(u64, u64)> {
    match rid.as_array()?.as_slice() {
        [tap, req] => Some((tap.as_u64()?, req.as_u64()?)),
        _ => None,
    }
}

impl Taps {
    pub(crate) fn attach(&mut self, tap: Tap) {
        self.taps.insert(tap.id, tap);
    }

    pub(crate) fn detach(&mut self, id: u64) {
        self.taps.remove(&id);
    }

    /// Tells every tap; taps whose driver has gone are dropped.
    pub(crate) fn broadcast(&mut self, connected: bool) {
        self.taps.retain(|_, t| {
            let ev = if connected {
                TapEvent::Connected
            } else {
                TapEvent::Disconnected
            };
            t.tx.send(ev).is_ok()
        });
    }

    /// Whether a tap claims `topic` (a sync client's poke topic).
    pub(crate) fn claims(&self, topic: &str) -> bool {
        self.taps.values().any(|t| t.topics.contains(topic))
    }

    /// Hands a claimed frame to its tap(s); gives it back when nobody claims it.
    pub(crate) fn route(&mut self, topic: String, data: Value) -> Option<(String, Value)> {
        if topic == WS_TOPIC {
            let owner = data.get("rid").and_then(parse_rid).map(|(tap, _)| tap);
            match owner.and_then(|id| self.taps.get(&id)) {
                Some(tap) => {
                    let _ = tap.tx.send(TapEvent::Frame { topic, data });
                    return None;
                }
                None => return Some((topic, data)),
            }
        }
        let claimed: Vec<u64> = self
            .taps
            .values()
            .filter(|t| t.topics.contains(&topic))
            .map(|t| t.id)
            .collect();
        if claimed.is_empty() {
            return Some((topic, data));
        }
        for id in claimed {
            if let Some(t) = self.taps.get(&id) {
                let _ = t.tx.send(TapEvent::Frame {
                    topic: topic.clone(),
                    data: data.clone(),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tap(id: u64, topic: &str) -> (Tap, mpsc::UnboundedReceiver<TapEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let topics = [topic.to_owned()].into_iter().collect();
        (Tap { id, topics, tx }, rx)
    }

    #[test]
    fn replies_go_to_the_tap_named_in_the_rid_and_pokes_to_claimants() {
        let mut taps = Taps::default();
        let (t1, mut r1) = tap(1, "sync:a");
        let (t2, mut r2) = tap(2, "sync:b");
        taps.attach(t1);
        taps.attach(t2);
        let reply = json!({"rid": rid(2, 7), "status": 200, "body": {}});
        assert!(taps.route("_sync".into(), reply).is_none());
        assert!(matches!(r2.try_recv(), Ok(TapEvent::Frame { .. })));
        assert!(r1.try_recv().is_err());
        assert!(taps.route("sync:a".into(), json!({"cursor": 3})).is_none());
        assert!(matches!(r1.try_recv(), Ok(TapEvent::Frame { .. })));
        // Unclaimed frames and replies to unknown taps go back to the caller.
        assert!(taps.route("room".into(), json!(1)).is_some());
        assert!(taps.route("_sync".into(), json!({"rid": 5})).is_some());
        assert_eq!(parse_rid(&rid(3, 4)), Some((3, 4)));
    }

    #[test]
    fn taps_whose_driver_is_gone_are_dropped() {
        let mut taps = Taps::default();
        let (t1, r1) = tap(1, "sync:a");
        taps.attach(t1);
        drop(r1);
        taps.broadcast(true);
        assert!(taps.route("sync:a".into(), json!({})).is_some());
    }
}
