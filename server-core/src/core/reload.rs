//! What the core does when its store is shared with other nodes and they
//! write: the engine assumes it is the only writer, so
//!
//! - when another node commits to a scope (a store notice), the scope is
//!   reloaded *before* its poke goes to this node's subscribers, so a client
//!   never pulls from a node that has not seen what it was poked about;
//!   reloads run only while no batch is out, so they never race one;
//! - reloads read only what was written after the records the engine holds
//!   (see [`crate::jobs::reload`]), so their cost follows what other nodes
//!   wrote, not the length of the log;
//! - a scope the engine refuses to reload (work of its own in flight) is
//!   forgotten by the store, so the next batch on it is refused as stale and
//!   reloads it.

use std::time::Instant;

use sync_core::App;
use sync_core::store::ScopeUpdate;

use super::ServerCore;
use crate::output::{Notice, Output, ReloadJob, Reloaded};
use crate::policy::Policy;

impl<U, P, A> ServerCore<U, P, A>
where
    U: Clone + Send + 'static,
    P: Policy<U> + Send + Sync + 'static,
    A: App,
{
    /// Another node committed to `scope` (`None`: the store's change feed was
    /// interrupted, any scope may have changed). The scope is reloaded, then
    /// poked to this node's subscribers.
    pub fn handle_store_notice(&mut self, now: Instant, scope: Option<String>) {
        self.at(now);
        match scope {
            Some(scope) => {
                self.wanted.scopes.insert(scope);
            }
            None => self.wanted.all = true,
        }
        self.pump();
    }

    /// The store finished [`Output::Reload`].
    pub fn handle_reloaded(&mut self, now: Instant, reloaded: Reloaded) {
        self.at(now);
        self.reloading = false;
        if let Some(message) = reloaded.error {
            self.emit(Output::Notice(Notice::ReloadFailed { message }));
        }
        for update in &reloaded.updates {
            self.absorb_reload(update, true);
        }
        self.pump();
    }

    pub(super) fn wants_reload(&self) -> bool {
        self.wanted.all || !self.wanted.scopes.is_empty()
    }

    pub(super) fn start_reload(&mut self) {
        let mut scopes = std::mem::take(&mut self.wanted.scopes);
        if std::mem::take(&mut self.wanted.all) {
            scopes.extend(self.engine.scopes().map(str::to_owned));
        }
        // No batch is out while a reload runs, so these marks hold until its
        // records are applied.
        let scopes = scopes
            .into_iter()
            .map(|scope| {
                let held = self.engine.scope_mark(&scope);
                (scope, held)
            })
            .collect();
        self.reloading = true;
        let forget = std::mem::take(&mut self.forget);
        self.emit(Output::Reload(ReloadJob { scopes, forget }));
    }

    /// Installs one reloaded scope; with `poke`, pokes this node's
    /// subscribers when its head moved.
    pub(super) fn absorb_reload(&mut self, update: &ScopeUpdate, poke: bool) {
        let scope = update.scope();
        let before = self.engine.durable_head(scope);
        match self.engine.apply_scope_update(update) {
            Ok(()) => {
                self.metrics.reloads += 1;
                let cursor = self.engine.durable_head(scope);
                if poke && cursor != before {
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
