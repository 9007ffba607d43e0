//! The stock server binary end to end, for any adapter's binary (they share
//! one command line): health and metrics endpoints, static files, graceful
//! shutdown on SIGTERM (sessions closed with 1001, exit status 0) and
//! durability across a graceful restart.
//!
//! An adapter runs every scenario against its binary with
//! `testkit::server_binary_suite!(env!("CARGO_BIN_EXE_<name>"));` in a test
//! file: one `#[test]` per scenario, each on a tokio runtime of its own.

use std::path::Path;
use std::time::Duration;

use http::Method;
use serde_json::json;
use tokio::process::Child;

use crate::binary_process::start;
use crate::http_client::HttpConn;
use crate::sync_client::{SyncHttp, push_body, put};
use crate::ws_client::WsClient;

/// Expands into one `#[test]` per scenario of [`crate::server_binary`],
/// each starting the binary at the path given (an expression, usually
/// `env!("CARGO_BIN_EXE_<name>")`).
#[macro_export]
macro_rules! server_binary_suite {
    ($exe:expr) => {
        #[test]
        fn metrics_count_what_happened_and_static_files_are_served() {
            $crate::server_binary::run(
                $crate::server_binary::metrics_count_what_happened_and_static_files_are_served(
                    $exe,
                ),
            );
        }

        #[test]
        fn sigterm_closes_sessions_with_1001_and_exits_cleanly() {
            $crate::server_binary::run(
                $crate::server_binary::sigterm_closes_sessions_with_1001_and_exits_cleanly($exe),
            );
        }

        #[test]
        fn the_stock_binary_serves_the_browser_client_and_the_demo() {
            $crate::server_binary::run(
                $crate::server_binary::the_stock_binary_serves_the_browser_client_and_the_demo(
                    $exe,
                ),
            );
        }

        #[test]
        fn protected_mode_refuses_a_public_address_without_auth() {
            $crate::server_binary::run(
                $crate::binary_tokens::protected_mode_refuses_a_public_address_without_auth($exe),
            );
        }

        #[test]
        fn hostile_tokens_are_refused_with_401_and_their_code() {
            $crate::server_binary::run(
                $crate::binary_tokens::hostile_tokens_are_refused_with_401_and_their_code($exe),
            );
        }

        #[test]
        fn claims_decide_scopes_and_topics() {
            $crate::server_binary::run($crate::binary_tokens::claims_decide_scopes_and_topics(
                $exe,
            ));
        }

        #[test]
        fn a_public_key_refuses_algorithm_confusion() {
            $crate::server_binary::run(
                $crate::binary_tokens::a_public_key_refuses_algorithm_confusion($exe),
            );
        }

        #[test]
        fn tokens_refresh_in_band_and_expiry_closes_with_4001() {
            $crate::server_binary::run(
                $crate::binary_tokens::tokens_refresh_in_band_and_expiry_closes_with_4001($exe),
            );
        }

        #[test]
        fn sync_requests_over_the_rate_are_429() {
            $crate::server_binary::run($crate::binary_tokens::sync_requests_over_the_rate_are_429(
                $exe,
            ));
        }

        #[test]
        fn connections_over_the_per_ip_bound_are_429() {
            $crate::server_binary::run(
                $crate::binary_limits::connections_over_the_per_ip_bound_are_429($exe),
            );
        }

        #[test]
        fn loopback_is_bound_by_the_total_only() {
            $crate::server_binary::run($crate::binary_limits::loopback_is_bound_by_the_total_only(
                $exe,
            ));
        }

        #[test]
        fn a_subscribe_storm_is_rate_limited_then_closed() {
            $crate::server_binary::run(
                $crate::binary_limits::a_subscribe_storm_is_rate_limited_then_closed($exe),
            );
        }

        #[test]
        fn headers_one_byte_at_a_time_are_cut_off() {
            $crate::server_binary::run(
                $crate::binary_limits::headers_one_byte_at_a_time_are_cut_off($exe),
            );
        }

        #[test]
        fn tls_serves_https_and_wss() {
            $crate::server_binary::run($crate::binary_tls::tls_serves_https_and_wss($exe));
        }

        #[test]
        fn acknowledged_pushes_survive_a_graceful_restart() {
            $crate::server_binary::run(
                $crate::server_binary::acknowledged_pushes_survive_a_graceful_restart($exe),
            );
        }
    };
}

/// Runs one scenario to completion on a tokio runtime of its own.
pub fn run(scenario: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(scenario);
}

async fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill(1)");
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server exits after SIGTERM")
        .expect("wait")
}

/// A `_sync` pull over the WebSocket and its answer: everything the session
/// sent before has been handled when it arrives (the stock server has no echo).
async fn round_trip(ws: &mut WsClient) {
    ws.send(&json!({"topic":"_sync","data":{"rid":1,"op":"pull","body":{"scope":"s"}}}))
        .await;
    let (reply, _) = ws.recv_topic("_sync").await;
    assert_eq!(reply["data"]["status"], json!(200), "{reply}");
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// With no `--static`, `/` is the todo demo and `/live-sync.js` the browser
/// client, with the content type browsers require of module scripts;
/// `--no-web` turns both off.
pub async fn the_stock_binary_serves_the_browser_client_and_the_demo(exe: &str) {
    let srv = start(exe, &["--memory"]).await;
    let mut http = HttpConn::new(&format!("http://{}", srv.addr)).unwrap();
    let page = http.request(Method::GET, "/", &[], "").await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("todo.js"), "{}", page.text());
    let client = http
        .request(Method::GET, "/live-sync.js", &[], "")
        .await
        .unwrap();
    assert_eq!(client.status, 200);
    assert_eq!(
        client.headers[http::header::CONTENT_TYPE],
        "text/javascript; charset=utf-8",
        "browsers refuse module scripts of any other type"
    );
    drop(srv);

    let srv = start(exe, &["--memory", "--no-web"]).await;
    let mut http = HttpConn::new(&format!("http://{}", srv.addr)).unwrap();
    let page = http.request(Method::GET, "/", &[], "").await.unwrap();
    assert_eq!(page.status, 404);
}

/// `/metrics` counts a session, a subscription and a push; `--static` serves
/// files and refuses paths out of its directory.
pub async fn metrics_count_what_happened_and_static_files_are_served(exe: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>todo</h1>").unwrap();
    let srv = start(exe, &["--memory", "--static", dir.path().to_str().unwrap()]).await;
    let base = format!("http://{}", srv.addr);
    let mut ws = WsClient::connect_as(&format!("ws://{}/ws", srv.addr), "anyone").await;
    ws.subscribe("news").await;
    round_trip(&mut ws).await;
    let mut sync = SyncHttp::new(&base, "/_sync", None).unwrap();
    let r = sync
        .push(&push_body(&[put("m1", "s", "k", json!(1))]))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    let mut http = HttpConn::new(&base).unwrap();
    let m = http
        .request(Method::GET, "/metrics", &[], "")
        .await
        .unwrap();
    assert_eq!(m.status, 200);
    let text = m.text();
    assert_eq!(metric(&text, "live_sessions"), Some(1), "{text}");
    assert_eq!(metric(&text, "live_subscriptions"), Some(1), "{text}");
    assert_eq!(metric(&text, "sync_pushes_total"), Some(1), "{text}");
    assert_eq!(metric(&text, "sync_batches_total"), Some(1), "{text}");
    assert_eq!(metric(&text, "sync_changes_total"), Some(1), "{text}");

    let page = http.request(Method::GET, "/", &[], "").await.unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.text(), "<h1>todo</h1>");
    let escape = http
        .request(Method::GET, "/../Cargo.toml", &[], "")
        .await
        .unwrap();
    assert_eq!(escape.status, 404);
    let missing = http
        .request(Method::GET, "/nope.js", &[], "")
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    ws.close().await;
}

/// SIGTERM closes every session with 1001 and the process exits with 0.
pub async fn sigterm_closes_sessions_with_1001_and_exits_cleanly(exe: &str) {
    let mut srv = start(exe, &["--memory"]).await;
    let mut ws = WsClient::connect_as(&format!("ws://{}/ws", srv.addr), "anyone").await;
    ws.subscribe("news").await;
    round_trip(&mut ws).await;
    let status = sigterm(&mut srv.child).await;
    let (code, _) = ws.recv_until_closed().await;
    assert_eq!(code, Some(1001));
    assert!(status.success(), "exit status {status}");
}

async fn snapshot_of(addr: &str, scope: &str) -> serde_json::Value {
    let mut sync = SyncHttp::new(&format!("http://{addr}"), "/_sync", None).unwrap();
    let r = sync.snapshot(scope).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Pushes acknowledged before SIGTERM are in the snapshot after a restart
/// on the same SQLite file.
pub async fn acknowledged_pushes_survive_a_graceful_restart(exe: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("restart.db");
    let db = db.to_str().unwrap();
    let mut srv = start(exe, &["--db", db]).await;
    let mut sync = SyncHttp::new(&format!("http://{}", srv.addr), "/_sync", None).unwrap();
    for i in 0..5 {
        let body = push_body(&[put(&format!("m{i}"), "docs", &format!("k{i}"), json!(i))]);
        let r = sync.push(&body).await.unwrap();
        assert_eq!(r.json()["results"][0]["cursor"], json!(i + 1));
    }
    assert!(sigterm(&mut srv.child).await.success());
    assert!(Path::new(db).exists());

    let mut again = start(exe, &["--db", db]).await;
    let snap = snapshot_of(&again.addr, "docs").await;
    assert_eq!(snap["cursor"], json!(5), "{snap}");
    assert_eq!(snap["data"]["k4"], json!(4), "{snap}");
    assert!(sigterm(&mut again.child).await.success());
}
