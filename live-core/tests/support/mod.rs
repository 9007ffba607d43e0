//! Test harness: a hub driven with a fake clock, and `drain()` that turns its
//! actions into a readable transcript.
//!
//! Stepping is quinn-Pair-like: inputs are applied at `now`, outputs drained, and
//! time jumps straight to the next `poll_timeout` instead of sleeping.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use live_core::{Action, Event, Frame, Hub, HubConfig, OutFrame, SessionId};

/// Every action the hub has queued, in order.
pub fn drain<A>(hub: &mut Hub<A>) -> Vec<Action> {
    std::iter::from_fn(|| hub.poll_action()).collect()
}

/// Every event the hub has queued, in order.
pub fn drain_events<A>(hub: &mut Hub<A>) -> Vec<Event<A>> {
    std::iter::from_fn(|| hub.poll_event()).collect()
}

/// A hub whose sessions are authenticated as their name, plus a clock.
pub struct Harness {
    pub hub: Hub<String>,
    pub now: Instant,
    pub start: Instant,
    names: BTreeMap<SessionId, String>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(HubConfig::default())
    }

    pub fn with_config(config: HubConfig) -> Self {
        let start = Instant::now();
        Self {
            hub: Hub::new(config, 42),
            now: start,
            start,
            names: BTreeMap::new(),
        }
    }

    /// Opens a session authenticated (through the event round trip) as `name`.
    pub fn open(&mut self, name: &str) -> SessionId {
        let id = self.hub.handle_open(self.now);
        self.names.insert(id, name.to_owned());
        let events = drain_events(&mut self.hub);
        assert_eq!(events, vec![Event::Authenticate { id }]);
        self.hub
            .handle_auth(self.now, id, Ok(name.to_owned()))
            .unwrap();
        id
    }

    /// Opens a session but leaves it authenticating.
    pub fn open_pending(&mut self, name: &str) -> SessionId {
        let id = self.hub.handle_open(self.now);
        self.names.insert(id, name.to_owned());
        id
    }

    pub fn name(&self, id: SessionId) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    pub fn text(&mut self, id: SessionId, text: &str) {
        self.hub.handle_frame(
            self.now,
            id,
            Frame::Text(Bytes::copy_from_slice(text.as_bytes())),
        );
    }

    pub fn frame(&mut self, id: SessionId, frame: Frame) {
        self.hub.handle_frame(self.now, id, frame);
    }

    pub fn subscribe(&mut self, id: SessionId, topic: &str) {
        self.text(
            id,
            &format!(r#"{{"topic":"subscribe","data":{{"topic":"{topic}"}}}}"#),
        );
    }

    pub fn unsubscribe(&mut self, id: SessionId, topic: &str) {
        self.text(
            id,
            &format!(r#"{{"topic":"unsubscribe","data":{{"topic":"{topic}"}}}}"#),
        );
    }

    pub fn publish(&mut self, id: SessionId, topic: &str, data: &str) {
        self.text(
            id,
            &format!(r#"{{"topic":"publish","data":{{"topic":"{topic}","data":{data}}}}}"#),
        );
    }

    /// The actions as transcript lines, `name <- payload`, without flushing.
    pub fn drain(&mut self) -> Vec<String> {
        drain(&mut self.hub)
            .into_iter()
            .map(|a| self.render(&a))
            .collect()
    }

    /// Drains the actions and reports every send flushed, as a fast adapter would.
    pub fn drain_flushed(&mut self) -> Vec<String> {
        let actions = drain(&mut self.hub);
        let mut lines = Vec::new();
        for a in &actions {
            lines.push(self.render(a));
            if let Action::Send { id, frame } = a {
                self.hub
                    .handle_flushed(self.now, *id, 1, frame.len())
                    .unwrap();
            }
        }
        lines
    }

    /// What `id` is sent until nothing more comes, its queue reported
    /// flushed after each round (a reader taking everything as it arrives):
    /// how a replay longer than the queue reaches it.
    pub fn read_all(&mut self, id: SessionId) -> Vec<String> {
        let mut lines = self.drain();
        while let Some((messages, bytes)) = self.hub.queued(id) {
            self.hub
                .handle_flushed(self.now, id, messages, bytes)
                .unwrap();
            let more = self.drain();
            if more.is_empty() {
                break;
            }
            lines.extend(more);
        }
        lines
    }

    pub fn events(&mut self) -> Vec<Event<String>> {
        drain_events(&mut self.hub)
    }

    /// Only the `Closed` events, as `name closed <code> <text>`.
    pub fn closed(&mut self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Closed { id, reason, .. } => Some(format!(
                    "{} closed {} {}",
                    self.name(id),
                    reason.code(),
                    reason.text()
                )),
                _ => None,
            })
            .collect()
    }

    fn render(&self, a: &Action) -> String {
        match a {
            Action::Send { id, frame } => {
                let who = self.name(*id);
                match frame {
                    OutFrame::Text(b) => format!("{who} <- {}", String::from_utf8_lossy(b)),
                    OutFrame::Ping(b) => format!("{who} <- ping {}", b.len()),
                    OutFrame::Pong(b) => format!("{who} <- pong {}", String::from_utf8_lossy(b)),
                }
            }
            Action::Close { id, code, reason } => {
                format!("{} <- close {code} {reason}", self.name(*id))
            }
        }
    }

    /// Moves the clock forward by `d` and runs the timers due.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.hub.handle_timeout(self.now);
    }

    /// Jumps to the next deadline and handles it; returns how far it jumped.
    pub fn next_timeout(&mut self) -> Option<Duration> {
        let (at, _) = self.hub.poll_timeout()?;
        let jumped = at.saturating_duration_since(self.now);
        self.now = self.now.max(at);
        self.hub.handle_timeout(self.now);
        Some(jumped)
    }

    /// Time since the harness started.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

/// The error frame a client receives for `code`.
pub fn error_code(line: &str) -> Option<String> {
    let (_, json) = line.split_once(" <- ")?;
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    if v["topic"] != "error" {
        return None;
    }
    v["data"]["code"].as_str().map(str::to_owned)
}

/// A subscribe naming the position `(epoch, offset)` of `topic`.
pub fn since(topic: &str, epoch: &str, offset: u64) -> String {
    format!(
        r#"{{"topic":"subscribe","data":{{"topic":"{topic}","since":{{"epoch":"{epoch}","offset":{offset}}}}}}}"#
    )
}

/// The transcript line of a `subscribed` reply to `who`.
pub fn subscribed(who: &str, topic: &str, epoch: &str, offset: u64, recovered: bool) -> String {
    format!(
        r#"{who} <- {{"topic":"subscribed","data":{{"topic":"{topic}","epoch":"{epoch}","offset":{offset},"recovered":{recovered}}}}}"#
    )
}
