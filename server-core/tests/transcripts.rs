//! The server core as transcripts: inputs in, every output rendered, with
//! store jobs run (or failed) when the test says so.

mod support;

use std::time::Duration;

use live_core::PeerFault;
use server_core::{Body, CoreConfig, HttpSync, PersistFailure, TimerReason};
use support::{Harness, status};
use sync_core::store::refresh_scope;
use sync_core::{MemoryStore, Store};

fn answered(lines: &[String], name: &str) -> Vec<u16> {
    lines
        .iter()
        .filter(|l| l.starts_with(&format!("{name} answered")))
        .filter_map(|l| status(l))
        .collect()
}

#[test]
fn a_push_is_answered_and_poked_only_after_its_batch_is_durable() {
    let mut h = Harness::new();
    h.watch("alice", "s");
    h.push("p", "s", &["a"]);
    assert_eq!(h.drain(), ["persist 1"], "nothing before it is durable");
    assert_eq!(h.core.waiting_requests(), 1);
    h.persist_ok();
    let lines = h.drain();
    assert_eq!(answered(&lines, "p"), [200]);
    assert!(
        lines.contains(&r#"alice <- {"topic":"sync:s","data":{"cursor":1}}"#.to_owned()),
        "{lines:?}"
    );
    assert_eq!(h.core.waiting_requests(), 0);
    assert_eq!(h.core.metrics().sync.pokes, 1);
}

#[test]
fn pushes_arriving_during_a_write_share_the_next_batch() {
    let mut h = Harness::new();
    h.push("p1", "s", &["a"]);
    assert_eq!(h.drain(), ["persist 1"]);
    h.push("p2", "s", &["b"]);
    h.push("p3", "t", &["c"]);
    assert_eq!(h.drain(), Vec::<String>::new(), "one batch out at a time");
    h.persist_ok();
    let lines = h.drain();
    assert_eq!(answered(&lines, "p1"), [200]);
    assert_eq!(lines.last().map(String::as_str), Some("persist 2"));
    assert_eq!(h.persist.as_ref().unwrap().batch.changes.len(), 2);
    h.persist_ok();
    let lines = h.drain();
    assert_eq!(answered(&lines, "p2"), [200]);
    assert_eq!(answered(&lines, "p3"), [200]);
    assert_eq!(h.core.metrics().sync.batches, 2);
}

#[test]
fn bad_http_requests_are_refused_at_once_with_their_codes() {
    let mut h = Harness::new();
    let cases: [(&str, &str, &str, &str, u16, &str); 6] = [
        ("bad-json", "u", "POST", "{", 400, "invalid_mutation"),
        (
            "forbidden",
            "u",
            "POST",
            r#"{"mutations":[{"id":"m","scope":"secret","name":"put"}]}"#,
            403,
            "forbidden",
        ),
        (
            "denied",
            "deny",
            "POST",
            r#"{"scope":"s"}"#,
            403,
            "forbidden",
        ),
        ("no-such-op", "u", "POST", "{}", 404, "not_found"),
        (
            "wrong-method",
            "u",
            "DELETE",
            "{}",
            405,
            "method_not_allowed",
        ),
        ("empty-push", "u", "POST", "{}", 400, "invalid_mutation"),
    ];
    for (name, user, method, body, code, wire) in cases {
        let path = match name {
            "no-such-op" => "/nope",
            "denied" => "/pull",
            _ => "/push",
        };
        h.http(name, user, method, path, body);
        let lines = h.drain();
        assert_eq!(answered(&lines, name), [code], "{name}: {lines:?}");
        assert!(lines[0].contains(wire), "{name}: {lines:?}");
    }
    let too_large = HttpSync {
        method: "POST",
        path: "/push",
        query: "",
        body: Body::TooLarge { limit: 10 },
    };
    let id = h.core.handle_http_sync(h.now, &"u".to_owned(), too_large);
    h.requests.insert(id, "big".into());
    let unreadable = HttpSync {
        body: Body::Unreadable { message: "reset" },
        ..too_large
    };
    let id = h.core.handle_http_sync(h.now, &"u".to_owned(), unreadable);
    h.requests.insert(id, "cut".into());
    let lines = h.drain();
    assert_eq!(answered(&lines, "big"), [413]);
    assert_eq!(answered(&lines, "cut"), [400]);
    assert_eq!(h.core.waiting_requests(), 0);
    assert_eq!(h.core.metrics().sync.errors, 8);
}

#[test]
fn sync_over_the_websocket_is_answered_on_the_session_once_durable() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.text(
        alice,
        r#"{"topic":"_sync","data":{"rid":7,"op":"push","body":{"mutations":[{"id":"m","scope":"s","name":"put","args":{"key":"k","value":1}}]}}}"#,
    );
    assert_eq!(h.drain(), ["persist 1"]);
    h.text(
        alice,
        r#"{"topic":"_sync","data":{"rid":8,"op":"pull","body":{"scope":"secret"}}}"#,
    );
    let refused = h.drain();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].contains(r#""rid":8,"status":403"#),
        "{refused:?}"
    );
    h.persist_ok();
    let lines = h.drain();
    assert!(lines[0].contains(r#""rid":7,"status":200"#), "{lines:?}");
}

#[test]
fn a_failed_batch_answers_its_pushes_and_the_next_one_works() {
    let mut h = Harness::new();
    h.push("p1", "s", &["a"]);
    h.drain();
    h.persist_failed(PersistFailure::other("disk full"));
    let lines = h.drain();
    assert_eq!(answered(&lines, "p1"), [500], "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("notice persisting batch 1 failed: disk full"))
    );
    h.push("p2", "s", &["b"]);
    assert_eq!(h.drain(), ["persist 2"]);
    h.persist_ok();
    let lines = h.drain();
    assert!(lines[0].starts_with("p2 answered 200"), "{lines:?}");
    assert!(
        lines[0].contains(r#""cursor":1"#),
        "the failed push left no gap: {lines:?}"
    );
}

#[test]
fn an_unreachable_store_answers_503_unavailable() {
    let mut h = Harness::new();
    h.push("p", "s", &["a"]);
    h.drain();
    h.persist_failed(PersistFailure {
        message: "connection refused".into(),
        unavailable: true,
        reloaded: Vec::new(),
    });
    let lines = h.drain();
    assert_eq!(answered(&lines, "p"), [503]);
    let answer = lines.iter().find(|l| l.starts_with("p answered")).unwrap();
    assert!(answer.contains(r#""code":"unavailable""#), "{lines:?}");
    assert!(answer.contains("nothing was applied"), "{lines:?}");
    let notice = "notice persisting batch 1 failed: connection refused";
    assert!(lines.iter().any(|l| l == notice), "{lines:?}");
}

fn outage() -> PersistFailure {
    PersistFailure {
        message: "the session ended".into(),
        unavailable: true,
        reloaded: Vec::new(),
    }
}

/// On a shared store, a batch that met an outage (a database restart, a
/// failover, a session the server ended) is tried again at once before its
/// pushes are answered: the database is often back by then, and the store's
/// version check makes another try safe.
#[test]
fn a_batch_that_met_an_outage_of_a_shared_store_is_tried_again_at_once() {
    let mut h = Harness::shared();
    h.push("p", "s", &["a"]);
    assert_eq!(h.drain(), ["persist 1"]);
    h.persist_failed(outage());
    assert_eq!(
        h.drain(),
        [
            "notice persisting batch 1 failed: the session ended; trying its 1 pushes again",
            "persist 2"
        ],
        "not answered yet"
    );
    h.persist_ok();
    let lines = h.drain();
    assert!(lines[0].starts_with("p answered 200"), "{lines:?}");
    assert!(lines[0].contains(r#""cursor":1"#), "{lines:?}");
    assert_eq!(h.core.metrics().sync.outage_retries, 1);
    assert_eq!(h.core.poll_timeout(), None);
}

/// A shared store that stays away is waited for: tries again after pauses
/// growing from 50 ms to 500 ms, pushes arriving meanwhile joining the next
/// try, until `outage_wait` (2 s) has passed; then the pushes are answered
/// 503, and until a batch is written, the next failed try answers at once.
#[test]
fn a_shared_store_that_stays_away_is_waited_for_then_answered_503() {
    let mut h = Harness::shared();
    h.push("p", "s", &["a"]);
    assert_eq!(h.drain(), ["persist 1"]);
    let start = h.now;
    let mut tries = vec![0];
    h.persist_failed(outage());
    loop {
        let lines = h.drain();
        if lines.iter().any(|l| l.starts_with("p answered")) {
            assert_eq!(answered(&lines, "p"), [503], "{lines:?}");
            let answer = lines.iter().find(|l| l.starts_with("p answered")).unwrap();
            assert!(answer.contains(r#""code":"unavailable""#), "{answer}");
            assert!(answer.contains("applied once however often"), "{answer}");
            break;
        }
        if h.persist.is_none() {
            // A pause: no job goes out until it is over.
            let (at, why) = h.core.poll_timeout().expect("a pause with a deadline");
            assert_eq!(why, TimerReason::StoreRetry);
            h.now = at;
            if tries.len() == 3 {
                // Arriving during a pause, it joins the next try.
                h.push("q", "s", &["b"]);
                assert_eq!(h.drain(), Vec::<String>::new(), "nothing goes out");
            }
            h.core.handle_timeout(h.now);
            continue;
        }
        tries.push((h.now - start).as_millis());
        h.persist_failed(outage());
    }
    assert_eq!(tries, [0, 0, 50, 150, 350, 750, 1250, 1750, 2000]);
    assert!(h.persist.is_none() && h.core.poll_timeout().is_none());
    assert_eq!(h.core.metrics().sync.store_unreachable, 1);
    assert_eq!(h.core.waiting_requests(), 0, "q was answered with p");
    // Still away: the next batch is answered at once.
    h.push("r", "s", &["c"]);
    assert_eq!(h.drain(), ["persist 10"]);
    h.persist_failed(outage());
    assert_eq!(answered(&h.drain(), "r"), [503]);
    // Back: a batch is written, and the next outage is waited out again.
    h.push("t", "s", &["d"]);
    h.drain();
    h.persist_ok();
    assert!(h.drain()[0].starts_with("t answered 200"));
    assert_eq!(h.core.metrics().sync.store_unreachable, 0);
    h.push("u", "s", &["e"]);
    h.drain();
    h.persist_failed(outage());
    assert_eq!(h.drain().last().map(String::as_str), Some("persist 13"));
}

/// A database that does not answer at all (a network partition) fails a
/// try only at the store's own timeout. The outage is timed from when the
/// first failed try went out, so a push waits at most `outage_wait` (2 s)
/// plus one timeout: a try that timed out past the wait is not tried again
/// at once, and one that timed out within it is tried once more.
#[test]
fn a_store_that_does_not_answer_is_not_waited_for_past_one_timeout() {
    let mut h = Harness::shared();
    h.push("p", "s", &["a"]);
    assert_eq!(h.drain(), ["persist 1"]);
    let start = h.now;
    h.persist_failed_after(outage(), Duration::from_secs(5));
    assert_eq!(answered(&h.drain(), "p"), [503]);
    assert_eq!(h.now - start, Duration::from_secs(5));
    assert_eq!(h.core.metrics().sync.outage_retries, 0);

    // Back, then away again behind a 1.5 s timeout: the first try is
    // tried at once, the second fails past the wait and is answered.
    h.push("q", "s", &["b"]);
    h.drain();
    h.persist_ok();
    assert!(h.drain()[0].starts_with("q answered 200"));
    h.push("r", "s", &["c"]);
    assert_eq!(h.drain(), ["persist 3"]);
    let start = h.now;
    let timeout = Duration::from_millis(1_500);
    h.persist_failed_after(outage(), timeout);
    assert_eq!(h.drain().last().map(String::as_str), Some("persist 4"));
    h.persist_failed_after(outage(), timeout);
    assert_eq!(answered(&h.drain(), "r"), [503]);
    assert_eq!(h.now - start, Duration::from_secs(3), "2 s and one timeout");
    assert_eq!(h.core.metrics().sync.outage_retries, 1);
}

/// A batch that landed but whose answer was lost with the session (the
/// connection broke during `COMMIT`) is reported as an outage. Its second
/// try is refused as stale, since the store checks versions, and the read
/// under the lock brings back the first try's records: the push is answered
/// with its first answer and applied once.
#[test]
fn a_batch_that_landed_unanswered_is_answered_once_by_its_second_try() {
    let mut h = Harness::shared();
    h.push("p", "s", &["a", "b"]);
    assert_eq!(h.drain(), ["persist 1"]);
    let job = h.persist.take().unwrap();
    server_core::jobs::persist(&mut h.store, &job).expect("the first try lands");
    h.core
        .handle_persisted(h.now, job.number, Err(outage()), Duration::ZERO)
        .unwrap();
    assert_eq!(h.drain().last().map(String::as_str), Some("persist 2"));
    let mut store = std::mem::take(&mut h.store);
    refuse_as_stale(&mut h, &mut store, "s");
    h.store = store;
    // Replays, answered at once from the records read back.
    let lines = h.drain();
    let answer = lines.iter().find(|l| l.starts_with("p answered")).unwrap();
    assert!(answer.starts_with("p answered 200"), "{lines:?}");
    assert!(answer.contains(r#""ok":true,"cursor":1"#), "{answer}");
    assert!(answer.contains(r#""ok":true,"cursor":2"#), "{answer}");
    // The store held the scope for the batch pushed again, which wrote
    // nothing: an empty one lets it go.
    let release = h.persist.as_ref().expect("a batch releases the scope");
    assert!(release.batch.is_empty(), "{:?}", release.batch);
    h.persist_ok();
    assert_eq!(h.drain(), Vec::<String>::new());
    assert_eq!(h.core.engine().durable_head("s"), 2, "applied once");
    let stored = h.store.load_scope("s").unwrap().unwrap();
    assert_eq!(stored.changes.len(), 2, "{:?}", stored.changes);
}

/// Node A and node B on one store: B writes scope `s`, A's batch on `s` is
/// refused as stale, reloaded, pushed again and applied after B's change.
#[test]
fn a_batch_refused_as_stale_is_reloaded_and_pushed_again() {
    let (mut a, mut b) = Harness::shared_pair();
    b.committed("b", "s", &["from-b"]);
    a.push("a", "s", &["from-a"]);
    a.drain();
    let job = a.persist.take().unwrap();
    let mark = job.marks.get("s").copied().flatten();
    let reloaded = vec![refresh_scope(&mut b.store, "s", mark).unwrap()];
    a.core
        .handle_persisted(
            a.now,
            job.number,
            Err(PersistFailure {
                message: "stale".into(),
                unavailable: false,
                reloaded,
            }),
            Duration::ZERO,
        )
        .unwrap();
    let lines = a.drain();
    assert_eq!(
        answered(&lines, "a"),
        Vec::<u16>::new(),
        "not answered: pushed again"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("persist 2"),
        "{lines:?}"
    );
    assert_eq!(
        a.core.engine().durable_head("s"),
        1,
        "B's change was absorbed"
    );
    // The retried batch goes to the shared store after B's change.
    a.store = std::mem::take(&mut b.store);
    a.persist_ok();
    let lines = a.drain();
    assert!(lines[0].starts_with("a answered 200"), "{lines:?}");
    assert!(lines[0].contains(r#""cursor":2"#), "{lines:?}");
    assert_eq!(a.core.metrics().sync.stale_retries, 1);
}

/// What a refused batch hands back of another node's commits is poked to
/// this node's watchers at once: the notices of those commits will find
/// nothing new to read, and the batch pushed again may write nothing to the
/// scope (here its mutation is refused by the application), so nothing
/// else would tell them.
#[test]
fn commits_learned_from_a_refused_batch_are_poked() {
    let (mut a, mut b) = Harness::shared_pair();
    a.watch("alice", "s");
    b.committed("b", "s", &["x", "y"]);
    let body = r#"{"mutations":[{"id":"n1","scope":"s","name":"nope"}]}"#;
    a.http("p", "u", "POST", "/push", body);
    assert_eq!(a.drain(), ["persist 1"]);
    refuse_as_stale(&mut a, &mut b.store, "s");
    let lines = a.drain();
    let poke = r#"alice <- {"topic":"sync:s","data":{"cursor":2}}"#;
    assert!(lines.contains(&poke.to_owned()), "{lines:?}");
    a.store = std::mem::take(&mut b.store);
    a.persist_ok();
    let lines = a.drain();
    assert!(lines[0].starts_with("p answered 200"), "{lines:?}");
    assert!(lines[0].contains(r#""ok":false"#), "{lines:?}");
    a.core.handle_store_notice(a.now, Some("s".into()));
    assert_eq!(a.drain(), ["lock s"], "a scope other nodes write");
    a.reload_own();
    let lines = a.drain();
    assert!(
        !lines.iter().any(|l| l.starts_with("alice")),
        "poked once: {lines:?}"
    );
}

/// Refuses A's outstanding batch as stale, with what `store` holds of
/// `scope` after A's records.
fn refuse_as_stale(a: &mut Harness, store: &mut MemoryStore, scope: &str) {
    let job = a.persist.take().expect("a batch is out");
    let mark = job.marks.get(scope).copied().flatten();
    let reloaded = vec![refresh_scope(store, scope, mark).unwrap()];
    let failure = PersistFailure {
        message: "stale".into(),
        unavailable: false,
        reloaded,
    };
    a.core
        .handle_persisted(a.now, job.number, Err(failure), Duration::ZERO)
        .unwrap();
}

/// B writes `scope` first, so A's first batch on it (push `first`) is
/// refused as stale, caught up and written: A now knows other nodes write
/// the scope. A ends holding the shared store.
fn refused_once(a: &mut Harness, b: &mut Harness, scope: &str) {
    b.committed("b", scope, &["b1"]);
    a.push("first", scope, &["a1"]);
    assert_eq!(a.drain(), ["persist 1"]);
    refuse_as_stale(a, &mut b.store, scope);
    assert_eq!(a.drain().last().map(String::as_str), Some("persist 2"));
    a.store = std::mem::take(&mut b.store);
    a.persist_ok();
    assert!(a.drain()[0].starts_with("first answered 200"));
}

/// Once a batch on a scope was refused as stale (another node writes it
/// too), pushes on it wait for a locking read: the store holds the scope
/// from that read to the batch the pushes make, which goes out right after
/// it, on top of everything other nodes wrote, and cannot be refused. A
/// push applied first would make a batch refused again, and the engine
/// would throw its working state of the scope away to compute it again.
#[test]
fn pushes_on_a_scope_other_nodes_write_wait_for_a_locking_read() {
    let (mut a, mut b) = Harness::shared_pair();
    refused_once(&mut a, &mut b, "s");
    a.push("p2", "s", &["a2"]);
    assert_eq!(a.drain(), ["lock s"], "waits for the locking read");
    a.push("p3", "s", &["a3"]);
    assert_eq!(a.drain(), Vec::<String>::new(), "waits behind it");
    let waited_before = a.core.metrics().sync.reload_seconds;
    a.advance(Duration::from_millis(7));
    a.reload_own();
    assert_eq!(a.drain(), ["persist 3"], "both, at once, under the lock");
    let waited = a.core.metrics().sync.reload_seconds - waited_before;
    assert!(
        (waited - 0.007).abs() < 1e-9,
        "the read took 7 ms, not {waited}"
    );
    a.persist_ok();
    let lines = a.drain();
    assert!(lines[0].starts_with("p2 answered 200"), "{lines:?}");
    assert!(lines[0].contains(r#""cursor":3"#), "{lines:?}");
    assert!(lines[1].starts_with("p3 answered 200"), "{lines:?}");
    let metrics = a.core.metrics().sync;
    assert_eq!(metrics.stale_retries, 1, "refused once only");
    assert_eq!(metrics.locking_reads, 1);
    assert_eq!(metrics.contended_scopes, 1);
}

/// The locking read pushes on a contended scope wait for meets an outage
/// of the store: it is tried again (after letting go of whatever the store
/// held), the pushes waiting, and they are answered once it succeeds; past
/// `outage_wait`, they are answered 503.
#[test]
fn pushes_waiting_for_a_read_that_met_an_outage_wait_for_the_store() {
    let (mut a, mut b) = Harness::shared_pair();
    refused_once(&mut a, &mut b, "s");
    a.push("p", "s", &["x"]);
    assert_eq!(a.drain(), ["lock s"]);
    a.reload_unavailable();
    let lines = a.drain();
    assert_eq!(answered(&lines, "p"), Vec::<u16>::new(), "{lines:?}");
    // An empty batch lets go of what the store may hold, then the read
    // goes again at once.
    assert_eq!(lines.last().map(String::as_str), Some("persist 0"));
    assert!(a.persist.as_ref().unwrap().batch.is_empty());
    a.persist_ok();
    assert_eq!(a.drain(), ["lock s"]);
    a.reload_own();
    assert_eq!(a.drain(), ["persist 3"], "the push, under the lock");
    a.persist_ok();
    assert!(a.drain()[0].starts_with("p answered 200"));

    // A store that stays away: the read is tried until `outage_wait` has
    // passed, then the push is answered 503.
    a.push("q", "s", &["y"]);
    assert_eq!(a.drain(), ["lock s"]);
    let start = a.now;
    let lines = loop {
        if a.reload.is_some() {
            a.reload_unavailable();
        } else if a.persist.is_some() {
            a.persist_ok();
        } else {
            let (at, why) = a.core.poll_timeout().expect("a pause");
            assert_eq!(why, TimerReason::StoreRetry);
            a.now = at;
            a.core.handle_timeout(at);
        }
        let lines = a.drain();
        if lines.iter().any(|l| l.starts_with("q answered")) {
            break lines;
        }
    };
    assert_eq!(answered(&lines, "q"), [503], "{lines:?}");
    assert_eq!(a.now - start, Duration::from_secs(2));
}

/// Pushes that keep a scope other nodes write locked, read after read,
/// never hold back the read of another scope this node's subscribers wait
/// to be poked about: both go in one read.
#[test]
fn reads_for_pokes_ride_along_with_the_locking_reads_of_busy_scopes() {
    let (mut a, mut b) = Harness::shared_pair();
    a.watch("alice", "t");
    b.committed("b", "t", &["t1"]);
    refused_once(&mut a, &mut b, "s");
    a.push("p2", "s", &["a2"]);
    assert_eq!(a.drain(), ["lock s"]);
    // Another node commits to `t` while pushes on `s` keep coming: `t`
    // waits for the read out, then rides along with the next.
    a.core.handle_store_notice(a.now, Some("t".into()));
    a.push("p3", "s", &["a3"]);
    a.reload_own();
    assert_eq!(a.drain(), ["persist 3"]);
    a.push("p4", "s", &["a4"]);
    a.persist_ok();
    let lines = a.drain();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("lock s, reload t"),
        "{lines:?}"
    );
    a.reload_own();
    let lines = a.drain();
    assert!(
        lines.contains(&r#"alice <- {"topic":"sync:t","data":{"cursor":1}}"#.to_owned()),
        "{lines:?}"
    );
}

/// A node that stopped writing a scope other nodes write reads their
/// commits to it without locking it (it would hold them back for nothing),
/// and locks it again for its next push there.
#[test]
fn a_scope_this_node_stopped_writing_is_read_without_locking() {
    let (mut a, mut b) = Harness::shared_pair();
    a.watch("alice", "s");
    refused_once(&mut a, &mut b, "s");
    // Still writing `s` a few batches later: the read locks it.
    a.push("elsewhere", "u", &["x"]);
    a.drain();
    a.persist_ok();
    a.drain();
    a.core.handle_store_notice(a.now, Some("s".into()));
    assert_eq!(a.drain(), ["lock s"]);
    a.reload_own();
    a.drain();
    a.persist_ok();
    a.drain();
    // Sixteen batches elsewhere later, it has stopped writing `s`.
    for n in 0..16 {
        a.push(&format!("elsewhere{n}"), "u", &["x"]);
        a.drain();
        a.persist_ok();
        a.drain();
    }
    a.core.handle_store_notice(a.now, Some("s".into()));
    assert_eq!(a.drain(), ["reload s"]);
    a.reload_own();
    a.drain();
    assert!(a.persist.is_none(), "no lock to let go");
    a.push("back", "s", &["y"]);
    assert_eq!(a.drain(), ["lock s"]);
}

/// Another node's commit to a scope this node also writes is read under
/// the scope's lock (the pushes that follow it would wait for one); with
/// no push waiting, an empty batch lets the lock go at once. Locking reads
/// that find nothing new make the scope's pushes go straight to the engine
/// again.
#[test]
fn a_scope_no_other_node_writes_any_more_is_pushed_without_locking() {
    let (mut a, mut b) = Harness::shared_pair();
    a.watch("alice", "s");
    refused_once(&mut a, &mut b, "s");
    a.core.handle_store_notice(a.now, Some("s".into()));
    assert_eq!(a.drain(), ["lock s"]);
    a.reload_own();
    let lines = a.drain();
    let release = a.persist.as_ref().expect("a batch lets the lock go");
    assert!(release.batch.is_empty(), "{:?}", release.batch);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("persist 0"),
        "{lines:?}"
    );
    a.persist_ok();
    assert_eq!(a.drain(), Vec::<String>::new());

    // Nobody else writes `s` now: after a few reads that find nothing new,
    // pushes go straight to a batch.
    let mut locked = 0;
    for n in 0..10 {
        a.push(&format!("q{n}"), "s", &["k"]);
        let lines = a.drain();
        if lines == ["lock s"] {
            locked += 1;
            a.reload_own();
            a.drain();
        }
        a.persist_ok();
        assert!(a.drain()[0].starts_with(&format!("q{n} answered 200")));
    }
    assert_eq!(locked, 3, "four reads find nothing new, the notice's first");
    let metrics = a.core.metrics().sync;
    assert_eq!(metrics.stale_retries, 1);
    assert_eq!(metrics.locking_reads, 4, "the notice's and three pushes'");
    assert_eq!(metrics.contended_scopes, 0, "no longer treated as shared");
}

#[test]
fn a_push_refused_as_stale_on_every_attempt_is_answered_503() {
    let mut config = CoreConfig::with_seed(7);
    config.shared_store = true;
    config.stale_retries = 2;
    let mut h = Harness::with(config, MemoryStore::new());
    h.push("p", "s", &["a"]);
    h.drain();
    for attempt in 0..3 {
        let job = h.persist.take().expect("a batch for every attempt");
        let reloaded = vec![refresh_scope(&mut MemoryStore::new(), "s", None).unwrap()];
        let failure = PersistFailure {
            message: "stale".into(),
            unavailable: false,
            reloaded,
        };
        h.core
            .handle_persisted(h.now, job.number, Err(failure), Duration::ZERO)
            .unwrap();
        let lines = h.drain();
        if attempt < 2 {
            assert_eq!(answered(&lines, "p"), Vec::<u16>::new(), "{lines:?}");
        } else {
            assert_eq!(answered(&lines, "p"), [503], "{lines:?}");
            let answer = lines.iter().find(|l| l.starts_with("p answered")).unwrap();
            assert!(answer.contains("other nodes kept writing"), "{answer}");
        }
    }
    // The store held the scope for a batch that never came: an empty one
    // lets it go, and nothing of the engine rides on it.
    let release = h.persist.take().expect("an empty batch releases the scope");
    assert!(release.batch.is_empty(), "{:?}", release.batch);
    h.persist = Some(release);
    h.persist_ok();
    assert_eq!(h.drain(), Vec::<String>::new());
    assert!(h.persist.is_none());
    assert_eq!(h.core.waiting_requests(), 0);
}

/// A shared store that refuses a batch as stale holds its scopes for the
/// next batch: that batch goes out before a reload other nodes asked for,
/// and the reload follows it.
#[test]
fn the_batch_pushed_again_after_a_stale_refusal_goes_out_before_any_reload() {
    let mut h = Harness::shared();
    h.watch("alice", "t");
    h.push("p", "s", &["a"]);
    assert_eq!(h.drain(), ["persist 1"]);
    // Another node committed to `t` (watched here) meanwhile: a reload
    // waits for the batch.
    h.core.handle_store_notice(h.now, Some("t".into()));
    assert_eq!(h.drain(), Vec::<String>::new());
    let reloaded = vec![refresh_scope(&mut MemoryStore::new(), "s", None).unwrap()];
    h.persist_failed(PersistFailure {
        message: "stale".into(),
        unavailable: false,
        reloaded,
    });
    let lines = h.drain();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("persist 2"),
        "the batch the store holds the scope for, first: {lines:?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("reload")), "{lines:?}");
    h.persist_ok();
    let lines = h.drain();
    assert!(lines[0].starts_with("p answered 200"), "{lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("reload t"),
        "{lines:?}"
    );
}

#[test]
fn another_nodes_commit_is_reloaded_before_it_is_poked() {
    let (mut a, mut b) = Harness::shared_pair();
    a.watch("alice", "s");
    b.committed("b", "s", &["x", "y"]);
    a.core.handle_store_notice(a.now, Some("s".into()));
    assert_eq!(a.drain(), ["reload s"], "no poke before the reload");
    // A push meanwhile waits for the reload to finish.
    a.push("late", "t", &["z"]);
    assert_eq!(a.drain(), Vec::<String>::new());
    a.reload_from(&mut b.store);
    let lines = a.drain();
    assert_eq!(
        lines[0], r#"alice <- {"topic":"sync:s","data":{"cursor":2}}"#,
        "{lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("persist 1"));
    assert_eq!(a.core.engine().durable_head("s"), 2);
    assert_eq!(a.core.metrics().sync.reloads, 1);
}

/// A read of another node's commit that fails (the store is down) is
/// tried again a second later for the scopes watched here, so their
/// subscribers are still poked once the store answers; until then a
/// request naming the scope reads it first rather than trust what the node
/// holds.
#[test]
fn a_watched_scope_whose_read_failed_is_read_again_and_poked() {
    let (mut a, mut b) = Harness::shared_pair();
    a.watch("alice", "s");
    b.committed("b", "s", &["x"]);
    a.core.handle_store_notice(a.now, Some("s".into()));
    assert_eq!(a.drain(), ["reload s"]);
    a.reload_failed();
    a.drain();
    let (at, why) = a.core.poll_timeout().expect("a retry");
    assert_eq!(why, TimerReason::ReadRetry);
    assert_eq!(at - a.now, Duration::from_secs(1));
    a.advance(Duration::from_secs(1));
    a.core.handle_timeout(a.now);
    assert_eq!(a.drain(), ["reload s"], "read again");
    a.reload_from(&mut b.store);
    assert_eq!(
        a.drain(),
        [r#"alice <- {"topic":"sync:s","data":{"cursor":1}}"#],
        "poked once the store answers"
    );
}

/// Until a failed read is done again, a pull of the scope reads it first
/// instead of answering from what the node held before the other node's
/// commit.
#[test]
fn a_pull_of_a_scope_whose_read_failed_reads_it_first() {
    let (mut a, mut b) = Harness::shared_pair();
    a.watch("alice", "s");
    b.committed("b1", "s", &["x"]);
    a.core.handle_store_notice(a.now, Some("s".into()));
    assert_eq!(a.drain(), ["reload s"]);
    a.reload_from(&mut b.store);
    a.drain();
    b.committed("b2", "s", &["y"]);
    a.core.handle_store_notice(a.now, Some("s".into()));
    assert_eq!(a.drain(), ["reload s"]);
    a.reload_failed();
    a.drain();
    a.http("pull", "u", "POST", "/pull", r#"{"scope":"s","cursor":0}"#);
    assert_eq!(a.drain(), ["reload s"], "read before it is answered");
    a.reload_from(&mut b.store);
    let lines = a.drain();
    let answer = lines.iter().find(|l| l.starts_with("pull answered 200"));
    assert!(
        answer.is_some_and(|l| l.contains(r#""cursor":2"#)),
        "{lines:?}"
    );
}

#[test]
fn frames_the_transport_refused_close_the_session_as_the_peers_fault() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    let bob = h.open("bob");
    h.core.handle_peer_fault(h.now, alice, PeerFault::TooBig);
    h.core.handle_peer_fault(h.now, bob, PeerFault::InvalidUtf8);
    assert_eq!(
        h.drain(),
        [
            "alice <- close 1009 message too big",
            "alice closed 1009",
            "bob <- close 1007 invalid utf-8",
            "bob closed 1007"
        ]
    );
    assert_eq!(h.core.metrics().live.peer_fault_closes, 2);
}

#[test]
fn application_messages_and_topic_authorization_follow_the_policy() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    let admin = h.open("admin");
    h.subscribe(alice, "private");
    let refused = h.drain();
    assert!(refused[0].contains("forbidden"), "{refused:?}");
    h.subscribe(admin, "private");
    assert_eq!(h.drain(), Vec::<String>::new(), "admin may");
    assert_eq!(h.core.hub().subscriber_count("private"), 1);
    h.subscribe(alice, "sync:secret");
    let lines = h.drain();
    assert!(lines[0].contains("forbidden"), "{lines:?}");
    h.text(alice, r#"{"topic":"hello","data":{"a":1}}"#);
    assert_eq!(h.drain(), [r#"alice says hello {"a":1}"#]);
}

#[test]
fn shutdown_closes_sessions_refuses_new_requests_and_finishes_what_it_took() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.subscribe(alice, "chat");
    h.drain();
    h.push("taken", "s", &["a"]);
    h.drain();
    h.core.handle_shutdown(h.now);
    assert_eq!(
        h.drain(),
        [
            "alice <- close 1001 server shutting down",
            "alice closed 1001"
        ]
    );
    h.push("late", "s", &["b"]);
    let lines = h.drain();
    assert_eq!(answered(&lines, "late"), [503]);
    let late = h.open("late-comer");
    assert!(h.drain().contains(&"late-comer closed 1001".to_owned()));
    assert!(!h.core.hub().contains(late));
    assert!(!h.core.is_stopped(), "a push is still being written");
    h.persist_ok();
    let lines = h.drain();
    assert_eq!(answered(&lines, "taken"), [200]);
    assert_eq!(lines.last().map(String::as_str), Some("stopped"));
    assert!(h.core.is_stopped());
    assert_eq!(h.core.hub().session_count(), 0);
    assert_eq!(h.core.waiting_requests(), 0);
    assert!(!h.core.job_outstanding());
    assert_eq!(h.core.poll_timeout(), None);
}

#[test]
fn a_trim_is_done_once_its_batch_is_durable() {
    let mut h = Harness::new();
    h.push("p", "s", &["a", "b", "c"]);
    h.drain();
    h.persist_ok();
    h.drain();
    let ticket = h.core.trim("s", 3).unwrap();
    assert_eq!(h.drain(), ["persist 2"]);
    assert_eq!(h.core.pending_commands(), 1);
    h.persist_ok();
    assert_eq!(h.drain(), [format!("done {} Ok(())", ticket.0)]);
    assert_eq!(h.core.pending_commands(), 0);
    assert!(h.core.trim("s", 99).is_err(), "past the head");
}

/// A shared store's scope `s` with three changes durable, q's push (`d`)
/// in batch 2 out, and a trim of `s` before 2 waiting in the open batch.
fn trim_beside_a_batch_out() -> (Harness, server_core::Ticket) {
    let mut h = Harness::shared();
    h.committed("p", "s", &["a", "b", "c"]);
    h.push("q", "s", &["d"]);
    assert_eq!(h.drain(), ["persist 2"]);
    let ticket = h.core.trim("s", 2).unwrap();
    (h, ticket)
}

/// A trim is not lost with a batch that met an outage of a shared store:
/// one waiting in the open batch (which the engine drops with the failed
/// one) and one riding on the failed batch both go out again with the next
/// try, and each is done once a batch holding it is durable.
#[test]
fn trims_go_out_again_with_a_batch_tried_again_after_an_outage() {
    let (mut h, open) = trim_beside_a_batch_out();
    h.persist_failed(outage());
    assert_eq!(h.drain().last().map(String::as_str), Some("persist 3"));
    let trims = |h: &Harness| -> Vec<u64> {
        let job = h.persist.as_ref().expect("a batch out");
        job.batch.trims.iter().map(|t| t.before).collect()
    };
    assert_eq!(trims(&h), [2], "the trim of the dropped open batch");
    h.persist_failed(outage());
    let lines = h.drain();
    assert!(!lines.iter().any(|l| l.starts_with("done")), "{lines:?}");
    let (at, why) = h.core.poll_timeout().expect("a pause before the next try");
    assert_eq!(why, TimerReason::StoreRetry);
    h.now = at;
    h.core.handle_timeout(at);
    assert_eq!(h.drain(), ["persist 4"]);
    assert_eq!(trims(&h), [2], "the trim of the failed batch");
    h.persist_ok();
    let lines = h.drain();
    assert_eq!(answered(&lines, "q"), [200], "{lines:?}");
    assert!(
        lines.contains(&format!("done {} Ok(())", open.0)),
        "{lines:?}"
    );
    assert_eq!(h.core.pending_commands(), 0);
    assert_eq!(
        sync_core::store::Store::load(&mut h.store).unwrap().scopes[0]
            .changes
            .len(),
        3
    );
}

/// Past the wait, the trims the engine dropped with a failed batch (here
/// one waiting in the open batch) are done with the store's error, as the
/// batch's pushes are answered 503, rather than reported done later by a
/// batch that did not hold them.
#[test]
fn trims_dropped_with_a_batch_that_failed_past_the_wait_are_done_with_the_error() {
    let (mut h, ticket) = trim_beside_a_batch_out();
    h.persist_failed_after(outage(), Duration::from_secs(5));
    let lines = h.drain();
    assert_eq!(answered(&lines, "q"), [503], "{lines:?}");
    let done = format!("done {} Err(Store(\"the session ended\"))", ticket.0);
    assert!(lines.contains(&done), "{lines:?}");
    assert_eq!(h.core.pending_commands(), 0);
}

#[test]
fn the_broker_hears_interest_and_local_publishes_and_delivers_remote_ones() {
    let mut config = CoreConfig::with_seed(7);
    config.hub.backplane_events = true;
    let mut h = Harness::with(config, MemoryStore::new());
    h.core.handle_broker_attached(h.now);
    let alice = h.open("alice");
    h.subscribe(alice, "chat");
    h.subscribe(alice, "sync:s");
    let lines = h.drain();
    assert!(
        lines.contains(&r#"broker Interest { subscribe: ["chat"], unsubscribe: [] }"#.to_owned()),
        "sync topics stay local: {lines:?}"
    );
    h.text(
        alice,
        r#"{"topic":"publish","data":{"topic":"chat","data":1}}"#,
    );
    let lines = h.drain();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(r#"broker Publish { topic: "chat""#)),
        "{lines:?}"
    );
    h.core.handle_broker_message(h.now, "chat", b"2");
    assert_eq!(h.drain(), [r#"alice <- {"topic":"chat","data":2}"#]);
    h.core.handle_broker_restored(h.now);
    assert_eq!(
        h.drain(),
        [r#"broker Interest { subscribe: ["chat"], unsubscribe: [] }"#]
    );
    h.core.handle_broker_message(h.now, "chat", b"not json");
    assert!(h.drain()[0].starts_with("notice publish from another node on chat refused"));
}

#[test]
fn the_broker_links_connection_is_counted_once_a_link_is_attached() {
    let mut config = CoreConfig::with_seed(7);
    config.hub.backplane_events = true;
    let mut h = Harness::with(config, MemoryStore::new());
    h.core.handle_broker_connection(h.now, true);
    assert_eq!(h.core.metrics().broker, None, "no link yet");
    h.core.handle_broker_attached(h.now);
    let link = |h: &Harness| h.core.metrics().broker.expect("a link");
    assert!(!link(&h).connected, "attached before it connects");
    // A first try that fails is no disconnect.
    h.core.handle_broker_connection(h.now, false);
    assert_eq!((link(&h).connected, link(&h).disconnects), (false, 0));
    h.core.handle_broker_connection(h.now, true);
    assert_eq!((link(&h).connected, link(&h).disconnects), (true, 0));
    h.core.handle_broker_connection(h.now, false);
    h.core.handle_broker_connection(h.now, false);
    assert_eq!((link(&h).connected, link(&h).disconnects), (false, 1));
    h.core.handle_broker_connection(h.now, true);
    assert_eq!((link(&h).connected, link(&h).disconnects), (true, 1));
}

#[test]
fn changes_are_stamped_with_the_wall_time_the_loop_reported_plus_the_time_since() {
    let mut h = Harness::new();
    h.advance(Duration::from_millis(1500));
    h.push("p", "s", &["a"]);
    h.drain();
    h.persist_ok();
    h.drain();
    h.core.handle_wall_clock(h.now, support::WALL);
    h.advance(Duration::from_millis(250));
    h.push("q", "s", &["b"]);
    h.drain();
    h.persist_ok();
    h.drain();
    h.http("pull", "u", "POST", "/pull", r#"{"scope":"s"}"#);
    let lines = h.drain();
    // WALL is 2026-11-22T06:28:15Z.
    assert!(
        lines[0].contains(r#""time":"2026-11-22T06:28:16.5Z""#),
        "{lines:?}"
    );
    assert!(
        lines[0].contains(r#""time":"2026-11-22T06:28:15.25Z""#),
        "{lines:?}"
    );
}

#[test]
fn the_same_inputs_give_the_same_outputs() {
    let run = || {
        let mut h = Harness::new();
        let mut all = Vec::new();
        let a = h.open("a");
        let b = h.open("b");
        h.subscribe(a, "t");
        h.subscribe(b, "sync:s");
        h.push("p", "s", &["x", "y"]);
        all.extend(h.drain());
        h.persist_ok();
        h.text(
            a,
            r#"{"topic":"publish","data":{"topic":"t","data":[1,2]}}"#,
        );
        all.extend(h.drain());
        all.push(format!("{a:?} {b:?}"));
        all
    };
    assert_eq!(run(), run());
}

#[test]
fn a_broker_attached_late_is_asked_for_the_topics_already_subscribed() {
    let mut config = CoreConfig::with_seed(1);
    config.hub.backplane_events = true;
    let mut h = Harness::with(config, MemoryStore::new());
    let alice = h.open("alice");
    h.subscribe(alice, "chat");
    h.subscribe(alice, "sync:doc");
    h.drain();
    h.core.handle_broker_attached(h.now);
    assert_eq!(
        h.drain(),
        [r#"broker Interest { subscribe: ["chat"], unsubscribe: [] }"#]
    );
    // Attaching again changes nothing.
    h.core.handle_broker_attached(h.now);
    assert_eq!(h.drain(), Vec::<String>::new());
}

#[test]
fn a_sync_answer_that_overflows_the_queue_closes_before_reporting_closed() {
    let mut config = CoreConfig::with_seed(1);
    config.hub.limits.max_queued_messages = 1;
    let mut h = Harness::with(config, MemoryStore::new());
    let alice = h.open("alice");
    let pull = r#"{"topic":"_sync","data":{"rid":1,"op":"pull","body":{"scope":"a"}}}"#;
    // Never flushed: the second answer does not fit.
    h.text(alice, pull);
    h.text(alice, pull);
    let lines = h.drain();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("alice <- {"), "{lines:?}");
    assert_eq!(lines[1], "alice <- close 4008 slow consumer");
    assert_eq!(lines[2], "alice closed 4008");
}

/// Two nodes write one scope under steady load: a push that arrives on A
/// while A reloads that scope waits for the reload and is applied on top
/// of it, so the engine never has to refuse the reload (which would make
/// the store forget the scope and read it whole at the next refusal).
#[test]
fn a_push_arriving_during_a_reload_of_its_scope_waits_for_it() {
    let (mut a, mut b) = Harness::shared_pair();
    a.watch("alice", "s");
    b.committed("b", "s", &["from-b"]);
    a.core.handle_store_notice(a.now, Some("s".into()));
    assert_eq!(a.drain(), ["reload s"]);
    a.push("late", "s", &["from-a"]);
    assert_eq!(a.drain(), Vec::<String>::new(), "waits for the reload");
    a.reload_from(&mut b.store);
    let lines = a.drain();
    assert!(!lines.iter().any(|l| l.contains("refused")), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("persist 1"));
    assert_eq!(a.core.engine().durable_head("s"), 1, "B's change is in");
    a.store = std::mem::take(&mut b.store);
    a.persist_ok();
    let lines = a.drain();
    assert!(lines[0].starts_with("late answered 200"), "{lines:?}");
    assert!(lines[0].contains(r#""cursor":2"#), "{lines:?}");
    assert_eq!(a.core.metrics().sync.stale_retries, 0);
}

/// A reload another node asked for leaves out a scope this node has
/// pushes for in its open batch: that batch goes out first, the other
/// scopes are reloaded, and the scope itself once its work is durable.
#[test]
fn a_reload_waits_for_the_open_batch_on_its_scope() {
    let mut h = Harness::shared();
    h.watch("alice", "t");
    h.watch("bob", "s");
    h.push("p1", "s", &["a"]);
    assert_eq!(h.drain(), ["persist 1"]);
    h.push("p2", "s", &["b"]);
    h.core.handle_store_notice(h.now, Some("s".into()));
    h.core.handle_store_notice(h.now, Some("t".into()));
    assert_eq!(h.drain(), Vec::<String>::new());
    h.persist_ok();
    let lines = h.drain();
    assert!(lines[0].starts_with("p1 answered 200"), "{lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("reload t"),
        "{lines:?}"
    );
    h.reload_from(&mut MemoryStore::new());
    let lines = h.drain();
    assert!(!lines.iter().any(|l| l.contains("refused")), "{lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("persist 2"),
        "{lines:?}"
    );
    h.persist_ok();
    let lines = h.drain();
    assert!(lines[0].starts_with("p2 answered 200"), "{lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("reload s"),
        "{lines:?}"
    );
}

/// Pull `name` of `scope` from `cursor` on `a`: it waits for a read of the
/// scope, from `store`, and is then answered up to `head`.
fn pull_read_first(
    a: &mut Harness,
    store: &mut MemoryStore,
    name: &str,
    scope: &str,
    cursor: u64,
    head: u64,
) {
    let body = format!(r#"{{"scope":"{scope}","cursor":{cursor}}}"#);
    a.http(name, "u", "POST", "/pull", &body);
    assert_eq!(
        a.drain(),
        [format!("reload {scope}")],
        "read before it is answered"
    );
    a.reload_from(store);
    let lines = a.drain();
    assert!(
        lines[0].starts_with(&format!("{name} answered 200")),
        "{lines:?}"
    );
    assert!(
        lines[0].contains(&format!(r#""cursor":{head}"#)),
        "{lines:?}"
    );
}

/// A scope only other nodes use is not followed (their commits to it are
/// not read here), and a pull of it reads it first, so the pull still sees
/// everything they wrote.
#[test]
fn a_scope_only_other_nodes_use_is_read_when_first_pulled() {
    let (mut a, mut b) = Harness::shared_pair();
    b.committed("b", "u", &["x", "y"]);
    a.core.handle_store_notice(a.now, Some("u".into()));
    assert_eq!(a.drain(), Vec::<String>::new(), "not followed");
    assert_eq!(a.core.metrics().sync.notices_ignored, 1);
    pull_read_first(&mut a, &mut b.store, "pull", "u", 0, 2);
    // Held now: the next commit elsewhere is followed, but as nobody here
    // watches it, it is read when a request names it (below).
    a.core.handle_store_notice(a.now, Some("u".into()));
    assert_eq!(a.drain(), Vec::<String>::new());
    assert_eq!(a.core.metrics().sync.notices_ignored, 1);
    assert_eq!(a.core.metrics().sync.notices_deferred, 1);
}

/// A client that pushed or pulled on another node comes here with a cursor
/// past what this node holds of the scope, before this node heard of those
/// commits: the scope is read first and the pull answered (a node behind is
/// not a cursor too old). A cursor still ahead after the read is refused as
/// on one node, without a second read.
#[test]
fn a_pull_past_what_this_node_holds_reads_the_scope_first() {
    let (mut a, mut b) = Harness::shared_pair();
    b.committed("b1", "u", &["x"]);
    pull_read_first(&mut a, &mut b.store, "pull1", "u", 0, 1);
    b.committed("b2", "u", &["y", "z"]);
    b.committed("b3", "u", &["w"]);
    pull_read_first(&mut a, &mut b.store, "pull2", "u", 3, 4);

    a.http("pull3", "u", "POST", "/pull", r#"{"scope":"u","cursor":9}"#);
    assert_eq!(a.drain(), ["reload u"], "read before it is refused");
    a.reload_from(&mut b.store);
    let lines = a.drain();
    assert!(lines[0].starts_with("pull3 answered 410"), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");

    // When that read fails, the pull is answered 503 (retry), not 410.
    b.committed("b4", "u", &["v"]);
    a.http("pull4", "u", "POST", "/pull", r#"{"scope":"u","cursor":5}"#);
    assert_eq!(a.drain(), ["reload u"]);
    a.reload_failed();
    let lines = a.drain();
    assert!(
        lines.iter().any(|l| l.starts_with("pull4 answered 503")),
        "{lines:?}"
    );
}

/// Another node's commit to a scope held here that nobody here watches is
/// not read at once (where every node writes every scope, those reads cost
/// a third of the cluster's pushes): a pull of it reads it first, and a
/// push on it waits for a read that locks it, so neither acts on what was
/// there before that commit, and the push's batch is not refused.
#[test]
fn a_held_scope_nobody_here_watches_is_read_when_a_request_names_it() {
    let (mut a, mut b) = Harness::shared_pair();
    b.committed("b1", "u", &["x"]);
    pull_read_first(&mut a, &mut b.store, "pull1", "u", 0, 1);

    b.committed("b2", "u", &["y"]);
    a.core.handle_store_notice(a.now, Some("u".into()));
    assert_eq!(a.drain(), Vec::<String>::new(), "not read at once");
    pull_read_first(&mut a, &mut b.store, "pull2", "u", 1, 2);

    b.committed("b3", "u", &["z"]);
    a.core.handle_store_notice(a.now, Some("u".into()));
    assert_eq!(a.drain(), Vec::<String>::new(), "not read at once");
    a.push("p", "u", &["w"]);
    assert_eq!(a.drain(), ["lock u"], "the push waits for a locking read");
    a.reload_from(&mut b.store);
    assert_eq!(a.drain(), ["persist 1"]);
    a.store = std::mem::take(&mut b.store);
    a.persist_ok();
    let lines = a.drain();
    assert!(lines[0].starts_with("p answered 200"), "{lines:?}");
    assert!(lines[0].contains(r#""cursor":4"#), "{lines:?}");
    assert_eq!(a.core.metrics().sync.stale_retries, 0, "never refused");
}
