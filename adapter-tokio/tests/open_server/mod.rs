//! The tokio server with open hooks and a memory store on a free loopback
//! port, configured by the test, for the tests that play clients over real
//! sockets; dropping it stops accepting connections.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use adapter_common::metrics::MetricsSnapshot;
use adapter_common::{OpenHooks, Server, ServerConfig, ServerHandle, http};
use adapter_tokio::{TokioRuntime, serve};
use sync_core::{KvApp, MemoryStore};

/// The longest any guarded wait may take before the test fails.
pub const GUARD: Duration = Duration::from_secs(30);

pub struct Running {
    pub addr: SocketAddr,
    pub handle: ServerHandle<()>,
    pub service: http::Service<TokioRuntime, OpenHooks>,
    accept: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Running {
    pub async fn metrics(&self) -> MetricsSnapshot {
        self.handle.metrics().await.expect("server running")
    }

    /// Waits until `done` holds for the metrics; fails after [`GUARD`].
    pub async fn wait_for(&self, what: &str, done: impl Fn(&MetricsSnapshot) -> bool) {
        let waiting = async {
            loop {
                if done(&self.metrics().await) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        if tokio::time::timeout(GUARD, waiting).await.is_err() {
            panic!("never reached: {what}; metrics {:?}", self.metrics().await);
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

pub async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Running {
    let mut config = ServerConfig::default();
    config.seed = Some(7);
    configure(&mut config);
    let server = Server::start(
        TokioRuntime::current(),
        config,
        OpenHooks,
        KvApp::new(),
        MemoryStore::new(),
    )
    .await
    .expect("server starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = server.handle().clone();
    let service = server.service();
    let accept = tokio::spawn(serve(listener, server, std::future::pending()));
    Running {
        addr,
        handle,
        service,
        accept,
    }
}
