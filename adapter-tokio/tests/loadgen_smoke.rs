//! Runs each load generator mode (testkit's `loadgen`) briefly against the
//! tokio server with the conformance profile, in process, and checks the
//! counts it reports (never its timings).

use adapter_common::conformance::{self, ProfileServer};
use adapter_tokio::{TokioRuntime, serve};
use clap::Parser;
use testkit::conformance::ServerUnderTest;
use testkit::loadgen::args::{Cli, Mode};
use testkit::loadgen::{fanout, idle, resume, sync_load};
use testkit::profile::Profile;

/// Stops the accept loop when the server is dropped.
struct Accepting(tokio::task::JoinHandle<std::io::Result<()>>);

impl Drop for Accepting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn cli(extra: &[&str]) -> (Box<dyn ServerUnderTest>, Cli) {
    let server = conformance::start(TokioRuntime::current(), &Profile::conformance()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = server.handle().clone();
    let accept = tokio::spawn(serve(listener, server, std::future::pending()));
    let server: Box<dyn ServerUnderTest> =
        Box::new(ProfileServer::new(addr, handle, Accepting(accept)));
    let base = server.http_base();
    let mut argv = vec!["loadgen", "--url", base.as_str(), "--token", "alice"];
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).expect("arguments");
    (server, cli)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_everything_it_expects() {
    let (_server, cli) = cli(&[
        "fanout",
        "--subscribers",
        "20",
        "--topics",
        "2",
        "--publishers",
        "2",
        "--rate",
        "100",
        "--duration",
        "1",
        "--drain",
        "1",
        "--settle",
        "0.5",
    ])
    .await;
    let Mode::Fanout(args) = &cli.mode else {
        unreachable!("parsed as fanout")
    };
    let r = fanout::run(&cli, args).await.expect("fanout run");
    assert_eq!(r.subscribers, 20);
    assert!(r.publishes > 0, "{r}");
    assert_eq!(r.expected, r.publishes * 10, "{r}");
    assert_eq!(r.delivered, r.expected, "{r}");
    assert_eq!(r.latency.count, r.delivered);
    assert_eq!((r.closed_slow, r.closed_other), (0, 0), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_clients_read_every_offset_once() {
    // The profile gives `hist:*` a history; nobody is cut here, so every
    // client reads every offset live and the final offset is the publishes.
    let (_server, cli) = cli(&[
        "resume",
        "--clients",
        "20",
        "--topic",
        "hist:resume",
        "--rate",
        "50",
        "--duration",
        "0.5",
        "--drain",
        "0.5",
    ])
    .await;
    let Mode::Resume(args) = &cli.mode else {
        unreachable!("parsed as resume")
    };
    let r = resume::run(&cli, args).await.expect("resume run");
    assert_eq!(r.clients, 20, "{r}");
    assert_eq!(r.publishes, 25, "{r}");
    assert_eq!(r.final_offset, 25, "{r}");
    assert_eq!((r.missing, r.duplicates, r.failed), (0, 0, 0), "{r}");
    assert_eq!((r.disconnected, r.recovered), (0, 0), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_pushes_and_pulls_every_mutation() {
    let (_server, cli) = cli(&[
        "sync",
        "--clients",
        "4",
        "--mutations",
        "25",
        "--scope",
        "shared",
    ])
    .await;
    let Mode::Sync(args) = &cli.mode else {
        unreachable!("parsed as sync")
    };
    let r = sync_load::run(&cli, args).await.expect("sync run");
    assert_eq!((r.pushes, r.failures), (100, 0), "{r}");
    assert_eq!(r.push_latency.count, 100);
    // Every client pulls the whole shared scope.
    assert_eq!(r.pulled, 400, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_holds_every_connection() {
    // The server runs in this process: its RSS is this process's.
    let pid = std::process::id().to_string();
    let (_server, cli) = cli(&[
        "idle",
        "--connections",
        "30",
        "--hold",
        "0.2",
        "--server-pid",
        &pid,
    ])
    .await;
    let Mode::Idle(args) = &cli.mode else {
        unreachable!("parsed as idle")
    };
    let r = idle::run(&cli, args).await.expect("idle run");
    assert_eq!((r.open, r.failed, r.dropped), (30, 0, 0), "{r}");
    assert!(r.rss_kib.is_some(), "own RSS readable");
}
