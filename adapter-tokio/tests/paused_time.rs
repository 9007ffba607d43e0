//! The server reads tokio's clock: with time paused, its deadlines move with
//! tokio's time, so a test can jump over a minute of idleness at once.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

mod open_server;

#[tokio::test(start_paused = true)]
async fn an_idle_session_is_closed_after_the_idle_timeout_in_paused_time() {
    let server = open_server::start(|config| {
        config.hub.timers.ping_interval = None;
        config.hub.timers.idle_timeout = Some(Duration::from_secs(600));
    })
    .await;
    let url = server.ws_url();
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let started = tokio::time::Instant::now();
    let closed = loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed, Some(4000), "closed as idle");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(600),
        "closed after {waited:?} of tokio time, before the idle timeout"
    );
}
