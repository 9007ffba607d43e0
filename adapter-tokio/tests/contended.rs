//! A push on a shared store whose every batch is refused as stale (other
//! nodes keep winning the scope) is pushed again a few times, each after
//! reloading the scope, then answered 503 `unavailable`: nothing was
//! applied, and a retry is the right reaction, not an internal error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use adapter_common::{OpenHooks, Server, ServerConfig};
use adapter_tokio::TokioRuntime;
use serde_json::Value;
use sync_core::handler::parse_http;
use sync_core::store::{ScopeMark, ScopeRecords, ScopeUpdate};
use sync_core::{Batch, KvApp, Limits, MemoryStore, Recovered, Store};

#[derive(Debug, thiserror::Error)]
#[error("scope s changed elsewhere")]
struct Stale;

/// Refuses every batch as stale on scope `s`; counts the reloads asked of it.
struct AlwaysStale {
    inner: MemoryStore,
    persists: Arc<AtomicUsize>,
    reloads: Arc<AtomicUsize>,
}

impl Store for AlwaysStale {
    type Error = Stale;

    fn persist(&mut self, _: &Batch) -> Result<(), Stale> {
        self.persists.fetch_add(1, Ordering::SeqCst);
        Err(Stale)
    }

    fn load(&mut self) -> Result<Recovered, Stale> {
        Ok(self.inner.load().expect("memory"))
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, Stale> {
        Ok(self.inner.load_scope(scope).expect("memory"))
    }

    fn load_scope_since(&mut self, scope: &str, held: ScopeMark) -> Result<ScopeUpdate, Stale> {
        self.reloads.fetch_add(1, Ordering::SeqCst);
        Ok(ScopeUpdate::Delta(sync_core::store::ScopeDelta::empty(
            scope, held,
        )))
    }

    fn stale_scopes(_: &Stale) -> Vec<String> {
        vec!["s".to_owned()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_refused_as_stale_every_time_gets_503_unavailable() {
    let persists = Arc::new(AtomicUsize::new(0));
    let reloads = Arc::new(AtomicUsize::new(0));
    let mut config = ServerConfig::default();
    config.shared_store = true;
    let server = Server::start(
        TokioRuntime::current(),
        config,
        OpenHooks,
        KvApp::new(),
        AlwaysStale {
            inner: MemoryStore::new(),
            persists: persists.clone(),
            reloads: reloads.clone(),
        },
    )
    .await
    .unwrap();
    // Scope `s` must be known for a delta to be asked for: a first push
    // creates it (its batch is refused like every other).
    let body = r#"{"mutations":[{"id":"m1","scope":"s","name":"put","args":{"key":"k","value":1},"client_id":"c","seq":1}]}"#;
    let request = parse_http("POST", "/push", "", body.as_bytes(), &Limits::default()).unwrap();
    let response = server.handle().sync(request).await.unwrap();
    assert_eq!(response.status, 503);
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["code"], "unavailable", "{body}");
    assert_eq!(
        body["error"],
        "other nodes kept writing this scope; nothing was applied, retry"
    );
    // The first attempt and eight more, each refused and reloaded, then an
    // empty batch that lets a store holding the scope for the next attempt
    // release it (handed to the store after the answer: waited for, the
    // wait bounded only as a hang guard).
    for _ in 0..1000 {
        if persists.load(Ordering::SeqCst) >= 10 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(persists.load(Ordering::SeqCst), 10);
    assert!(reloads.load(Ordering::SeqCst) >= 8, "reloads by delta");
}
