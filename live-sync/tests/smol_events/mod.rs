//! Waiting for client events from smol code, with a hang guard: the tests
//! that run the client outside tokio share it.

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
