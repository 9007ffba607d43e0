//! The set of topics the application wants, independent of any connection:
//! it survives disconnects and is replayed on every new connection.

use std::collections::BTreeSet;

use super::wire;

/// Wanted topics, in a stable order so a resubscribe is reproducible.
#[derive(Debug, Default, Clone)]
pub(crate) struct Subscriptions {
    topics: BTreeSet<String>,
}

impl Subscriptions {
    /// Adds `topic`; the subscribe frame to send if it was new.
    pub(crate) fn add(&mut self, topic: String) -> Option<String> {
        let frame = wire::command(wire::SUBSCRIBE, &topic);
        self.topics.insert(topic).then_some(frame)
    }

    /// Removes `topic`; the unsubscribe frame to send if it was there.
    pub(crate) fn remove(&mut self, topic: &str) -> Option<String> {
        self.topics
            .remove(topic)
            .then(|| wire::command(wire::UNSUBSCRIBE, topic))
    }

    /// One subscribe frame per wanted topic, for a fresh connection.
    pub(crate) fn replay(&self) -> impl Iterator<Item = String> + '_ {
        self.topics
            .iter()
            .map(|t| wire::command(wire::SUBSCRIBE, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_produce_frames_and_replay_lists_the_set() {
        let mut s = Subscriptions::default();
        assert!(s.add("b".into()).is_some());
        assert!(s.add("a".into()).is_some());
        assert!(s.add("a".into()).is_none());
        assert!(s.remove("c").is_none());
        let replay: Vec<String> = s.replay().collect();
        assert_eq!(
            replay,
            vec![
                wire::command(wire::SUBSCRIBE, "a"),
                wire::command(wire::SUBSCRIBE, "b")
            ]
        );
        assert_eq!(s.remove("a"), Some(wire::command(wire::UNSUBSCRIBE, "a")));
        assert_eq!(s.replay().count(), 1);
    }
}
