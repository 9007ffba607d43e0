//! Helpers shared by the client tests: the tokio server with the conformance
//! profile (adapter-common's `conformance` hooks, app and configuration),
//! in-process or on a runtime of its own thread so it can be killed and
//! restarted on the same port and SQLite file, and an event recorder whose
//! waits are guarded against hangs.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use adapter_common::Server;
use adapter_common::conformance::{self, ProfileHooks, ProfileServer};
use adapter_tokio::{TokioRuntime, serve};
use live_sync_client::{LiveClient, LiveEvent, LiveEvents, LiveOptions, Message};
use serde_json::{Value, json};
use sync_sqlite::{Durability, SqliteStore};
use testkit::profile::Profile;
use tokio::net::TcpListener;

/// Hang guard for any single wait (never a pass/fail timing).
pub const GUARD: Duration = Duration::from_secs(30);

/// Awaits `f` or panics with `what` after [`GUARD`].
pub async fn guard<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("hang guard: {what}"))
}

/// The tokio server with the conformance profile, served on the test's own
/// runtime; dropping it stops accepting connections.
pub type TestServer = ProfileServer<Accepting>;

/// Stops the accept loop when dropped.
pub struct Accepting(tokio::task::JoinHandle<std::io::Result<()>>);

impl Drop for Accepting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The conformance profile's server on the current runtime: on the SQLite file
/// `db` if given (what a restart finds again), else in memory.
async fn profile_server(db: Option<PathBuf>) -> Server<TokioRuntime, ProfileHooks> {
    let profile = Profile::conformance();
    match db {
        None => conformance::start(TokioRuntime::current(), &profile).await,
        Some(path) => {
            let store = SqliteStore::open(&path, Durability::Full)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            Server::start(
                TokioRuntime::current(),
                conformance::config(&profile),
                ProfileHooks,
                conformance::app(),
                store,
            )
            .await
            .expect("the conformance server starts on SQLite")
        }
    }
}

/// The tokio server on the test's own runtime, on a free loopback port.
pub async fn start_server() -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let server = profile_server(None).await;
    let handle = server.handle().clone();
    let accepting = tokio::spawn(serve(listener, server, std::future::pending()));
    ProfileServer::new(addr, handle, Accepting(accepting))
}

/// The tokio server with the conformance profile except its history rules
/// (`(pattern, size)`), on the test's own runtime, on a free loopback port.
pub async fn start_server_with_history(history: &'static [(&'static str, usize)]) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let mut profile = Profile::conformance();
    profile.history = history;
    let server = conformance::start(TokioRuntime::current(), &profile).await;
    let handle = server.handle().clone();
    let accepting = tokio::spawn(serve(listener, server, std::future::pending()));
    ProfileServer::new(addr, handle, Accepting(accepting))
}

/// A TCP relay in front of a server: clients connect through it, and the
/// test can cut every connection it carries and refuse new ones for a while,
/// as a network outage would (the server sees its sessions end too).
pub struct Relay {
    pub addr: SocketAddr,
    refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relays `127.0.0.1:<free port>` to `target`.
    pub async fn start(target: SocketAddr) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let refuse = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cut, cut_rx) = tokio::sync::watch::channel(0u64);
        let refusing = refuse.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if refusing.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                cut_rx.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Relay {
            addr,
            refuse,
            cut,
            accepting,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Drops every relayed connection and refuses new ones until [`Relay::heal`].
    pub fn cut(&self) {
        self.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Relays new connections again.
    pub fn heal(&self) {
        self.refuse
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut.send_modify(|n| *n += 1);
    }
}

/// The tokio server on a runtime of its own thread: stopping it drops the
/// runtime, which ends every session and closes every socket, as a crash would.
pub struct ServerThread {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Serves on `addr` (`127.0.0.1:0` for a free port), keeping sync state in
    /// the SQLite file `db` if given, so a restart finds it again.
    pub fn start(addr: &str, db: Option<PathBuf>) -> ServerThread {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let addr = addr.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                // The port was just released by the previous instance: retry
                // briefly if the OS still holds it.
                let mut tries = 0;
                let listener = loop {
                    match TcpListener::bind(&addr).await {
                        Ok(l) => break l,
                        Err(e) if tries < 100 => {
                            tries += 1;
                            eprintln!("bind {addr}: {e}; retrying");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("bind {addr}: {e}"),
                    }
                };
                let bound = listener.local_addr().expect("local address");
                let server = profile_server(db).await;
                let serving = tokio::spawn(serve(listener, server, std::future::pending()));
                ready_tx.send(bound).expect("report address");
                let _ = stop_rx.await;
                serving.abort();
            });
            // Every task (sessions, the server's driver, the store) goes with the runtime.
            drop(rt);
        });
        let addr = ready_rx.recv_timeout(GUARD).expect("server started");
        ServerThread {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops the server and waits until its runtime is gone.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            guard(
                "server thread ends",
                tokio::task::spawn_blocking(move || thread.join()),
            )
            .await
            .expect("join")
            .expect("server thread panicked");
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Options for tests: a token, a fixed seed and short reconnect delays.
pub fn options(token: &str) -> LiveOptions {
    LiveOptions::default()
        .token(token)
        .seed(7)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// A live client's events, with everything seen kept for later assertions.
pub struct Recorder {
    events: LiveEvents,
    pub seen: Vec<LiveEvent>,
    barriers: u64,
}

impl Recorder {
    pub fn new(events: LiveEvents) -> Self {
        Recorder {
            events,
            seen: Vec::new(),
            barriers: 0,
        }
    }

    /// Reads events until `pick` returns something.
    pub async fn until<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&LiveEvent) -> Option<T>,
    ) -> T {
        let seen = &mut self.seen;
        let events = &mut self.events;
        guard(what, async {
            loop {
                let ev = events.recv().await.expect("event stream ended");
                let picked = pick(&ev);
                seen.push(ev);
                if let Some(t) = picked {
                    return t;
                }
            }
        })
        .await
    }

    /// The next message on `topic`.
    pub async fn message_on(&mut self, topic: &str) -> Value {
        self.until(&format!("message on {topic}"), |ev| match ev {
            LiveEvent::Message(Message { topic: t, data, .. }) if t == topic => Some(data.clone()),
            _ => None,
        })
        .await
    }

    /// Round trip through the server: sends an application message and waits
    /// for its echo, so every frame sent before it has been handled.
    pub async fn barrier(&mut self, live: &LiveClient) {
        self.barriers += 1;
        let n = self.barriers;
        guard("barrier send", live.send("barrier", json!(n)))
            .await
            .expect("send barrier");
        let want = json!({"topic": "barrier", "data": n});
        self.until("barrier echo", |ev| match ev {
            LiveEvent::Message(m) if m.topic == "echo" && m.data == want => Some(()),
            _ => None,
        })
        .await;
    }

    /// Messages seen so far, as (topic, data).
    pub fn messages(&self) -> Vec<(String, Value)> {
        self.seen
            .iter()
            .filter_map(|ev| match ev {
                LiveEvent::Message(m) => Some((m.topic.clone(), m.data.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Connects and waits for the first connection.
pub async fn connect(url: &str, token: &str) -> (LiveClient, Recorder) {
    let (live, events) = LiveClient::connect(url, options(token)).expect("connect");
    let mut rec = Recorder::new(events);
    rec.until("connected", |ev| {
        matches!(ev, LiveEvent::Connected).then_some(())
    })
    .await;
    (live, rec)
}
