//! Each mistake in building or serving is an error that names what to fix.

use live_sync::{Builder, Error};

#[test]
fn start_outside_tokio_says_how_to_start() {
    let e = smol::block_on(Builder::new().start()).unwrap_err();
    assert!(matches!(e, Error::NoTokioRuntime), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("#[tokio::main]") && msg.contains("run(addr)"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_open_server_refuses_a_public_address() {
    let server = Builder::new().start().await.unwrap();
    let e = server.serve("0.0.0.0:0").await.unwrap_err();
    assert!(matches!(e, Error::Unprotected { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("hooks") && msg.contains("allow_anonymous"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_bad_address_is_named() {
    let server = Builder::new().start().await.unwrap();
    let e = server.serve("localhost-8080").await.unwrap_err();
    assert!(e.to_string().contains("HOST:PORT"), "{e}");
}

#[tokio::test]
async fn an_unwritable_sqlite_path_names_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("app.db");
    let e = Builder::new().sqlite(&path).start().await.unwrap_err();
    assert!(matches!(e, Error::Store { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("SQLite file") && msg.contains("app.db"),
        "{msg}"
    );
    assert!(msg.contains("directory exists"), "{msg}");
}

#[tokio::test]
async fn bad_paths_and_broker_urls_are_refused_at_start() {
    let e = Builder::new()
        .configure(|c| c.ws_path = "ws".into())
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(_)) && e.to_string().contains("ws_path"),
        "{e}"
    );
    let e = Builder::new()
        .broker("kafka://h:9092")
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("redis://HOST:PORT"), "{e}");
}

#[tokio::test]
async fn a_broker_ca_file_is_checked_at_start() {
    let e = Builder::new()
        .broker_ca_file("ca.pem")
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("without a broker URL"), "{e}");
}

#[cfg(any(feature = "redis", feature = "nats"))]
#[tokio::test]
async fn an_unusable_broker_ca_file_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    // Refused before anything connects: no broker needs to be running.
    let urls = [
        #[cfg(feature = "redis")]
        "redis://127.0.0.1:1",
        #[cfg(feature = "nats")]
        "nats://127.0.0.1:1",
    ];
    for url in urls {
        let e = Builder::new()
            .broker(url)
            .broker_ca_file(&empty)
            .start()
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("empty.pem") && msg.contains("no PEM certificate"),
            "{url}: {msg}"
        );
    }
}
