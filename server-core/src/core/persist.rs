//! Group commit: at most one batch out at a time, pushes arriving meanwhile
//! gather in the engine's open batch; nothing is answered, published or
//! poked before its batch is durable. And what a failed batch means: a
//! stale refusal pushes its pushes again after the reload, an outage answers
//! 503 `unavailable`, anything else answers the engine's errors.
//!
//! On a shared store an outage is waited out first (see outage.rs).
//!
//! Trims ride on batches and are done once theirs is durable. The engine
//! drops a failed batch's trims with those of the open batch; when the
//! batch is tried again they are given to it again, else they are done
//! with the store's error.
//!
//! A shared store that refuses a batch as stale keeps the refused scopes
//! locked until its next batch (see `sync-postgres`), so the reload it
//! handed back is all there is to catch up on, and the batch computed again
//! on top cannot be refused for the same reason. That next batch therefore
//! goes out before anything else (a reload of other nodes' commits waits),
//! and goes out even when it turned out to write nothing (the pushes again
//! were replays), so the store lets the scopes go at once.

use std::time::{Duration, Instant};

use sync_core::{App, ErrorCode, Output as EngineOutput, RequestId, Response};

use super::reload::CONTENDED_READS;
use super::{Contended, PendingTrim, ServerCore};
use crate::error::ServerError;
use crate::output::{Notice, Output, PersistFailure, PersistJob};
use crate::policy::Policy;

impl<U, P, A> ServerCore<U, P, A>
where
    U: Clone + Send + 'static,
    P: Policy<U> + Send + Sync + 'static,
    A: App,
{
    /// The store finished [`Output::Persist`] number `number`, in `took`.
    /// An error when `number` is not the batch that is out (a loop's bug).
    pub fn handle_persisted(
        &mut self,
        now: Instant,
        number: u64,
        result: Result<(), PersistFailure>,
        took: Duration,
    ) -> Result<(), ServerError> {
        self.at(now);
        let changes = match self.persisting {
            Some((n, changes)) if n == number => changes,
            other => {
                return Err(ServerError::Engine(
                    sync_core::EngineError::NotOutstanding {
                        given: number,
                        outstanding: other.map(|(n, _)| n),
                    },
                ));
            }
        };
        self.persisting = None;
        self.metrics.persist_seconds += took.as_secs_f64();
        if std::mem::take(&mut self.releasing) {
            // An empty batch that only let the store release the scopes it
            // held: nothing of the engine's rides on it.
            if let Err(failure) = result {
                self.outputs
                    .push_back(Output::Notice(Notice::PersistFailed {
                        batch: number,
                        message: failure.message,
                        stale: false,
                    }));
            }
            self.pump();
            return Ok(());
        }
        // When the try went out: an outage is timed from there.
        let tried_at = now.checked_sub(took).unwrap_or(now);
        self.finish_batch(number, changes, result, tried_at);
        self.pump();
        Ok(())
    }

    /// Starts the next job if none is out: a reload when other nodes wrote
    /// scopes, else the engine's open batch. Returns whether it did anything.
    pub(super) fn start_job(&mut self) -> bool {
        if self.job_outstanding() || self.pausing_for_outage() {
            return false;
        }
        // The store holds the scopes of refused batch `rebasing` for this one.
        let rebasing = self.rebasing.take();
        if rebasing.is_none() && self.start_reads() {
            return true;
        }
        // Whatever goes out now writes in the transaction holding the locks.
        self.locked.clear();
        let Some(ready) = self.engine.poll_ready() else {
            if let Some(number) = rebasing {
                self.releasing = true;
                self.persisting = Some((number, 0));
                let forget = std::mem::take(&mut self.forget);
                self.emit(Output::Persist(PersistJob {
                    number,
                    batch: Default::default(),
                    forget,
                    marks: Default::default(),
                }));
                return true;
            }
            return false;
        };
        let number = ready.number;
        for trim in std::mem::take(&mut self.trims_open) {
            self.trims_batched.push((number, trim));
        }
        let changes = ready.persist.changes.len();
        if ready.persist.is_empty() && rebasing.is_none() {
            // Only answers (replays) to release: nothing to write.
            self.finish_batch(number, 0, Ok(()), self.now);
            return true;
        }
        // Where the engine's durable records of each scope the batch locks
        // end (they do not move while it is out), so a scope refused as
        // stale is read from there on. Only a shared store refuses.
        let marks = if self.config.shared_store {
            let batch = &ready.persist;
            let written = batch.written_scopes();
            self.last_batch = number;
            for scope in &written {
                if let Some(c) = self.contended.get_mut(*scope) {
                    c.written_in = number;
                }
            }
            written
                .into_iter()
                .chain(batch.verify.iter().map(String::as_str))
                .map(|scope| (scope.to_owned(), self.engine.scope_mark(scope)))
                .collect()
        } else {
            Default::default()
        };
        self.persisting = Some((number, changes));
        let forget = std::mem::take(&mut self.forget);
        self.emit(Output::Persist(PersistJob {
            number,
            batch: ready.persist,
            forget,
            marks,
        }));
        true
    }

    /// Settles batch `number`, whose try went out at `tried_at`.
    fn finish_batch(
        &mut self,
        number: u64,
        changes: usize,
        result: Result<(), PersistFailure>,
        tried_at: Instant,
    ) {
        let outcome = match result {
            Ok(()) => {
                self.store_back();
                // The batch is the one out: advance cannot refuse it.
                let _ = self.engine.advance(number);
                self.metrics.batches += 1;
                self.metrics.changes += changes as u64;
                Ok(())
            }
            Err(failure) => {
                self.metrics.persist_failures += 1;
                let message = failure.message.clone();
                let stale = !failure.reloaded.is_empty();
                let (again, answered, tried_again) =
                    self.after_failed_batch(number, failure, tried_at);
                self.after_failed_trims(number, tried_again, &message);
                let notice = if !stale && again > 0 && answered == 0 {
                    Notice::PersistRetried {
                        batch: number,
                        message: message.clone(),
                        pushes: again,
                    }
                } else {
                    Notice::PersistFailed {
                        batch: number,
                        message: message.clone(),
                        stale,
                    }
                };
                self.emit(Output::Notice(notice));
                Err(ServerError::Store(message))
            }
        };
        if outcome.is_ok() {
            for trim in self.take_trims_of(number) {
                self.emit(Output::Done {
                    ticket: trim.ticket,
                    result: Ok(()),
                });
            }
        }
    }

    /// The trims that rode on batch `number`, no longer waiting for it.
    fn take_trims_of(&mut self, number: u64) -> Vec<PendingTrim> {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.trims_batched)
            .into_iter()
            .partition(|(n, _)| *n == number);
        self.trims_batched = waiting;
        done.into_iter().map(|(_, trim)| trim).collect()
    }

    /// Batch `number` failed, and the engine dropped its trims with those of
    /// the open batch: when the batch is tried again (a stale refusal, an
    /// outage waited out), they are given to the engine again, to go out
    /// with the next try; otherwise they are done with the store's error.
    fn after_failed_trims(&mut self, number: u64, tried_again: bool, message: &str) {
        let mut lost = self.take_trims_of(number);
        lost.append(&mut self.trims_open);
        for trim in lost {
            let again = if tried_again {
                self.engine
                    .trim(&trim.scope, trim.before)
                    .map_err(ServerError::from)
            } else {
                Err(ServerError::Store(message.to_owned()))
            };
            match again {
                Ok(()) => self.trims_open.push(trim),
                Err(e) => self.emit(Output::Done {
                    ticket: trim.ticket,
                    result: Err(e),
                }),
            }
        }
    }

    /// Rolls back a failed batch, whose try went out at `tried_at`, and
    /// answers or pushes again its pushes; returns how many were pushed
    /// again, how many answered, and whether the batch is tried again (a
    /// stale refusal, an outage waited out), whatever it held.
    fn after_failed_batch(
        &mut self,
        number: u64,
        failure: PersistFailure,
        tried_at: Instant,
    ) -> (usize, usize, bool) {
        // The batch is the one out: the engine cannot refuse it.
        let _ = self.engine.handle_persist_failed(number);
        let stale = !failure.reloaded.is_empty();
        let outage = failure.unavailable && !stale;
        let wait_out = outage && self.waits_out_outage(tried_at);
        let mut again: Vec<RequestId> = Vec::new();
        let mut answered = 0;
        while let Some(output) = self.engine.poll_output() {
            let EngineOutput::Response { request_id, .. } = &output else {
                self.on_engine_output(output);
                continue;
            };
            let request_id = *request_id;
            let retry = self.retry.get(&request_id);
            let response = match retry {
                Some(r) if stale && r.attempts < self.config.stale_retries => {
                    again.push(request_id);
                    continue;
                }
                Some(_) if stale => Response::error(
                    ErrorCode::Unavailable,
                    "other nodes kept writing this scope; nothing was applied, retry",
                ),
                Some(_) if wait_out => {
                    again.push(request_id);
                    continue;
                }
                // On a shared store a try may have landed unanswered: a
                // retry of it is refused as a replay with its first answer.
                Some(_) if outage => Response::error(
                    ErrorCode::Unavailable,
                    format!(
                        "storage unavailable ({}); retry: a push is applied once \
                         however often it is sent",
                        failure.message
                    ),
                ),
                _ if outage => Response::error(
                    ErrorCode::Unavailable,
                    format!(
                        "storage unavailable ({}); nothing was applied, retry",
                        failure.message
                    ),
                ),
                _ => {
                    answered += 1;
                    self.on_engine_output(output);
                    continue;
                }
            };
            answered += 1;
            self.on_engine_output(EngineOutput::Response {
                request_id,
                response,
            });
        }
        for update in &failure.reloaded {
            self.absorb_reload(update);
            if stale {
                // Its next pushes wait for a locking read.
                let contended = Contended {
                    reads_left: CONTENDED_READS,
                    written_in: number,
                };
                self.contended.insert(update.scope().to_owned(), contended);
            }
        }
        if stale {
            self.rebasing = Some(number);
        }
        let pushed_again = again.len();
        // Pushed again in their original order, under their original ids, so
        // their waiters get the new answers.
        for request_id in again {
            if let Some(retry) = self.retry.get_mut(&request_id) {
                if stale {
                    retry.attempts += 1;
                    self.metrics.stale_retries += 1;
                } else {
                    self.metrics.outage_retries += 1;
                }
                let (wall, mutations) = (retry.wall, retry.mutations.clone());
                self.engine.handle_push(wall, request_id, mutations);
            }
        }
        (pushed_again, answered, stale || wait_out)
    }
}
