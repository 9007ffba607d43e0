//! Two engines (two nodes) sharing one PostgreSQL database and pushing to one
//! scope, interleaved: a node whose view is stale has its batch refused,
//! reloads the scope and the pushes are retried. The log stays dense, every
//! mutation is applied exactly once, a retry on the other node replays the
//! original answer, and both nodes converge.

mod common;

use std::collections::BTreeMap;

use common::{Schema, postgres_url};
use serde_json::{Value, json};
use sync_core::store::{ScopeMark, ScopeRecords};
use sync_core::{
    Engine, EngineConfig, KvApp, Mutation, Output, RequestId, SnapshotRequest, Store, Timestamp,
};
use sync_postgres::{PgOptions, PgStore};

const WALL: Timestamp = Timestamp(1_795_328_895_000);

/// Locks `doc`'s version row, failing at once if another holds it.
const LOCK_DOC: &str = "SELECT 1 FROM {schema}.sync_scopes WHERE scope = 'doc' FOR UPDATE NOWAIT";

struct Node {
    engine: Engine<KvApp>,
    store: PgStore,
    next_id: u64,
    conflicts: u32,
}

fn put(client: &str, seq: u64) -> Mutation {
    Mutation {
        id: format!("{client}:{seq}"),
        scope: "doc".to_owned(),
        name: "put".to_owned(),
        args: Some(json!({"key": format!("{client}-{seq}"), "value": seq})),
        client_id: Some(client.to_owned()),
        seq: Some(seq),
    }
}

impl Node {
    fn start(url: &str, schema: &Schema) -> Node {
        Node::start_with(url, schema.options())
    }

    fn start_with(url: &str, options: PgOptions) -> Node {
        let mut store = PgStore::connect(url, options).expect("connect");
        let engine = Engine::recover(
            KvApp::new(),
            EngineConfig::default(),
            store.load().expect("load"),
        )
        .expect("recover");
        Node {
            engine,
            store,
            next_id: 0,
            conflicts: 0,
        }
    }

    /// One push through the node, as its driver would run it: persist, and on
    /// a stale refusal reload the scopes named and push again. Returns the
    /// 200 answer.
    fn push(&mut self, m: Mutation) -> Value {
        loop {
            self.next_id += 1;
            let id = RequestId(self.next_id);
            self.engine.handle_push(WALL, id, vec![m.clone()]);
            while let Some(ready) = self.engine.poll_ready() {
                match self.store.persist(&ready.persist) {
                    Ok(()) => self.engine.advance(ready.number).expect("advance"),
                    Err(e) => {
                        assert!(!e.stale_scopes().is_empty(), "unexpected failure: {e}");
                        self.conflicts += 1;
                        self.engine
                            .handle_persist_failed(ready.number)
                            .expect("failed");
                        for scope in e.stale_scopes() {
                            let records = self.store.load_scope(scope).expect("reload");
                            let records = records.unwrap_or_else(|| ScopeRecords {
                                scope: scope.clone(),
                                ..ScopeRecords::default()
                            });
                            self.engine.reload_scope(&records).expect("reload");
                        }
                    }
                }
            }
            let answer = std::iter::from_fn(|| self.engine.poll_output())
                .find_map(|o| match o {
                    Output::Response {
                        request_id,
                        response,
                    } if request_id == id => Some(response),
                    _ => None,
                })
                .expect("an answer");
            if answer.status == 200 {
                return serde_json::from_slice(&answer.body).expect("json");
            }
            assert_eq!(answer.status, 500, "only a refused batch is retried");
        }
    }

    /// Locks `doc` in the transaction the next batch is written in (as
    /// before a batch on a scope other nodes write), checks that no one
    /// else can lock it, and returns where the engine's records of it end.
    fn lock_doc(&mut self, schema: &Schema) -> Option<ScopeMark> {
        let held = self.engine.scope_mark("doc");
        self.store
            .lock_scopes(&[("doc".to_owned(), held)])
            .expect("locked");
        let err = schema.try_sql(LOCK_DOC).expect_err("the scope is held");
        assert!(err.starts_with("55P03"), "{err}");
        held
    }

    fn snapshot(&self) -> Value {
        let req = SnapshotRequest {
            scope: "doc".into(),
            client_id: None,
        };
        serde_json::to_value(self.engine.handle_snapshot(&req)).expect("json")
    }
}

#[test]
fn interleaved_pushes_from_two_nodes_stay_dense_and_exactly_once() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "two_nodes");
    let mut a = Node::start(&url, &schema);
    let mut b = Node::start(&url, &schema);
    let mut answers = BTreeMap::new();
    for seq in 1..=15 {
        answers.insert(("alice", seq), a.push(put("alice", seq)));
        answers.insert(("bob", seq), b.push(put("bob", seq)));
    }
    assert!(
        a.conflicts + b.conflicts > 0,
        "interleaving must have made a node stale"
    );

    // alice retries seq 7 on node b: the original answer, nothing applied.
    let replay = b.push(put("alice", 7));
    assert_eq!(replay, answers[&("alice", 7)]);

    let mut reader = PgStore::connect(&url, schema.options()).expect("connect");
    let records = reader.load_scope("doc").expect("load").expect("records");
    let cursors: Vec<u64> = records.changes.iter().map(|e| e.change.cursor).collect();
    assert_eq!(
        cursors,
        (1..=30).collect::<Vec<u64>>(),
        "dense, no duplicate"
    );
    let mut keys: Vec<String> = records
        .changes
        .iter()
        .map(|e| e.change.data["key"].as_str().expect("key").to_owned())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 30, "every mutation applied exactly once");

    // Both nodes converge once they have seen the last write (b wrote last;
    // a reloads the scope as it would on a poke).
    a.engine
        .reload_scope(&a.store.load_scope("doc").expect("load").expect("records"))
        .expect("reload");
    assert_eq!(a.snapshot(), b.snapshot());
    assert_eq!(a.snapshot()["cursor"], 30);
}

/// A batch refused as stale leaves its scope locked (no other node can
/// write it) until the same store's next batch, which is written without a
/// second refusal once the scope is caught up; then the lock is gone.
#[test]
fn a_refused_batch_holds_its_scope_until_the_batch_computed_again() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "held");
    let mut a = Node::start(&url, &schema);
    let mut b = Node::start(&url, &schema);
    b.push(put("bob", 1));

    a.engine
        .handle_push(WALL, RequestId(1), vec![put("alice", 1)]);
    let ready = a.engine.poll_ready().expect("a batch");
    let refused = a.store.persist(&ready.persist).expect_err("stale");
    assert_eq!(refused.stale_scopes(), ["doc".to_owned()]);
    let err = schema
        .try_sql(LOCK_DOC)
        .expect_err("the refused store holds the scope");
    assert!(err.starts_with("55P03"), "{err}");

    // Catch up on what b wrote, push again: written in the held transaction.
    a.engine
        .handle_persist_failed(ready.number)
        .expect("failed");
    let held = a.engine.scope_mark("doc");
    let update = sync_core::store::refresh_scope(&mut a.store, "doc", held).expect("delta");
    a.engine.apply_scope_update(&update).expect("apply");
    a.engine
        .handle_push(WALL, RequestId(2), vec![put("alice", 1)]);
    let ready = a.engine.poll_ready().expect("the batch again");
    a.store
        .persist(&ready.persist)
        .expect("written under the held lock");
    a.engine.advance(ready.number).expect("advance");
    schema.try_sql(LOCK_DOC).expect("released at commit");
    assert_eq!(a.store.head("doc").expect("head"), 2);
}

#[test]
fn a_locked_scope_is_caught_up_and_written_by_the_next_batch_unrefused() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "locked");
    let mut a = Node::start(&url, &schema);
    let mut b = Node::start(&url, &schema);
    a.push(put("alice", 1));
    b.push(put("bob", 1));
    let conflicts = a.conflicts;

    // A has not seen bob's change: it locks the scope, and what it reads
    // then is all it lacks.
    let held = a.lock_doc(&schema);
    assert_eq!(held.map(|m| m.head), Some(1));
    let updates =
        sync_core::store::refresh_scopes(&mut a.store, &[("doc".to_owned(), held)]).expect("read");
    let [sync_core::store::ScopeUpdate::Delta(delta)] = &updates[..] else {
        panic!("a delta: {updates:?}");
    };
    let cursors: Vec<u64> = delta.changes.iter().map(|e| e.change.cursor).collect();
    assert_eq!(cursors, [2], "bob's change and nothing else");
    a.engine.apply_scope_update(&updates[0]).expect("apply");

    // The batch computed on top is written in the transaction holding the
    // lock: not refused.
    let answer = a.push(put("alice", 2));
    assert_eq!(a.conflicts, conflicts, "not refused: {answer}");
    schema.try_sql(LOCK_DOC).expect("released at commit");
    assert_eq!(a.store.head("doc").expect("head"), 3);
}

/// A node cut off from the database while it holds a scope's lock (between
/// a refused batch and the next, or mid-turn) cannot end its transaction,
/// and PostgreSQL cannot tell it is gone. The transaction may sit idle for
/// the node's store timeout only (`idle_in_transaction_session_timeout`),
/// so another node's push waits for less than that and is written, rather
/// than failing at its own timeout.
#[test]
fn a_node_cut_off_while_holding_a_scope_lets_it_go_within_its_timeout() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "cutoff");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let proxy = rt.block_on(testkit::tcp_proxy::TcpProxy::start("127.0.0.1:5432"));
    let via_proxy = testkit::tcp_proxy::url_via(&url, &proxy.addr);
    let timeout = std::time::Duration::from_secs(2);
    let mut a = Node::start_with(&via_proxy, schema.options().with_timeout(timeout));
    let mut b = Node::start(&url, &schema);
    a.push(put("alice", 1));

    a.lock_doc(&schema);
    proxy.silence();

    // B's own timeout is 5 s; A's transaction is ended after 2 s idle.
    let answer = b.push(put("bob", 1));
    assert_eq!(answer["results"][0]["cursor"], json!(2), "{answer}");
    assert_eq!(b.store.head("doc").expect("head"), 2);
    drop(proxy);
}

/// A node that gives up waiting for a scope's lock (its timeout passed)
/// leaves no statement waiting in PostgreSQL: the server ends it at the
/// same bound, so it neither takes the lock later nor holds up the writers
/// queued behind it.
#[test]
fn a_lock_wait_the_node_gave_up_on_ends_in_postgresql_too() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "waiter");
    let mut holder = Node::start(&url, &schema);
    holder.push(put("alice", 1));
    holder.lock_doc(&schema);

    let app = schema.name.clone();
    let sep = if url.contains('?') { '&' } else { '?' };
    let named = format!("{url}{sep}application_name={app}");
    let timeout = std::time::Duration::from_secs(1);
    let mut waiter = Node::start_with(&named, schema.options().with_timeout(timeout));
    let mark = waiter.engine.scope_mark("doc");
    let err = waiter
        .store
        .lock_scopes(&[("doc".to_owned(), mark)])
        .expect_err("the holder has the scope");
    assert!(err.stale_scopes().is_empty(), "{err}");

    // Fails (division by zero) while a session of the waiter waits for a
    // lock. The holder keeps the scope for 5 s (its own idle limit).
    let none_waiting = format!(
        "SELECT 1 / (count(*) = 0)::int FROM pg_stat_activity
         WHERE application_name = '{app}' AND wait_event_type = 'Lock'"
    );
    let mut ended = false;
    for _ in 0..20 {
        if schema.try_sql(&none_waiting).is_ok() {
            ended = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ended, "the waiter's lock wait still runs in PostgreSQL");
}

/// Keys as long as a request may carry (`Limits::max_key_bytes`: scope,
/// mutation id and client id), of characters that do not compress, are
/// stored and loaded: PostgreSQL's indexes hold them. (Longer ones are
/// refused before they reach a store; one the indexes refused would fail
/// the whole batch it is in.)
#[test]
fn keys_as_long_as_a_request_may_carry_are_stored() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "longkeys");
    let mut node = Node::start(&url, &schema);
    let max = sync_core::Limits::default().max_key_bytes;
    // Printable characters from a simple generator, so nothing compresses.
    let key = |mut x: u64| -> String {
        (0..max)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 94) as u8)
            })
            .collect()
    };
    let (id, scope, client) = (key(1), key(2), key(3));
    assert_eq!(scope.len(), max);
    let answer = node.push(Mutation {
        id: id.clone(),
        scope: scope.clone(),
        name: "put".to_owned(),
        args: Some(json!({"key": "k", "value": 1})),
        client_id: Some(client.clone()),
        seq: Some(1),
    });
    assert_eq!(answer["results"][0]["cursor"], json!(1), "{answer}");
    let mut other = PgStore::connect(&url, schema.options()).expect("connect");
    let loaded = other.load_scope(&scope).expect("load").expect("the scope");
    assert_eq!(loaded.changes.len(), 1);
    assert!(loaded.clients.iter().any(|r| r.client_id == client));
}
