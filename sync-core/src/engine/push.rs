//! Applying a push: dedupe by client sequence or mutation id, run the app on
//! the working state, append changes, and record results, all into the open
//! batch. Nothing here is visible to readers until the batch is advanced.

use std::sync::Arc;

use super::scope::ScopeData;
use super::{Engine, Output, RequestId};
use crate::app::{App, AppErrorKind};
use crate::handler::Response;
use crate::keyed;
use crate::protocol::{Change, ErrorCode, Mutation, MutationResult, PushResponse, Timestamp};
use crate::store::{ClientRecord, IdExpiry, IdRecord, LogEntry};

const STOPPED: &str = "not applied: an earlier mutation of this push failed transiently";

impl<A: App> Engine<A> {
    /// Applies `mutations` in order to the working state and queues their
    /// results. Each mutation's scope is taken as given (empty means
    /// `_default`): the caller authorizes and overrides scopes beforehand.
    ///
    /// The answer comes out of [`Engine::poll_output`] as
    /// [`Output::Response`] with `request_id`, once the batch holding this
    /// push is durable (at once if the push wrote nothing and nothing is
    /// pending). `wall` is written into the new changes' `time`.
    pub fn handle_push(
        &mut self,
        wall: Timestamp,
        request_id: RequestId,
        mutations: Vec<Mutation>,
    ) {
        let mut results = Vec::with_capacity(mutations.len());
        let mut stopped = false;
        for m in &mutations {
            if stopped {
                results.push(MutationResult::failed(ErrorCode::Internal, STOPPED));
                continue;
            }
            let r = self.apply_one(wall, m);
            stopped = r.is_transient();
            results.push(r);
        }
        if self.open.is_idle() && self.outstanding.is_none() {
            self.outputs.push_back(Output::Response {
                request_id,
                response: Response::ok(&PushResponse { results }),
            });
        } else {
            self.open.waiters.push((request_id, results));
        }
    }

    fn apply_one(&mut self, wall: Timestamp, m: &Mutation) -> MutationResult {
        if m.name.is_empty() {
            return MutationResult::failed(ErrorCode::Invalid, "mutation has no name");
        }
        let scope = m.scope_or_default().to_owned();
        self.expire_ids(&scope, wall);
        match (&m.client_id, m.seq) {
            (Some(client), Some(seq)) if seq > 0 && !client.is_empty() => {
                self.apply_sequenced(wall, &scope, client, seq, m)
            }
            (None, None) if !m.id.is_empty() => self.apply_by_id(wall, &scope, m),
            (None, None) => MutationResult::failed(ErrorCode::Invalid, "mutation has no id"),
            _ => MutationResult::failed(
                ErrorCode::Invalid,
                "client_id (non-empty) and seq (from 1) must be given together",
            ),
        }
    }

    fn apply_sequenced(
        &mut self,
        wall: Timestamp,
        scope: &str,
        client: &str,
        seq: u64,
        m: &Mutation,
    ) -> MutationResult {
        let s = self.scope_mut(scope);
        let (last, stored) = match s.working.clients.get(client) {
            Some(c) => (
                c.last,
                c.results.get(&seq).map(|r| MutationResult::clone(r)),
            ),
            None => (0, None),
        };
        if seq <= last {
            return stored.unwrap_or_else(|| {
                MutationResult::failed(
                    ErrorCode::Conflict,
                    format!("sequence {seq} was applied long ago; its result is no longer kept"),
                )
            });
        }
        let expected = last.saturating_add(1);
        if seq > expected {
            if self.config.verify_sequence_gaps
                && !self.open.batch.verify.iter().any(|v| v == scope)
            {
                // Touched: no reload may replace the view this answer was
                // computed from before the batch has checked it.
                self.open.batch.verify.push(scope.to_owned());
                self.open.touched.insert(scope.to_owned());
            }
            return MutationResult::failed(
                ErrorCode::Conflict,
                format!("sequence gap: expected seq {expected}, got {seq}"),
            );
        }
        let result = self.run_app(wall, scope, m);
        if !result.is_transient() {
            let record = ClientRecord {
                scope: scope.to_owned(),
                client_id: client.to_owned(),
                seq,
                result: result.clone(),
                keep_from: seq
                    .saturating_add(1)
                    .saturating_sub(self.config.client_results_kept.max(1)),
            };
            let shared = Arc::new(result.clone());
            self.scope_mut(scope)
                .working
                .record_client_shared(&record, Arc::clone(&shared));
            self.open.batch.clients.push(record);
            self.open.shared_results.push(shared);
            self.open.touch(scope);
        }
        result
    }

    fn apply_by_id(&mut self, wall: Timestamp, scope: &str, m: &Mutation) -> MutationResult {
        if let Some(r) = self.scope_mut(scope).working.ids.get(&m.id) {
            return r.result.clone();
        }
        let result = self.run_app(wall, scope, m);
        if !result.is_transient() {
            let record = IdRecord {
                scope: scope.to_owned(),
                id: m.id.clone(),
                result: result.clone(),
                time: wall,
            };
            let shared = Arc::new(record.clone());
            self.scope_mut(scope)
                .working
                .record_id_shared(Arc::clone(&shared));
            self.open.batch.ids.push(record);
            self.open.shared_ids.push(shared);
            self.open.touch(scope);
        }
        result
    }

    /// Runs the app and appends its changes to the working log and state.
    fn run_app(&mut self, wall: Timestamp, scope: &str, m: &Mutation) -> MutationResult {
        self.scope_mut(scope);
        let Some(s) = self.scopes.get_mut(scope) else {
            return MutationResult::failed(ErrorCode::Internal, "scope vanished");
        };
        let datas = match self.app.apply(&s.working.state, m) {
            Ok(d) => d,
            Err(e) if e.kind == AppErrorKind::Transient => {
                return MutationResult::failed(ErrorCode::Internal, e.message);
            }
            Err(e) => return MutationResult::failed(e.code, e.message),
        };
        let start = s.log.working_head() + 1;
        let group_end = start + datas.len() as u64 - 1;
        let mut changes = Vec::with_capacity(datas.len());
        for (i, data) in datas.into_iter().enumerate() {
            let entry = LogEntry {
                change: Change {
                    cursor: start + i as u64,
                    scope: scope.to_owned(),
                    time: wall,
                    data,
                },
                group_end,
            };
            s.working.absorb(&self.app, &entry);
            s.log.append(entry.clone());
            changes.push(entry.change.clone());
            self.open.batch.changes.push(entry);
        }
        if !changes.is_empty() {
            keyed::insert(&mut self.open.grown, scope);
            self.open.touch(scope);
        }
        MutationResult {
            ok: true,
            cursor: s.log.working_head(),
            error: None,
            code: None,
            changes,
        }
    }

    /// Drops id records of `scope` older than the retention window.
    fn expire_ids(&mut self, scope: &str, wall: Timestamp) {
        let retention = self.config.id_retention_ms;
        let s = self.scope_mut(scope);
        let mut expired = Vec::new();
        while let Some((time, _)) = s.working.ids_by_time.first() {
            if time.as_millis().saturating_add(retention) > wall.as_millis() {
                break;
            }
            let Some((_, id)) = s.working.ids_by_time.pop_first() else {
                break;
            };
            // Taken off `ids_by_time` just above: only `ids` is left.
            let cursor = s.working.ids.remove(&id).and_then(|r| r.last_change());
            expired.push(IdExpiry {
                scope: scope.to_owned(),
                id,
                cursor,
            });
        }
        // A record of the open batch that expires before it is written is
        // left out of the batch instead: the expiry names only records of
        // earlier batches, which stores delete before writing new ones.
        let open = &mut self.open;
        expired.retain(|x| {
            let made_here = open
                .batch
                .ids
                .iter()
                .position(|r| r.scope == x.scope && r.id == x.id);
            if let Some(i) = made_here {
                open.batch.ids.remove(i);
                if i < open.shared_ids.len() {
                    open.shared_ids.remove(i);
                }
            }
            made_here.is_none()
        });
        if !expired.is_empty() {
            self.open.touch(scope);
            self.open.batch.expired_ids.extend(expired);
        }
    }

    fn scope_mut(&mut self, scope: &str) -> &mut ScopeData<A::State> {
        keyed::entry(&mut self.scopes, scope, ScopeData::new)
    }
}
