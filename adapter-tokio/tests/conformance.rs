//! The black-box conformance suite (testkit) against the tokio server, started
//! with adapter-common's conformance profile server (the same one the smol
//! adapter's suite runs).

use adapter_common::conformance::{self, ProfileServer};
use adapter_tokio::{TokioRuntime, serve};
use testkit::conformance::ServerUnderTest;
use testkit::profile::Profile;

/// Stops the accept loop when the server under test is dropped.
struct Accepting(tokio::task::JoinHandle<std::io::Result<()>>);

impl Drop for Accepting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn start(p: Profile) -> Box<dyn ServerUnderTest> {
    let server = conformance::start(TokioRuntime::current(), &p).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = server.handle().clone();
    let accept = tokio::spawn(serve(listener, server, std::future::pending()));
    Box::new(ProfileServer::new(addr, handle, Accepting(accept)))
}

testkit::conformance_suite!(start);
