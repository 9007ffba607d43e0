//! What the tests that run the client from smol code against the server on
//! smol share: running outside tokio, a served server, and waiting for
//! client events with a hang guard.

use std::time::Duration;

use live_sync::client::{LiveEvent, LiveEvents};

/// Waits for the first event `pick` accepts, skipping the others; fails
/// after 30 s instead of hanging.
pub(crate) async fn until<T>(
    events: &mut LiveEvents,
    what: &str,
    mut pick: impl FnMut(&LiveEvent) -> Option<T>,
) -> T {
    let wait = async {
        while let Some(event) = events.recv().await {
            if let Some(t) = pick(&event) {
                return Some(t);
            }
        }
        None
    };
    let timeout = async {
        smol::Timer::after(Duration::from_secs(30)).await;
        None
    };
    smol::future::or(wait, timeout)
        .await
        .unwrap_or_else(|| panic!("hang guard: {what}"))
}

/// A server on smol from `builder` (open hooks), serving on a loopback
/// port on `rt`'s executor until [`Served::stop`].
pub(crate) struct Served {
    pub(crate) handle: live_sync::ServerHandle<()>,
    pub(crate) addr: std::net::SocketAddr,
    stop: smol::channel::Sender<()>,
    serving: smol::Task<Result<(), live_sync::Error>>,
}

impl Served {
    pub(crate) async fn start(rt: &live_sync::SmolRuntime, builder: live_sync::Builder) -> Served {
        let server = builder.start_on(rt.clone()).await.unwrap();
        let handle = server.handle().clone();
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let serving = rt.executor().spawn(server.serve_on(listener, async move {
            let _ = stopped.recv().await;
        }));
        Served {
            handle,
            addr,
            stop,
            serving,
        }
    }

    /// Shuts the server down and waits until it has.
    pub(crate) async fn stop(self) {
        self.stop.send(()).await.unwrap();
        self.serving.await.unwrap();
    }
}

/// Runs `test` on a two-thread smol executor, outside any tokio runtime.
pub(crate) fn outside_tokio<F: std::future::Future<Output = ()>>(
    test: impl FnOnce(live_sync::SmolRuntime) -> F,
) {
    let rt = live_sync::SmolRuntime::new();
    let _workers = live_sync::ExecutorThreads::start(&rt, 2).unwrap();
    smol::block_on(async {
        assert!(
            tokio::runtime::Handle::try_current().is_err(),
            "this test must run outside tokio"
        );
        test(rt.clone()).await;
    });
}
