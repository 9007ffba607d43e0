//! The PostgreSQL store keeps the same contract as sync-core's `MemoryStore`,
//! the reference implementation: after any sequence of batches both load the
//! same records, and a refused batch leaves nothing behind.

mod common;

use common::records::{Gen, Op, SCOPES, op};
use common::{Schema, postgres_url};
use proptest::prelude::*;
use serde_json::json;
use sync_core::store::LogEntry;
use sync_core::testing::normalize;
use sync_core::{Batch, Change, MemoryStore, Recovered, Store, Timestamp};
use sync_postgres::PgStore;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn postgres_loads_what_the_memory_store_loads(batches in prop::collection::vec(prop::collection::vec(op(), 0..6), 1..10)) {
        let Some(url) = postgres_url() else { return Ok(()) };
        let schema = Schema::fresh(&url, "contract");
        let mut memory = MemoryStore::new();
        let mut pg = PgStore::connect(&url, schema.options()).expect("connect");
        let mut generator = Gen::default();
        for ops in &batches {
            let batch = generator.batch(ops);
            memory.persist(&batch).expect("memory persist");
            pg.persist(&batch).expect("postgres persist");
        }
        let expected = normalize(memory.load().expect("memory load"));
        // A second store (another node) loads the same.
        let mut other = PgStore::connect(&url, schema.options()).expect("connect");
        prop_assert_eq!(&normalize(other.load().expect("load")), &expected);
        for scope in SCOPES {
            let want = expected.iter().find(|s| s.scope == scope).cloned();
            let got = pg.load_scope(scope).expect("load scope")
                .and_then(|s| normalize(Recovered { scopes: vec![s] }).pop());
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn a_refused_batch_leaves_nothing_behind() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "refused");
    let mut store = PgStore::connect(&url, schema.options()).expect("connect");
    let mut generator = Gen::default();
    let first = generator.batch(&[Op::Changes(0, 3, 1)]);
    store.persist(&first).expect("first batch");
    let before = store.load().expect("load");

    // A trim, an id and a client record around a cursor already stored.
    let mut bad = generator.batch(&[Op::Trim(0, 2), Op::Id(1, 1), Op::Client(1, 0, 0, true)]);
    bad.changes.push(first.changes[2].clone());
    let err = store
        .persist(&bad)
        .expect_err("a duplicate cursor is refused");
    assert!(!err.is_unavailable(), "{err}");
    assert_eq!(store.load().expect("load"), before);

    let next = generator.batch(&[Op::Changes(0, 1, 1)]);
    store.persist(&next).expect("the store keeps working");
    assert_eq!(store.head("a").expect("head"), 4);
    assert_eq!(store.head("never").expect("head"), 0);
}

#[test]
fn a_store_that_missed_another_nodes_write_is_refused_until_it_reloads() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "stale");
    let mut one = PgStore::connect(&url, schema.options()).expect("connect");
    let mut two = PgStore::connect(&url, schema.options()).expect("connect");
    one.load().expect("load");
    two.load().expect("load");
    let mut g1 = Gen::default();
    let mut g2 = Gen::default();
    one.persist(&g1.batch(&[Op::Changes(0, 2, 1)]))
        .expect("first writer");
    // Node two still believes scope "a" is empty: its batch would reuse
    // cursors 1 and 2.
    let err = two
        .persist(&g2.batch(&[Op::Changes(0, 1, 1), Op::Changes(1, 1, 1)]))
        .expect_err("stale");
    assert_eq!(err.stale_scopes(), ["a".to_owned()]);
    assert!(!err.is_unavailable());
    // Nothing of it was written, not even the scope it was current on.
    assert_eq!(two.head("b").expect("head"), 0);

    let reloaded = two.load_scope("a").expect("reload").expect("records");
    assert_eq!(reloaded.changes.len(), 2);
    let mut g2 = Gen {
        heads: [2, 0, 0],
        ..Gen::default()
    };
    two.persist(&g2.batch(&[Op::Changes(0, 1, 1)]))
        .expect("current again");
    assert_eq!(two.head("a").expect("head"), 3);
    // A scope the engine did not take the reload of is stale again.
    two.forget_scope("a");
    let err = two
        .persist(&g2.batch(&[Op::Changes(0, 1, 1)]))
        .expect_err("forgotten");
    assert_eq!(err.stale_scopes(), ["a".to_owned()]);
    // A refused store holds the scope for its next batch; gone, it lets go.
    drop(two);
    // Now node one is the stale one.
    let err = one
        .persist(&g1.batch(&[Op::Changes(0, 1, 1)]))
        .expect_err("stale");
    assert_eq!(err.stale_scopes(), ["a".to_owned()]);
}

/// Nodes started together on a new schema (a cluster's first start) all
/// connect: one creates the schema and its tables, the others wait for it.
#[test]
fn nodes_starting_together_on_a_new_schema_all_connect() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "together");
    let connected: Vec<_> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PgStore::connect(&url, schema.options()).map(drop)))
            .collect();
        starts
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    for result in connected {
        result.expect("every node connects");
    }
}

#[test]
fn refuses_a_database_from_a_newer_schema() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "future");
    drop(PgStore::connect(&url, schema.options()).expect("connect"));
    schema.sql(&format!(
        "UPDATE \"{{schema}}\".sync_schema SET version = {}",
        sync_postgres::SCHEMA_VERSION + 1
    ));
    let err = PgStore::connect(&url, schema.options()).expect_err("must refuse");
    assert!(
        matches!(err, sync_postgres::Error::SchemaTooNew { found, .. } if found == sync_postgres::SCHEMA_VERSION + 1),
        "{err}"
    );
}

/// Writing batches needs a temporary function on the writing connection: a
/// user without the privilege learns so when connecting, with the grant that
/// fixes it, not from every push failing later.
#[test]
fn a_user_who_may_not_create_temporary_objects_is_told_at_connect() {
    let Some(url) = postgres_url() else { return };
    let admin = Schema::fresh(&url, "notemp");
    let (role, database) = (
        format!("sync_notemp_{}", std::process::id()),
        format!("sync_notemp_{}", std::process::id()),
    );
    let cleanup = format!("DROP DATABASE IF EXISTS {database}; DROP ROLE IF EXISTS {role}");
    for sql in cleanup.split("; ") {
        admin.sql(sql);
    }
    admin.sql(&format!("CREATE ROLE {role} LOGIN"));
    admin.sql(&format!("CREATE DATABASE {database} OWNER {role}"));
    admin.sql(&format!(
        "REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC, {role}"
    ));
    // The same server, as that user, in that database.
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let host_and_db = rest.split_once('@').map_or(rest, |(_, h)| h);
    let host = host_and_db.split('/').next().unwrap_or(host_and_db);
    let theirs = format!("{scheme}://{role}@{host}/{database}");
    let result = PgStore::connect(&theirs, sync_postgres::PgOptions::default());
    admin.sql(&format!("GRANT TEMPORARY ON DATABASE {database} TO {role}"));
    let granted = PgStore::connect(&theirs, sync_postgres::PgOptions::default()).map(drop);
    for sql in cleanup.split("; ") {
        admin.sql(sql);
    }
    let err = result.expect_err("no temporary objects allowed");
    assert!(matches!(err, sync_postgres::Error::Config(_)), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "GRANT TEMPORARY ON DATABASE \"{database}\" TO \"{role}\""
        )),
        "{err}"
    );
    granted.expect("connects once granted");
}

/// The connection batches are written on stays out of the pool once used:
/// a pool of one reader still reads after a write, instead of waiting for a
/// connection that never comes back.
#[test]
fn a_pool_of_one_still_reads_after_a_write() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "poolone");
    let options = schema
        .options()
        .with_pool_size(1)
        .with_timeout(std::time::Duration::from_secs(2));
    let mut store = PgStore::connect(&url, options).expect("connect");
    let mut generator = Gen::default();
    let batch = generator.batch(&[Op::Changes(0, 3, 1)]);
    store.persist(&batch).expect("persist");
    let loaded = store.load().expect("load after a write");
    assert_eq!(loaded.scopes.len(), 1, "{loaded:?}");
    store
        .persist(&generator.batch(&[Op::Changes(0, 1, 1)]))
        .expect("and write again");
}

#[test]
fn refuses_numbers_postgres_cannot_hold() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "range");
    let mut store = PgStore::connect(&url, schema.options()).expect("connect");
    let batch = Batch {
        changes: vec![LogEntry {
            change: Change {
                cursor: u64::MAX,
                scope: "a".into(),
                time: Timestamp::from_millis(0),
                data: json!(null),
            },
            group_end: u64::MAX,
        }],
        ..Batch::default()
    };
    let err = store.persist(&batch).expect_err("out of range");
    assert!(
        matches!(
            err,
            sync_postgres::Error::Column(sync_core::store::columns::ColumnError::OutOfRange {
                what: "cursor",
                ..
            })
        ),
        "{err}"
    );
    assert!(store.load().expect("load").scopes.is_empty());
}

/// PostgreSQL ending the store's sessions (a restart, an operator's
/// `pg_terminate_backend`) sends each an error (`57P01`) before closing it:
/// reads, which change nothing, are run again on a new connection; the
/// batch that meets it fails as unavailable (503), not as refused, and the
/// store reconnects for the next one. The URL's `application_name` names
/// the store's connections.
#[test]
fn sessions_the_server_ends_fail_as_unavailable_and_are_replaced() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "ended");
    let name = format!("{}_node", schema.name);
    let sep = if url.contains('?') { '&' } else { '?' };
    let named = format!("{url}{sep}application_name={name}");
    let mut store = PgStore::connect(&named, schema.options()).expect("connect");
    let mut generator = Gen::default();
    store
        .persist(&generator.batch(&[Op::Changes(0, 1, 1)]))
        .expect("first batch");
    let end_sessions = || {
        schema.sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{name}'"
        ))
    };
    end_sessions();
    let batch = generator.batch(&[Op::Changes(0, 1, 1)]);
    let err = store.persist(&batch).expect_err("its session was ended");
    assert!(err.is_unavailable(), "{err}");
    store.persist(&batch).expect("written on a new session");
    // A reader now waits in the pool; its session is ended too.
    assert_eq!(store.head("a").expect("head"), 2);
    end_sessions();
    let read = store
        .load_scope("a")
        .expect("read again on a new connection");
    assert_eq!(read.map(|s| s.changes.len()), Some(2));
}

#[test]
fn an_unreachable_server_fails_fast_and_clearly() {
    // Nothing listens on port 1: connecting is refused at once.
    let options =
        sync_postgres::PgOptions::default().with_timeout(std::time::Duration::from_secs(2));
    let err =
        PgStore::connect("postgres://postgres@127.0.0.1:1/test", options).expect_err("unreachable");
    assert!(err.is_unavailable(), "{err}");
}

#[test]
fn a_node_hears_other_nodes_commits_but_not_its_own() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "watch");
    let mut one = PgStore::connect(&url, schema.options()).expect("connect");
    let mut two = PgStore::connect(&url, schema.options()).expect("connect");
    let (tx, rx) = std::sync::mpsc::channel();
    two.watch(move |changed| {
        let _ = tx.send(changed);
    });
    // The listener connects in the background: write until it hears one.
    let wait = std::time::Duration::from_secs(10);
    let mut g2 = Gen::default();
    two.load().expect("load");
    two.persist(&g2.batch(&[Op::Changes(2, 1, 1)]))
        .expect("own write");
    let mut g1 = Gen::default();
    let mut heard = None;
    for _ in 0..20 {
        one.load().expect("load");
        g1.heads = [one.head("a").expect("head"), 0, 0];
        one.persist(&g1.batch(&[Op::Changes(0, 1, 1)]))
            .expect("write");
        match rx.recv_timeout(wait / 20) {
            Ok(sync_postgres::Changed::Everything) | Err(_) => {}
            Ok(changed) => {
                heard = Some(changed);
                break;
            }
        }
    }
    assert_eq!(heard, Some(sync_postgres::Changed::Scope("a".into())));
    // Its own write of scope "user:é" was never reported.
    while let Ok(changed) = rx.try_recv() {
        assert_ne!(changed, sync_postgres::Changed::Scope("user:é".into()));
    }
}
