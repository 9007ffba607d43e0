//! A node that holds a scope reads only what other nodes wrote after it: the
//! delta, added to what the node held, must be exactly what a full load
//! returns, and the node's version must be current afterwards.

mod common;

use common::records::{Gen, Op, SCOPES, op};
use common::{Schema, postgres_url};
use proptest::prelude::*;
use sync_core::store::{ScopeRecords, ScopeUpdate, refresh_scope};
use sync_core::testing::normalize;
use sync_core::{Batch, Recovered, Store};
use sync_postgres::PgStore;

fn norm(r: ScopeRecords) -> Vec<ScopeRecords> {
    normalize(Recovered { scopes: vec![r] })
}

/// Brings `held` up to date through `reader` and checks it against a full
/// load by `check`; returns whether a delta was used.
fn follow(reader: &mut PgStore, check: &mut PgStore, held: &mut ScopeRecords) -> bool {
    let scope = held.scope.clone();
    let full = check
        .load_scope(&scope)
        .expect("full load")
        .unwrap_or_else(|| ScopeRecords::empty(&scope));
    let update = refresh_scope(reader, &scope, Some(held.mark())).expect("refresh");
    let delta = match update {
        ScopeUpdate::Delta(delta) => {
            assert!(
                delta
                    .changes
                    .iter()
                    .all(|e| e.change.cursor > held.mark().head),
                "only new changes"
            );
            held.apply_delta(&delta).expect("the delta follows");
            true
        }
        ScopeUpdate::Full(records) => {
            assert!(
                records.base != held.base || norm(held.clone()).is_empty(),
                "a full load only after a trim or for a scope never held: {held:?}"
            );
            *held = records;
            false
        }
    };
    assert_eq!(norm(held.clone()), norm(full.clone()), "scope {scope}");
    *held = full;
    // The reader's version is current: a batch checking the scope passes.
    reader
        .persist(&Batch {
            verify: vec![scope],
            ..Batch::default()
        })
        .expect("current after the delta");
    delta
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn a_delta_adds_what_a_full_load_adds(
        rounds in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(op(), 0..6), 0..4), 1..6)
    ) {
        let Some(url) = postgres_url() else { return Ok(()) };
        let schema = Schema::fresh(&url, "delta");
        let mut writer = PgStore::connect(&url, schema.options()).expect("connect");
        let mut reader = PgStore::connect(&url, schema.options()).expect("connect");
        let mut check = PgStore::connect(&url, schema.options()).expect("connect");
        reader.load().expect("load");
        let mut held: Vec<ScopeRecords> = SCOPES.iter().map(|s| ScopeRecords::empty(*s)).collect();
        let mut generator = Gen::default();
        for batches in &rounds {
            for ops in batches {
                let mut batch = generator.batch(ops);
                // A trim to cursor 1 drops nothing and no engine writes one;
                // its base is not told apart from none (see `ScopeMark`).
                batch.trims.retain(|t| t.before > 1);
                writer.persist(&batch).expect("persist");
            }
            for h in &mut held {
                follow(&mut reader, &mut check, h);
            }
        }
    }
}

#[test]
fn a_scope_held_and_written_elsewhere_is_read_as_a_delta() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "delta_unit");
    let mut writer = PgStore::connect(&url, schema.options()).expect("connect");
    let mut reader = PgStore::connect(&url, schema.options()).expect("connect");
    let mut check = PgStore::connect(&url, schema.options()).expect("connect");
    let mut g = Gen::default();
    writer
        .persist(&g.batch(&[
            Op::Changes(0, 3, 1),
            Op::Client(0, 0, 0, true),
            Op::Id(0, 1),
        ]))
        .expect("persist");
    let mut held = reader.load_scope("a").expect("load").expect("records");
    writer
        .persist(&g.batch(&[
            Op::Changes(0, 2, 2),
            Op::Client(0, 0, 1, true),
            Op::Id(0, 2),
        ]))
        .expect("persist");
    assert!(follow(&mut reader, &mut check, &mut held), "a delta");
    // Expired ids: the delta lists every live one.
    writer
        .persist(&g.batch(&[Op::Expire(0, 1)]))
        .expect("persist");
    let update = refresh_scope(&mut reader, "a", Some(held.mark())).expect("refresh");
    let ScopeUpdate::Delta(delta) = &update else {
        panic!("a delta: {update:?}")
    };
    assert!(delta.ids_complete);
    assert_eq!(delta.ids.len(), 1);
    held.apply_delta(delta).expect("follows");
    assert_eq!(
        norm(held.clone()),
        norm(check.load_scope("a").unwrap().unwrap())
    );
    // Nothing new: an empty delta, without reading the tables.
    let update = refresh_scope(&mut reader, "a", Some(held.mark())).expect("refresh");
    assert!(
        matches!(&update, ScopeUpdate::Delta(d) if d.is_empty()),
        "{update:?}"
    );
    // A trim elsewhere: loaded whole.
    g.durable = g.heads;
    writer.persist(&g.batch(&[Op::Trim(0, 1)])).expect("trim");
    assert!(!follow(&mut reader, &mut check, &mut held), "a full load");
    // A forgotten scope (the engine did not take the last read) is read
    // again from where the node was before that read: still a delta, and
    // it ends where everything else does.
    writer
        .persist(&g.batch(&[Op::Changes(0, 1, 1)]))
        .expect("persist");
    assert!(follow(&mut reader, &mut check, &mut held), "a delta");
    reader.forget_scope("a");
    let update = refresh_scope(&mut reader, "a", Some(held.mark())).expect("refresh");
    assert!(matches!(update, ScopeUpdate::Delta(_)), "{update:?}");
    // Forgotten without a read since a write, it knows no version: whole.
    let mut lone = PgStore::connect(&url, schema.options()).expect("connect");
    lone.forget_scope("a");
    let update = refresh_scope(&mut lone, "a", Some(held.mark())).expect("refresh");
    assert!(matches!(update, ScopeUpdate::Full(_)), "{update:?}");
}

/// Schema 1, as its migration created it.
const SCHEMA_1: &str = "CREATE TABLE sync_schema (version INT NOT NULL);
     INSERT INTO sync_schema VALUES (1);
     CREATE TABLE sync_changes (scope TEXT NOT NULL, cursor BIGINT NOT NULL,
         group_end BIGINT NOT NULL, time BIGINT NOT NULL, data TEXT NOT NULL,
         PRIMARY KEY (scope, cursor));
     CREATE TABLE sync_clients (scope TEXT NOT NULL, client_id TEXT NOT NULL,
         seq BIGINT NOT NULL, keep_from BIGINT NOT NULL, result TEXT NOT NULL,
         PRIMARY KEY (scope, client_id, seq));
     CREATE TABLE sync_ids (scope TEXT NOT NULL, id TEXT NOT NULL, time BIGINT NOT NULL,
         result TEXT NOT NULL, PRIMARY KEY (scope, id));
     CREATE TABLE sync_bases (scope TEXT NOT NULL PRIMARY KEY, before BIGINT NOT NULL,
         base TEXT NOT NULL);
     CREATE TABLE sync_scopes (scope TEXT NOT NULL PRIMARY KEY, version BIGINT NOT NULL);
     INSERT INTO sync_changes VALUES ('a', 1, 1, 5, '{\"op\":\"put\",\"key\":\"k\",\"value\":1}');
     INSERT INTO sync_clients VALUES ('a', 'c1', 1, 1, '{\"ok\":true,\"cursor\":1}');
     INSERT INTO sync_ids VALUES ('a', 'm1', 5, '{\"ok\":true,\"cursor\":1}');
     INSERT INTO sync_scopes VALUES ('a', 1);";

#[test]
fn a_schema_1_database_is_migrated_and_followed_by_deltas() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema::fresh(&url, "migrate");
    schema.sql(&format!(
        "CREATE SCHEMA \"{{schema}}\"; SET search_path = \"{{schema}}\"; {SCHEMA_1}"
    ));
    let mut reader = PgStore::connect(&url, schema.options()).expect("migrates");
    let mut writer = PgStore::connect(&url, schema.options()).expect("connect");
    let mut check = PgStore::connect(&url, schema.options()).expect("connect");
    let mut held = reader
        .load_scope("a")
        .expect("load")
        .expect("old rows load");
    assert_eq!(
        (held.changes.len(), held.clients.len(), held.ids.len()),
        (1, 1, 1)
    );
    writer.load().expect("load");
    let mut g = Gen {
        heads: [1, 0, 0],
        seqs: [[1, 0], [0, 0], [0, 0]],
        ..Gen::default()
    };
    writer
        .persist(&g.batch(&[
            Op::Changes(0, 1, 1),
            Op::Client(0, 0, 1, true),
            Op::Id(0, 2),
        ]))
        .expect("persist");
    assert!(follow(&mut reader, &mut check, &mut held), "a delta");
    assert_eq!(
        (held.changes.len(), held.clients.len(), held.ids.len()),
        (2, 2, 2)
    );
}
