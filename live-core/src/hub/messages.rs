//! Interpretation of client messages: the envelope, the built-in commands and
//! their authorization, application messages, and messages held while a session
//! is blocked.

use std::time::Instant;

use bytes::Bytes;

use super::Hub;
use super::timers::after;
use crate::authorize::{AuthorizeRequest, Decision, sync_scope};
use crate::envelope::{self, ERROR_TOPIC};
use crate::options;
use crate::presence::PRESENCE_TOPIC;
use crate::session::{Detail, PendingAuthorize};
use crate::{AuthorizeTicket, Command, ErrorCode, Event};

impl<A> Hub<A> {
    /// Processes held messages in order until the session blocks again or closes.
    pub(super) fn process_held(&mut self, now: Instant, key: usize) {
        loop {
            let Some(s) = self.sessions.get_mut(key) else {
                return;
            };
            if s.is_blocked() {
                return;
            }
            let Some(held) = s.held.pop_front() else {
                return;
            };
            s.held_bytes -= held.len();
            self.process_message(now, key, held);
        }
    }

    /// Interprets one data message of an active, unblocked session.
    pub(super) fn process_message(&mut self, now: Instant, key: usize, payload: Bytes) {
        let Ok(text) = std::str::from_utf8(&payload) else {
            self.send_error(key, ErrorCode::BadJson, "message is not UTF-8 JSON");
            return;
        };
        let env = match envelope::parse(text) {
            Ok(env) => env,
            Err((code, message)) => {
                self.send_error(key, code, message);
                return;
            }
        };
        let commands = self.config.commands;
        let (command, query) = match env.topic.as_str() {
            "subscribe" if commands.subscribe => (Command::Subscribe, false),
            "unsubscribe" if commands.unsubscribe => (Command::Unsubscribe, false),
            "publish" if commands.publish => (Command::Publish, false),
            // A presence query needs the right to subscribe to its topic.
            PRESENCE_TOPIC if commands.presence => (Command::Subscribe, true),
            _ => {
                if env.topic.len() > self.config.limits.max_topic_len {
                    self.send_error(key, ErrorCode::TopicTooLong, "topic is too long");
                } else if self.config.application_messages {
                    let data = match env.data {
                        Some(d) => payload.slice_ref(d.as_bytes()),
                        None => Bytes::from_static(b"null"),
                    };
                    let id = self.sessions[key].id;
                    self.events.push_back(Event::Message {
                        id,
                        topic: env.topic,
                        data,
                    });
                } else {
                    self.send_error(key, ErrorCode::UnknownCommand, "unknown command");
                }
                return;
            }
        };
        let target = match envelope::parse_command(env.data) {
            Ok(target) => target,
            Err((code, message)) => {
                self.send_error(key, code, message);
                return;
            }
        };
        let topic = target.topic;
        if topic.len() > self.config.limits.max_topic_len {
            self.send_error(key, ErrorCode::TopicTooLong, "topic is too long");
            return;
        }
        if topic == ERROR_TOPIC {
            self.send_error(key, ErrorCode::BadTopic, "the error topic is reserved");
            return;
        }
        let detail = if query {
            Detail::PresenceQuery
        } else if command == Command::Subscribe {
            match options::parse(env.data.unwrap_or("{}")) {
                Ok(o) if o.is_plain() => Detail::Plain,
                Ok(o) => Detail::Subscribe(o),
                Err((code, message)) => {
                    self.send_error(key, code, message);
                    return;
                }
            }
        } else {
            Detail::Plain
        };
        let data = match target.data {
            Some(d) => payload.slice_ref(d.as_bytes()),
            None => Bytes::from_static(b"null"),
        };
        let subscribed = self.sessions[key].topics.contains(topic.as_str());
        let decision = match command {
            // Repeating a subscription or leaving a topic one is not in changes
            // nothing, so it needs no permission; a subscriber may ask for its
            // position, presence or the member list of its topic.
            Command::Subscribe if subscribed && matches!(detail, Detail::Plain) => return,
            Command::Subscribe if subscribed => Decision::Allow,
            Command::Unsubscribe if !subscribed => return,
            Command::Unsubscribe if sync_scope(&topic).is_some() => Decision::Allow,
            Command::Publish if sync_scope(&topic).is_some() => {
                let message = format!("clients may not publish on sync topic {topic}");
                self.send_error(key, ErrorCode::Forbidden, &message);
                return;
            }
            _ => self.ask_authorizer(key, command, &topic),
        };
        match decision {
            Decision::Allow => self.apply_command(now, key, command, &topic, data, detail),
            Decision::Deny => self.send_error(
                key,
                ErrorCode::Forbidden,
                &forbidden_message(command, &topic),
            ),
            Decision::Ask => self.ask_application(now, key, command, topic, data, detail),
        }
    }

    fn ask_authorizer(&mut self, key: usize, command: Command, topic: &str) -> Decision {
        let s = &self.sessions[key];
        let Some(auth) = s.auth() else {
            // Unreachable: only active sessions process messages. Refuse rather
            // than panic.
            return Decision::Deny;
        };
        let request = AuthorizeRequest {
            id: s.id,
            auth,
            command,
            topic,
        };
        if request.scope().is_some() {
            self.authorizer.authorize_scope(&request)
        } else {
            self.authorizer.authorize_topic(&request)
        }
    }

    fn ask_application(
        &mut self,
        now: Instant,
        key: usize,
        command: Command,
        topic: String,
        data: Bytes,
        detail: Detail,
    ) {
        let ticket = AuthorizeTicket(self.next_ticket);
        self.next_ticket += 1;
        self.tickets.insert(ticket.0, key);
        let deadline = self
            .config
            .timers
            .authorize_timeout
            .and_then(|d| after(now, d));
        let s = &mut self.sessions[key];
        s.pending = Some(Box::new(PendingAuthorize {
            ticket,
            command,
            topic: topic.clone(),
            data,
            detail,
            deadline,
        }));
        self.events.push_back(Event::Authorize {
            ticket,
            id: s.id,
            command,
            topic,
        });
    }

    /// Carries out an allowed client command.
    pub(super) fn apply_command(
        &mut self,
        now: Instant,
        key: usize,
        command: Command,
        topic: &str,
        data: Bytes,
        detail: Detail,
    ) {
        match command {
            Command::Subscribe => {
                if let Detail::PresenceQuery = detail {
                    self.answer_presence(key, topic);
                    return;
                }
                let s = &self.sessions[key];
                let fresh = !s.topics.contains(topic);
                if fresh {
                    if s.topics.len() >= self.config.limits.max_topics_per_session {
                        let message =
                            format!("too many topics for this session; not subscribed to {topic}");
                        self.send_error(key, ErrorCode::TooManyTopics, &message);
                        return;
                    }
                    self.subscribe_key(key, topic);
                }
                if let Detail::Subscribe(options) = detail
                    && self.sessions.contains(key)
                {
                    self.answer_subscribe(now, key, topic, &options, fresh);
                }
            }
            Command::Unsubscribe => {
                self.unsubscribe_key(key, topic);
            }
            Command::Publish => {
                // Read before fanning out: the publisher may be closed by it.
                let id = self.sessions[key].id;
                if self.append_to_broker(topic, &data) {
                    // The broker numbers it and hands it to every node.
                    return;
                }
                let frame = self.encode_publication(Some(now), topic, &data);
                self.fan_out(topic, frame);
                if self.config.backplane_events {
                    self.events.push_back(Event::Published {
                        id,
                        topic: topic.to_owned(),
                        data,
                    });
                }
            }
        }
    }
}

/// The message of a `forbidden` error frame; it names the topic so a client with
/// several commands in flight knows which one failed.
pub(super) fn forbidden_message(command: Command, topic: &str) -> String {
    match command {
        Command::Subscribe => format!("not allowed to subscribe to {topic}"),
        Command::Unsubscribe => format!("not allowed to unsubscribe from {topic}"),
        Command::Publish => format!("not allowed to publish on {topic}"),
    }
}
