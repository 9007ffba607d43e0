//! The black-box conformance suite (testkit) against the smol server, started
//! with adapter-common's conformance profile server. The suite's clients run
//! on tokio; the server's executor runs on threads of its own.

use adapter_common::conformance::{self, ProfileServer};
use adapter_smol::{ExecutorThreads, SmolRuntime, serve};
use testkit::conformance::ServerUnderTest;
use testkit::profile::Profile;

/// Keeps the smol server serving; dropping it shuts the server down the way
/// the binary does on SIGTERM, then stops the executor threads.
struct Serving {
    stop: smol::channel::Sender<()>,
    accepting: Option<smol::Task<std::io::Result<()>>>,
    workers: Option<ExecutorThreads>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.close();
        if let Some(accepting) = self.accepting.take() {
            let _ = smol::block_on(accepting);
        }
        drop(self.workers.take());
    }
}

async fn start(p: Profile) -> Box<dyn ServerUnderTest> {
    let rt = SmolRuntime::new();
    let workers = ExecutorThreads::start(&rt, 2).expect("executor threads");
    let server = conformance::start(rt.clone(), &p).await;
    let listener = smol::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let handle = server.handle().clone();
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let shutdown = async move {
        let _ = stopped.recv().await;
    };
    let accepting = rt.executor().spawn(serve(listener, server, shutdown));
    let serving = Serving {
        stop,
        accepting: Some(accepting),
        workers: Some(workers),
    };
    Box::new(ProfileServer::new(addr, handle, serving))
}

testkit::conformance_suite!(start);
