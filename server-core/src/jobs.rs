//! The store procedures behind [`Output::Persist`](crate::Output::Persist)
//! and [`Output::Reload`](crate::Output::Reload): what a loop runs, on a
//! thread where blocking is allowed, before it reports back. They are not
//! part of the state machine (they do the store's IO), but they belong with
//! it: which scopes a refused batch reloads, and from where, is the core's
//! policy, and the simulator runs these same functions against its store.

use sync_core::Store;
use sync_core::store::refresh_scope;

use crate::output::{PersistFailure, PersistJob, ReloadJob, Reloaded};

/// Persists `job`'s batch. When a shared store refuses it as stale, reads
/// what another node wrote to the refused scopes while still holding the
/// store, so no batch of this node slips in between.
pub fn persist<S: Store + ?Sized>(store: &mut S, job: &PersistJob) -> Result<(), PersistFailure> {
    for scope in &job.forget {
        store.forget_scope(scope);
    }
    store.persist(&job.batch).map_err(|e| {
        let reloaded = S::stale_scopes(&e)
            .into_iter()
            .filter_map(|scope| {
                let held = job.marks.get(&scope).copied().flatten();
                refresh_scope(store, &scope, held).ok()
            })
            .collect();
        PersistFailure {
            message: e.to_string(),
            unavailable: S::is_unavailable(&e),
            reloaded,
        }
    })
}

/// Reads `job`'s scopes, each from where this node's records end.
pub fn reload<S: Store + ?Sized>(store: &mut S, job: &ReloadJob) -> Reloaded {
    for scope in &job.forget {
        store.forget_scope(scope);
    }
    let mut out = Reloaded::default();
    for (scope, held) in &job.scopes {
        match refresh_scope(store, scope, *held) {
            Ok(update) => out.updates.push(update),
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        }
    }
    out
}
