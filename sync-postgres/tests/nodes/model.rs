//! What the nodes acknowledged, the mutations the clients send, and the
//! checks of everything the nodes answer against it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sync_core::testing::Decisions;
use sync_core::{Change, Mutation, MutationResult, PullResponse, SnapshotResponse};

/// The scopes every node writes.
pub(crate) const SCOPES: [&str; 3] = ["a", "b", "c"];
/// Keys written by `incr` (which reads them) and by `put` (which does not).
const INCREMENTED: [&str; 2] = ["x", "y"];
const PUT: [&str; 2] = ["p", "q"];
/// The wall time of a run's start, as the nodes stamp changes.
pub(crate) const WALL_BASE: u64 = 1_795_328_895_000;
/// Short, so id records expire during a run.
pub(crate) const ID_RETENTION_MS: u64 = 3_000;

/// A mutation answered with a result that was recorded.
struct Acked {
    mutation: Mutation,
    result: MutationResult,
    /// Wall time of the answer (id records expire after it).
    at_ms: u64,
}

/// What was acknowledged.
#[derive(Default)]
pub(crate) struct Model {
    acked: BTreeMap<String, Acked>,
    /// Per scope: the acknowledged change at each cursor.
    log: BTreeMap<String, BTreeMap<u64, Change>>,
    /// Per scope: the cursor of each acknowledged mutation's last change.
    ends: BTreeSet<(String, u64)>,
    /// Per scope and key: acknowledged increments.
    increments: BTreeMap<(String, String), i64>,
    /// Per scope and client: the next sequence number.
    next_seq: BTreeMap<(String, String), u64>,
    /// Per scope and client: the mutation sent with the next sequence
    /// number and not yet recorded (it goes out again before a new one).
    unrecorded: BTreeMap<(String, String), Mutation>,
    next_id: u64,
}

impl Model {
    // ---- the mutations clients send ----

    /// A mutation not sent before on `scope`: with a sequence of one of
    /// `clients` (at most one per client and scope in a push: `used`), or
    /// an id alone. A client whose last mutation was not recorded sends
    /// that one again instead.
    pub(crate) fn fresh(
        &mut self,
        rng: &mut Decisions,
        scope: &str,
        clients: &[String],
        used: &mut BTreeSet<String>,
    ) -> Mutation {
        self.next_id += 1;
        let n = self.next_id;
        let (kind, pick) = (rng.below(10), rng.below(2) as usize);
        let (name, args) = match kind {
            0..=4 => ("incr", json!({ "key": INCREMENTED[pick] })),
            5..=7 => ("put", json!({ "key": PUT[pick], "value": n })),
            8 => ("pair", json!({"key": "r"})),
            _ => ("fail", json!({"transient": false})),
        };
        let mut m = Mutation {
            id: format!("m{n}"),
            scope: scope.to_owned(),
            name: name.to_owned(),
            args: Some(args),
            client_id: None,
            seq: None,
        };
        let client = &clients[rng.below(clients.len() as u64) as usize];
        if rng.chance(0.5) && used.insert(format!("{scope}/{client}")) {
            let key = (scope.to_owned(), client.clone());
            if let Some(again) = self.unrecorded.get(&key) {
                return again.clone();
            }
            let seq = self.next_seq.get(&key).copied().unwrap_or(1);
            m.id = format!("{client}:{scope}:{seq}");
            m.client_id = Some(client.clone());
            m.seq = Some(seq);
            self.unrecorded.insert(key, m.clone());
        }
        m
    }

    /// The mutations of one push: one to three, each on a random scope, a
    /// fifth of them sent before (see [`Model::answered_before`], with
    /// `now_ms`), the others fresh (see [`Model::fresh`]); none twice, and
    /// at most one per client and scope.
    pub(crate) fn push(
        &mut self,
        rng: &mut Decisions,
        clients: &[String],
        now_ms: Option<u64>,
    ) -> Vec<Mutation> {
        let mut mutations: Vec<Mutation> = Vec::new();
        let mut used = BTreeSet::new();
        for _ in 0..1 + rng.below(3) {
            let scope = SCOPES[rng.below(SCOPES.len() as u64) as usize];
            let again = match rng.chance(0.2) {
                true => self.answered_before(rng, now_ms),
                false => None,
            };
            let m = again.unwrap_or_else(|| self.fresh(rng, scope, clients, &mut used));
            let taken = mutations.iter().any(|o| {
                o.id == m.id
                    || (o.client_id.is_some()
                        && (&o.client_id, &o.scope) == (&m.client_id, &m.scope))
            });
            if !taken {
                mutations.push(m);
            }
        }
        mutations
    }

    /// One acknowledged mutation whose answer is still kept: a client's
    /// (its results are kept by sequence), or, when `now_ms` is given, one
    /// without a client whose id record cannot have expired yet.
    pub(crate) fn answered_before(
        &self,
        rng: &mut Decisions,
        now_ms: Option<u64>,
    ) -> Option<Mutation> {
        let kept: Vec<&Acked> = self
            .acked
            .values()
            .filter(|a| {
                a.mutation.client_id.is_some()
                    || now_ms.is_some_and(|now| now < a.at_ms + ID_RETENTION_MS / 2)
            })
            .collect();
        if kept.is_empty() {
            return None;
        }
        let pick = rng.below(kept.len() as u64) as usize;
        Some(kept[pick].mutation.clone())
    }

    // ---- what was acknowledged ----

    /// Checks one answer to a push and records what it acknowledged.
    pub(crate) fn answered(&mut self, m: &Mutation, r: &MutationResult, at_ms: u64) {
        if let Some(first) = self.acked.get(&m.id) {
            assert_eq!(
                r, &first.result,
                "{} pushed again: its first answer, not {r:?}",
                m.id
            );
            return;
        }
        if r.code.as_deref() == Some("internal_error") {
            // Not recorded: the client sends it again.
            return;
        }
        if let Some(client) = &m.client_id {
            let key = (m.scope.clone(), client.clone());
            let seq = self.next_seq.entry(key.clone()).or_insert(1);
            assert_eq!(m.seq, Some(*seq), "only the next sequence is recorded");
            *seq += 1;
            self.unrecorded.remove(&key);
        }
        for change in &r.changes {
            assert_eq!(change.scope, m.scope, "{}: a change of its scope", m.id);
            let log = self.log.entry(m.scope.clone()).or_default();
            if let Some(other) = log.insert(change.cursor, change.clone()) {
                panic!(
                    "{}: cursor {} of {} given twice ({other:?})",
                    m.id, change.cursor, m.scope
                );
            }
        }
        if let Some(last) = r.changes.last() {
            self.ends.insert((m.scope.clone(), last.cursor));
        }
        assert_eq!(r.ok, !r.changes.is_empty(), "{}: {r:?}", m.id);
        if r.ok && m.name == "incr" {
            let args = m.args.as_ref();
            let key = args.and_then(|a| a["key"].as_str()).unwrap_or("");
            *self
                .increments
                .entry((m.scope.clone(), key.to_owned()))
                .or_default() += 1;
        }
        let result = r.clone();
        let mutation = m.clone();
        self.acked.insert(
            m.id.clone(),
            Acked {
                mutation,
                result,
                at_ms,
            },
        );
    }

    /// The last acknowledged cursor of `scope`.
    pub(crate) fn head(&self, scope: &str) -> u64 {
        self.log
            .get(scope)
            .and_then(|l| l.keys().next_back().copied())
            .unwrap_or(0)
    }

    /// The state the acknowledged changes up to `cursor` make, as a
    /// snapshot shows it.
    pub(crate) fn state_at(&self, scope: &str, cursor: u64) -> Value {
        let mut state = serde_json::Map::new();
        let log = self.log.get(scope).into_iter();
        for (_, change) in log.flat_map(|l| l.range(..=cursor)) {
            let key = change.data["key"].as_str().expect("a key").to_owned();
            match change.data["op"].as_str() {
                Some("put") => {
                    state.insert(key, change.data["value"].clone());
                }
                Some("del") => {
                    state.remove(&key);
                }
                other => panic!("an unknown change {other:?}"),
            }
        }
        Value::Object(state)
    }

    // ---- checks of what nodes answer ----

    /// A poke of `scope` at `cursor` names an acknowledged mutation's end.
    pub(crate) fn check_poke(&self, scope: &str, cursor: u64) {
        assert!(
            self.ends.contains(&(scope.to_owned(), cursor)),
            "{scope} poked at {cursor}, which no acknowledged mutation ends at"
        );
    }

    /// A pull page of `scope` from `cursor` with `limit`: dense from the
    /// cursor, the acknowledged changes, ending with a mutation's last
    /// change (a page may hold more than the limit rather than split one).
    pub(crate) fn check_page(&self, scope: &str, cursor: u64, limit: u64, page: &PullResponse) {
        let is_end = |c: &Change| self.ends.contains(&(scope.to_owned(), c.cursor));
        if let Some(last) = page.changes.last() {
            assert!(is_end(last), "a mutation split: {page:?}");
            let stop = (page.changes.iter().enumerate())
                .position(|(i, c)| i + 1 >= limit as usize && is_end(c));
            let within = stop.is_none_or(|i| i + 1 == page.changes.len());
            assert!(within, "a page past its limit of {limit}: {page:?}");
        }
        for (expected, change) in (cursor + 1..).zip(&page.changes) {
            assert_eq!(change.cursor, expected, "dense from {cursor}: {page:?}");
            let acked = self.log.get(scope).and_then(|l| l.get(&change.cursor));
            assert_eq!(Some(change), acked, "{scope} at {}", change.cursor);
        }
    }

    /// A snapshot of `scope`: the state at its cursor (a node behind may
    /// answer an older one, never one that mixes).
    pub(crate) fn check_snapshot(&self, scope: &str, snapshot: &SnapshotResponse) {
        assert!(snapshot.cursor <= self.head(scope), "{snapshot:?}");
        let state = self.state_at(scope, snapshot.cursor);
        assert_eq!(snapshot.data, state, "{scope} at {}", snapshot.cursor);
    }

    /// The acknowledged log of `scope` is dense, `incr` counted every
    /// acknowledged increment once, and `stored` (what the database holds
    /// of the scope from `first` on) is that log.
    pub(crate) fn check_stored(&self, scope: &str, first: u64, stored: &[&Change]) {
        let head = self.head(scope);
        let acked = self.log.get(scope).cloned().unwrap_or_default();
        let cursors: Vec<u64> = acked.keys().copied().collect();
        assert_eq!(cursors, (1..=head).collect::<Vec<_>>(), "{scope}: dense");
        let expected: Vec<&Change> = acked.range(first..).map(|(_, c)| c).collect();
        assert_eq!(stored, expected, "{scope}: the stored log");
        let state = self.state_at(scope, head);
        for ((s, key), count) in &self.increments {
            if s == scope {
                let counted = &state[key];
                assert_eq!(
                    counted,
                    &json!(count),
                    "{scope}: every {key} increment once"
                );
            }
        }
    }
}
