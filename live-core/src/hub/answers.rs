//! Answers to the hub's events: authentication and asynchronous authorization.

use std::time::Instant;

use super::Hub;
use super::messages::forbidden_message;
use crate::close::{codes, is_valid_code};
use crate::session::Phase;
use crate::{AuthorizeTicket, CloseReason, ErrorCode, HubError, Rejection, SessionId};

impl<A> Hub<A> {
    /// Answers [`Event::Authenticate`](crate::Event::Authenticate): `Ok(auth)`
    /// activates the session and processes what it sent meanwhile; `Err` closes it.
    ///
    /// Returns [`HubError::UnknownSession`] when the session is no longer open
    /// (it timed out or left; usually a harmless race) and
    /// [`HubError::AlreadyAuthenticated`] when it was answered before.
    pub fn handle_auth(
        &mut self,
        now: Instant,
        id: SessionId,
        result: Result<A, Rejection>,
    ) -> Result<(), HubError> {
        self.clock = Some(now);
        let &key = self.by_id.get(&id).ok_or(HubError::UnknownSession(id))?;
        if !matches!(self.sessions[key].phase, Phase::Authenticating { .. }) {
            return Err(HubError::AlreadyAuthenticated(id));
        }
        match result {
            Ok(auth) => {
                self.sessions[key].phase = Phase::Active { auth };
                self.activate(now, key);
            }
            Err(rejection) => {
                let code = if is_valid_code(rejection.code) {
                    rejection.code
                } else {
                    codes::POLICY
                };
                self.close_key(
                    key,
                    CloseReason::AuthRejected {
                        code,
                        reason: rejection.reason,
                    },
                );
            }
        }
        Ok(())
    }

    /// Answers [`Event::Authorize`](crate::Event::Authorize). When allowed, the
    /// command is carried out (subject to the topic limit); when refused the client
    /// gets a `forbidden` error frame. Either way the session's held messages are
    /// then processed. Ignored when the ticket is no longer outstanding (its
    /// session closed or the question timed out).
    pub fn handle_authorize(&mut self, now: Instant, ticket: AuthorizeTicket, allowed: bool) {
        self.clock = Some(now);
        let Some(key) = self.tickets.remove(&ticket.0) else {
            return;
        };
        let Some(pending) = self.sessions.get_mut(key).and_then(|s| s.pending.take()) else {
            return;
        };
        if allowed {
            self.apply_command(
                now,
                key,
                pending.command,
                &pending.topic,
                pending.data,
                pending.detail,
            );
        } else {
            self.send_error(
                key,
                ErrorCode::Forbidden,
                &forbidden_message(pending.command, &pending.topic),
            );
        }
        self.process_held(now, key);
        if self.sessions.contains(key) {
            self.reschedule(key);
        }
    }
}
