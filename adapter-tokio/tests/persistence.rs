//! The persistence loop through the public API, with a store whose first
//! write is held open: pushes arriving meanwhile are gathered into one next
//! batch (group commit), nothing is answered before its batch is durable, and
//! a shutdown waits for the batch in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use adapter_common::{OpenHooks, Server, ServerConfig, ServerHandle};
use adapter_tokio::TokioRuntime;
use sync_core::handler::parse_http;
use sync_core::store::ScopeRecords;
use sync_core::{Batch, KvApp, Limits, MemoryStore, Recovered, Store};

/// A memory store that records each batch's size and blocks its first
/// `persist` until the gate opens.
struct GatedStore {
    inner: MemoryStore,
    gate: Arc<Gate>,
    batches: Arc<Mutex<Vec<usize>>>,
}

#[derive(Default)]
struct Gate {
    state: Mutex<(bool, bool)>, // (entered, open)
    changed: Condvar,
}

impl Gate {
    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    fn wait_entered(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.0 {
            s = self.changed.wait(s).unwrap();
        }
    }
}

impl Store for GatedStore {
    type Error = <MemoryStore as Store>::Error;

    fn persist(&mut self, batch: &Batch) -> Result<(), Self::Error> {
        let mut s = self.gate.state.lock().unwrap();
        s.0 = true;
        self.gate.changed.notify_all();
        while !s.1 {
            s = self.gate.changed.wait(s).unwrap();
        }
        drop(s);
        self.batches.lock().unwrap().push(batch.changes.len());
        self.inner.persist(batch)
    }

    fn load(&mut self) -> Result<Recovered, Self::Error> {
        self.inner.load()
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, Self::Error> {
        self.inner.load_scope(scope)
    }
}

async fn start() -> (
    Server<TokioRuntime, OpenHooks>,
    Arc<Gate>,
    Arc<Mutex<Vec<usize>>>,
) {
    let gate = Arc::new(Gate::default());
    let batches = Arc::new(Mutex::new(Vec::new()));
    let store = GatedStore {
        inner: MemoryStore::new(),
        gate: gate.clone(),
        batches: batches.clone(),
    };
    let server = Server::start(
        TokioRuntime::current(),
        ServerConfig::default(),
        OpenHooks,
        KvApp::new(),
        store,
    )
    .await
    .unwrap();
    (server, gate, batches)
}

fn push(handle: &ServerHandle<()>, id: usize) -> tokio::task::JoinHandle<sync_core::Response> {
    let body = format!(
        r#"{{"mutations":[{{"id":"m{id}","scope":"s","name":"put","args":{{"key":"k{id}","value":{id}}}}}]}}"#
    );
    let request = parse_http("POST", "/push", "", body.as_bytes(), &Limits::default()).unwrap();
    let handle = handle.clone();
    tokio::spawn(async move { handle.sync(request).await.unwrap() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_during_a_write_gather_into_one_batch_and_wait_for_it() {
    let (server, gate, batches) = start().await;
    let handle = server.handle().clone();
    let first = push(&handle, 0);
    let waiting = gate.clone();
    tokio::task::spawn_blocking(move || waiting.wait_entered())
        .await
        .unwrap();

    let durable = Arc::new(AtomicBool::new(false));
    let mut rest = Vec::new();
    for id in 1..=10 {
        let answer = push(&handle, id);
        let durable = durable.clone();
        rest.push(tokio::spawn(async move {
            let response = answer.await.unwrap();
            assert!(durable.load(Ordering::SeqCst), "answered before durable");
            response
        }));
    }
    // Every push has reached the engine once the server core counted it.
    while handle.metrics().await.unwrap().sync.pushes < 11 {
        tokio::task::yield_now().await;
    }
    durable.store(true, Ordering::SeqCst);
    gate.open();

    assert_eq!(first.await.unwrap().status, 200);
    for answer in rest {
        assert_eq!(answer.await.unwrap().status, 200);
    }
    assert_eq!(
        *batches.lock().unwrap(),
        vec![1, 10],
        "one write, then one group commit"
    );
    let metrics = handle.metrics().await.unwrap();
    assert_eq!(metrics.sync.batches, 2);
    assert_eq!(metrics.sync.changes, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_batch_in_flight_and_answers_it() {
    let (server, gate, batches) = start().await;
    let handle = server.handle().clone();
    let answer = push(&handle, 0);
    let waiting = gate.clone();
    tokio::task::spawn_blocking(move || waiting.wait_entered())
        .await
        .unwrap();
    let stopping = tokio::spawn(async move { server.shutdown().await });
    // Shutdown has been asked for and cannot complete while the write is open.
    assert!(!stopping.is_finished());
    gate.open();
    stopping.await.unwrap();
    let response = answer.await.unwrap();
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(*batches.lock().unwrap(), vec![1]);
    assert!(handle.metrics().await.is_err(), "the server has stopped");
}
