//! The store procedures behind [`Output::Persist`](crate::Output::Persist)
//! and [`Output::Reload`](crate::Output::Reload): what a loop runs, on a
//! thread where blocking is allowed, before it reports back. They are not
//! part of the state machine (they do the store's IO), but they belong with
//! it: which scopes a refused batch reloads, and from where, is the core's
//! policy, and the simulator runs these same functions against its store.

use sync_core::Store;
use sync_core::store::refresh_scopes;

use crate::output::{PersistFailure, PersistJob, ReloadJob, Reloaded};

/// Persists `job`'s batch. When a shared store refuses it as stale, reads
/// what another node wrote to the refused scopes (all of them together)
/// while still holding the store, so no batch of this node slips in
/// between; a store that keeps the refused scopes locked until its next
/// batch makes that read all there is to catch up on.
pub fn persist<S: Store + ?Sized>(store: &mut S, job: &PersistJob) -> Result<(), PersistFailure> {
    for scope in &job.forget {
        store.forget_scope(scope);
    }
    store.persist_marked(&job.batch, &job.marks).map_err(|e| {
        let stale: Vec<_> = S::stale_scopes(&e)
            .into_iter()
            .map(|scope| {
                let held = job.marks.get(&scope).copied().flatten();
                (scope, held)
            })
            .collect();
        // Unread, the scopes stay as they were: the failure is then not
        // a stale refusal, and its pushes are answered as failed.
        let reloaded = refresh_scopes(store, &stale).unwrap_or_default();
        PersistFailure {
            message: e.to_string(),
            unavailable: S::is_unavailable(&e),
            reloaded,
        }
    })
}

/// Reads `job`'s scopes together, each from where this node's records end,
/// after locking those of `job.lock` for the next batch (a shared store
/// reads their deltas in the same round trip).
pub fn reload<S: Store + ?Sized>(store: &mut S, job: &ReloadJob) -> Reloaded {
    for scope in &job.forget {
        store.forget_scope(scope);
    }
    let lock: Vec<_> = job
        .scopes
        .iter()
        .filter(|(scope, _)| job.lock.contains(scope))
        .cloned()
        .collect();
    let locked = if lock.is_empty() {
        Ok(())
    } else {
        store.lock_scopes(&lock)
    };
    match locked.and_then(|()| refresh_scopes(store, &job.scopes)) {
        Ok(updates) => Reloaded {
            updates,
            error: None,
            unavailable: false,
        },
        Err(e) => Reloaded {
            updates: Vec::new(),
            error: Some(e.to_string()),
            unavailable: S::is_unavailable(&e),
        },
    }
}
