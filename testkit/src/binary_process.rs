//! Starting a server binary for a test: a free loopback port, the process
//! killed when the test drops it, ready once `/healthz` answers.

use std::process::Stdio;
use std::time::Duration;

use http::Method;
use tokio::process::{Child, Command};

use crate::http_client::HttpConn;

/// A running server binary (killed on drop).
pub(crate) struct Child2 {
    pub(crate) child: Child,
    pub(crate) addr: String,
}

pub(crate) async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Starts the binary with `args` and waits until `/healthz` answers.
pub(crate) async fn start(exe: &str, args: &[&str]) -> Child2 {
    let addr = format!("127.0.0.1:{}", free_port().await);
    let child = Command::new(exe)
        .args(["--addr", &addr, "--log-level", "warn"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the server");
    for _ in 0..600 {
        if let Ok(mut conn) = HttpConn::new(&format!("http://{addr}")) {
            if let Ok(r) = conn.request(Method::GET, "/healthz", &[], "").await {
                assert_eq!(r.status, 200);
                assert_eq!(r.text(), "ok\n");
                return Child2 { child, addr };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not answer /healthz");
}
