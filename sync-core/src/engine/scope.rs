//! Everything the engine knows about one scope: its log, and two views of its
//! state and dedupe records, the committed one (what readers see) and the
//! working one (what mutators see, including records not yet durable).
//!
//! A scope is self-contained so that it can be built from a store's
//! [`ScopeRecords`] alone: this is the unit a shared-database driver would
//! (re)load and serialize on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::log::Log;
use crate::app::App;
use crate::protocol::{MutationResult, Timestamp};
use crate::store::{ClientRecord, IdRecord, LogEntry, ScopeRecords, Trim};

/// A client's applied sequence and its retained results.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientSeq {
    pub(crate) last: u64,
    /// Shared between the working and committed views (results are large).
    pub(crate) results: BTreeMap<u64, Arc<MutationResult>>,
}

/// State and dedupe records at one point of the log.
#[derive(Debug, Clone)]
pub(crate) struct View<S> {
    pub(crate) state: S,
    pub(crate) head: u64,
    pub(crate) clients: BTreeMap<String, ClientSeq>,
    /// Looked up by id, never iterated into an output, so a hash map: a
    /// push with a fresh id looks it up and inserts it, and an ordered map
    /// of string keys costs a cache miss per comparison. Records are shared
    /// between the working and the committed view.
    pub(crate) ids: HashMap<String, Arc<IdRecord>>,
    /// The same ids by when they were recorded, for expiry.
    pub(crate) ids_by_time: BTreeSet<(Timestamp, String)>,
}

impl<S: Default> View<S> {
    fn empty(head: u64, state: S) -> Self {
        View {
            state,
            head,
            clients: BTreeMap::new(),
            ids: HashMap::new(),
            ids_by_time: BTreeSet::new(),
        }
    }
}

impl<S> View<S> {
    pub(crate) fn absorb<A: App<State = S>>(&mut self, app: &A, entry: &LogEntry) {
        app.absorb(&mut self.state, &entry.change.data);
        self.head = entry.change.cursor;
    }

    pub(crate) fn record_client(&mut self, r: &ClientRecord) {
        self.record_client_shared(r, Arc::new(r.result.clone()));
    }

    /// Records `r` with its result already shared.
    pub(crate) fn record_client_shared(&mut self, r: &ClientRecord, result: Arc<MutationResult>) {
        let c = match self.clients.get_mut(&r.client_id) {
            Some(c) => c,
            None => self.clients.entry(r.client_id.clone()).or_default(),
        };
        c.last = c.last.max(r.seq);
        c.results.insert(r.seq, result);
        while let Some((&first, _)) = c.results.first_key_value() {
            if first >= r.keep_from {
                break;
            }
            c.results.remove(&first);
        }
    }

    pub(crate) fn record_id(&mut self, r: &IdRecord) {
        self.record_id_shared(Arc::new(r.clone()));
    }

    /// Records `r`, already shared.
    pub(crate) fn record_id_shared(&mut self, r: Arc<IdRecord>) {
        let (time, id) = (r.time, r.id.clone());
        if let Some(old) = self.ids.insert(id.clone(), r) {
            self.ids_by_time.remove(&(old.time, id.clone()));
        }
        self.ids_by_time.insert((time, id));
    }

    pub(crate) fn expire_id(&mut self, id: &str) {
        if let Some(old) = self.ids.remove(id) {
            self.ids_by_time.remove(&(old.time, old.id.clone()));
        }
    }

    pub(crate) fn client_seq(&self, client_id: &str) -> u64 {
        self.clients.get(client_id).map_or(0, |c| c.last)
    }
}

/// One scope: its log and its committed and working views.
#[derive(Debug, Clone)]
pub(crate) struct ScopeData<S> {
    pub(crate) log: Log,
    pub(crate) committed: View<S>,
    pub(crate) working: View<S>,
    /// The latest durable trim base (snapshot value at `log.first_kept() - 1`).
    pub(crate) base: Option<Value>,
}

impl<S: Clone + Default> ScopeData<S> {
    pub(crate) fn new() -> Self {
        let view = View::empty(0, S::default());
        ScopeData {
            log: Log::new(),
            committed: view.clone(),
            working: view,
            base: None,
        }
    }

    /// Rebuilds a scope from its durable records.
    pub(crate) fn from_records<A: App<State = S>>(
        app: &A,
        records: &ScopeRecords,
    ) -> Result<Self, String> {
        let (mut log, mut view, base) = match &records.base {
            Some(b) => {
                let state = app
                    .restore(&b.base)
                    .map_err(|e| format!("trim base does not restore: {e}"))?;
                let before = b.before.max(1);
                (
                    Log::starting_at(before),
                    View::empty(before - 1, state),
                    Some(b.base.clone()),
                )
            }
            None => (Log::new(), View::empty(0, S::default()), None),
        };
        for e in &records.changes {
            if e.change.cursor != log.working_head() + 1 {
                return Err(format!(
                    "log is not dense: cursor {} follows {}",
                    e.change.cursor,
                    log.working_head()
                ));
            }
            view.absorb(app, e);
            log.append(e.clone());
        }
        log.commit_to(log.working_head());
        let mut clients: Vec<&ClientRecord> = records.clients.iter().collect();
        clients.sort_by_key(|c| (c.client_id.as_str(), c.seq));
        for c in clients {
            view.record_client(c);
        }
        for r in &records.ids {
            view.record_id(r);
        }
        Ok(ScopeData {
            log,
            committed: view.clone(),
            working: view,
            base,
        })
    }

    /// Throws away every working change and record that is not durable.
    pub(crate) fn rollback(&mut self) {
        self.log.rollback();
        self.working = self.committed.clone();
    }

    /// The snapshot value of the committed state at cursor `before - 1`.
    pub(crate) fn base_at<A: App<State = S>>(&self, app: &A, before: u64) -> Result<Value, String> {
        let mut state = match &self.base {
            Some(b) => app.restore(b).map_err(|e| e.to_string())?,
            None => S::default(),
        };
        for e in self.log.committed_before(before) {
            app.absorb(&mut state, &e.change.data);
        }
        Ok(app.snapshot(&state))
    }

    /// Applies a durable trim to the log and the base.
    pub(crate) fn apply_trim(&mut self, trim: &Trim) {
        if trim.before > self.log.first_kept() {
            self.log.trim(trim.before);
            self.base = Some(trim.base.clone());
        }
    }
}
