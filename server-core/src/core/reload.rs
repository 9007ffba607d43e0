//! What the core does when its store is shared with other nodes and they
//! write: the engine assumes it is the only writer, so
//!
//! - when another node commits to a scope (a store notice), the scope is
//!   reloaded *before* its poke goes to this node's subscribers, so a client
//!   never pulls from a node that has not seen what it was poked about;
//!   reloads run only while no batch is out, so they never race one;
//! - a scope this node holds but nobody here watches is read only once a
//!   request names it: a pull or snapshot waits for the read, a push for a
//!   read that locks the scope. Where every node writes every scope, reading
//!   each scope after every other node's commit cost a third of the
//!   cluster's pushes, and most of those reads were overtaken by the next
//!   commit before any request needed them;
//! - a reload never meets work of this node on its scopes, which the engine
//!   would have to refuse it for: a scope with pushes in the open batch is
//!   left wanted and the batch goes out first (if stale, its refusal brings
//!   back what other nodes wrote, read under the scope's lock), and
//!   requests naming a scope whose reload is out wait for it (see
//!   `ServerCore::resume_deferred`);
//! - reloads read only what was written after the records the engine holds
//!   (see [`crate::jobs::reload`]), so their cost follows what other nodes
//!   wrote, not the length of the log;
//! - a scope other nodes write too (a batch on it was refused as stale) is
//!   read under its lock: pushes on it wait for a read that locks it until
//!   the next batch, so that batch follows every other node's writes and is
//!   not refused (a refused batch makes the engine throw away its working
//!   state of the scope, a copy of the whole state, to compute it again);
//! - should the engine still refuse a reload, the scope is forgotten by the
//!   store, so the next batch on it is refused as stale and reloads it (the
//!   whole scope: under a steady load of pushes, refusing every reload made
//!   a node read its scopes whole over and over and fall behind for good).

use std::collections::BTreeSet;
use std::time::Instant;

use sync_core::App;
use sync_core::store::ScopeUpdate;

use super::{READ_RETRY, ServerCore};
use crate::output::{Notice, Output, ReloadJob, Reloaded};
use crate::policy::Policy;

/// Locking reads that find nothing new before a scope counts as written by
/// this node alone again (its pushes then go straight to the engine).
pub(super) const CONTENDED_READS: u8 = 4;

/// A node whose last this many batches wrote a scope is writing it (see
/// `Contended::written_in`).
const WRITING_BATCHES: u64 = 16;

impl<U, P, A> ServerCore<U, P, A>
where
    U: Clone + Send + 'static,
    P: Policy<U> + Send + Sync + 'static,
    A: App,
{
    /// Another node committed to `scope` (`None`: the store's change feed was
    /// interrupted, any scope may have changed). A scope watched here is
    /// reloaded, then poked to this node's subscribers. One held here that
    /// nobody here watches is read when a request names it (see
    /// `ServerCore::run_sync`). One this node holds nothing of and nobody
    /// here watches is left alone: it is read whole when a request first
    /// names it. So nodes do not spend their time following scopes only
    /// other nodes use.
    pub fn handle_store_notice(&mut self, now: Instant, scope: Option<String>) {
        self.at(now);
        match scope {
            Some(scope) => {
                let watched = self.hub.subscriber_count(&sync_core::poke_topic(&scope)) > 0;
                if watched {
                    self.wanted.later.remove(&scope);
                    self.wanted.scopes.insert(scope);
                } else if self.engine.scope_mark(&scope).is_some() {
                    self.metrics.notices_deferred += 1;
                    self.wanted.later.insert(scope);
                } else {
                    self.metrics.notices_ignored += 1;
                }
            }
            None => self.wanted.all = true,
        }
        self.pump();
    }

    /// The store finished [`Output::Reload`].
    pub fn handle_reloaded(&mut self, now: Instant, reloaded: Reloaded) {
        self.at(now);
        let sent = self.reload_sent.take();
        if let Some(sent) = sent {
            self.metrics.reload_seconds += self.now.saturating_duration_since(sent).as_secs_f64();
        }
        let read = std::mem::take(&mut self.reload_scopes);
        let locked = std::mem::take(&mut self.locking);
        for update in &reloaded.updates {
            let scope = update.scope();
            let before = self.engine.durable_head(scope);
            self.absorb_reload(update);
            if locked.contains(scope) {
                let moved = self.engine.durable_head(scope) != before;
                self.count_locking_read(scope, moved);
            }
        }
        let failed = reloaded.error.is_some();
        let unread = match reloaded.error {
            None => {
                self.store_back();
                BTreeSet::new()
            }
            Some(message) => {
                self.emit(Output::Notice(Notice::ReloadFailed { message }));
                // Unread, they may be behind: a request naming one reads it
                // first.
                self.wanted.later.extend(read.iter().cloned());
                if reloaded.unavailable && self.waits_out_outage(sent.unwrap_or(self.now)) {
                    // Read again once the pause is over; requests waiting
                    // for them keep waiting (see outage.rs).
                    self.wanted.scopes.extend(read);
                    BTreeSet::new()
                } else {
                    // Those watched here are read again soon.
                    self.wanted.retry_at = Some(self.now + READ_RETRY);
                    // Pushes on the scopes to lock go the way of any other:
                    // the batch says whether the store is there.
                    for scope in &locked {
                        self.contended.remove(scope);
                    }
                    read
                }
            }
        };
        if !locked.is_empty() {
            // The store holds the locks until the next batch: it goes out
            // next, empty if need be (after a failure, to let go of what
            // the store may hold).
            self.rebasing = Some(0);
            if !failed {
                self.locked = locked;
            }
        }
        self.resume_deferred(&unread);
        self.pump();
    }

    /// [`READ_RETRY`] after a failed read: the scopes it left unread that
    /// are watched here are read again (the rest wait for a request).
    pub(super) fn retry_reads(&mut self) {
        if self.wanted.retry_at.is_none_or(|at| at > self.now) {
            return;
        }
        self.wanted.retry_at = None;
        let watched: Vec<String> = (self.wanted.later.iter())
            .filter(|s| self.hub.subscriber_count(&sync_core::poke_topic(s)) > 0)
            .cloned()
            .collect();
        for scope in watched {
            self.wanted.later.remove(&scope);
            self.wanted.scopes.insert(scope);
        }
    }

    /// A locking read of `scope` found other nodes' writes (`moved`), or
    /// found nothing new: after [`CONTENDED_READS`] of those in a row, its
    /// pushes go straight to the engine again.
    fn count_locking_read(&mut self, scope: &str, moved: bool) {
        let Some(c) = self.contended.get_mut(scope) else {
            return;
        };
        if moved {
            c.reads_left = CONTENDED_READS;
        } else {
            c.reads_left = c.reads_left.saturating_sub(1);
            if c.reads_left == 0 {
                self.contended.remove(scope);
            }
        }
    }

    /// Sends one read of what other nodes wrote, if any is due; returns
    /// whether it went out. It reads the wanted scopes (other nodes
    /// committed to them) and locks, for the next batch, the scopes other
    /// nodes write that waiting pushes name, or that are wanted and one of
    /// this node's recent batches wrote (its next pushes on them are likely
    /// on their way): the pushes make that batch once they see what the
    /// read brought. A scope with work in the engine is left for later (the
    /// engine would refuse to reload it): the work goes out first (refused
    /// as stale, it comes back with what other nodes wrote, read under the
    /// scope's lock). One read for both, so pushes that keep a scope locked
    /// never hold back the reads that poke this node's subscribers.
    pub(super) fn start_reads(&mut self) -> bool {
        let lock: BTreeSet<String> = if self.contended.is_empty() && self.wanted.later.is_empty() {
            BTreeSet::new()
        } else {
            let writing = |scope: &&str| {
                self.contended
                    .get(*scope)
                    .is_some_and(|c| self.last_batch.saturating_sub(c.written_in) < WRITING_BATCHES)
            };
            let written = self.wanted.scopes.iter().map(String::as_str);
            self.deferred
                .iter()
                .filter(|d| matches!(d.request, sync_core::SyncRequest::Push(_)))
                .flat_map(|d| d.request.scopes())
                .chain(written.filter(writing))
                .filter(|s| {
                    (self.contended.contains_key(*s) || self.wanted.later.contains(*s))
                        && !self.engine.scope_busy(s)
                })
                .map(str::to_owned)
                .collect()
        };
        if lock.is_empty() && !self.wanted.all && self.wanted.scopes.is_empty() {
            return false;
        }
        let mut scopes = std::mem::take(&mut self.wanted.scopes);
        if std::mem::take(&mut self.wanted.all) {
            scopes.extend(self.engine.scopes().map(str::to_owned));
        }
        let (busy, mut scopes): (BTreeSet<String>, BTreeSet<String>) = scopes
            .into_iter()
            .partition(|scope| self.engine.scope_busy(scope));
        self.wanted.scopes = busy;
        scopes.extend(lock.iter().cloned());
        if scopes.is_empty() {
            return false;
        }
        self.reload_scopes.clone_from(&scopes);
        // No batch is out while a reload runs, so these marks hold until its
        // records are applied.
        let scopes = scopes
            .into_iter()
            .map(|scope| {
                let held = self.engine.scope_mark(&scope);
                (scope, held)
            })
            .collect();
        let forget = std::mem::take(&mut self.forget);
        if !lock.is_empty() {
            self.metrics.locking_reads += 1;
        }
        self.reload_sent = Some(self.now);
        self.emit(Output::Reload(ReloadJob {
            scopes,
            forget,
            lock: lock.iter().cloned().collect(),
        }));
        self.locking = lock;
        true
    }

    /// Installs one reloaded scope, and pokes this node's subscribers when
    /// its head moved: however this node learns of another node's commits
    /// (a notice, a pull past its head, a refused batch), its watchers hear
    /// of them then, since no later notice will announce them again.
    pub(super) fn absorb_reload(&mut self, update: &ScopeUpdate) {
        let scope = update.scope();
        let before = self.engine.durable_head(scope);
        match self.engine.apply_scope_update(update) {
            Ok(()) => {
                self.wanted.later.remove(scope);
                self.metrics.reloads += 1;
                let cursor = self.engine.durable_head(scope);
                if cursor != before {
                    self.on_engine_output(sync_core::Output::Poke {
                        scope: scope.to_owned(),
                        cursor,
                    });
                }
            }
            Err(_) => {
                // The store now believes we saw these records: make it refuse
                // our next batch on the scope instead, which reloads it.
                self.forget.push(scope.to_owned());
                self.emit(Output::Notice(Notice::ReloadRefused {
                    scope: scope.to_owned(),
                }));
            }
        }
    }
}
