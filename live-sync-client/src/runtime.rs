//! Where the client's background tasks run: the caller's tokio runtime when
//! there is one, otherwise one shared single-threaded tokio runtime on a
//! thread of its own (`live-sync-client`), started on first use.
//!
//! Why: the connection, sync driver and HTTP tasks need a reactor and timers,
//! while everything the application awaits (commands, events, states) goes
//! through runtime-neutral channels. So an application on smol, or on no
//! async runtime at all, uses the same client; only the socket work happens
//! on that thread.

use std::sync::OnceLock;
use std::time::SystemTime;

use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::ClientError;

/// The client's clock: tokio's, read only here, so every timer and deadline
/// of the client's tasks follows one clock (and paused-time tests drive it).
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// The wall clock, read only here: token expiry is judged against it.
pub(crate) fn wall_clock() -> SystemTime {
    SystemTime::now()
}

/// The runtime to spawn the client's tasks on.
pub(crate) fn io_handle() -> Result<Handle, ClientError> {
    if let Ok(current) = Handle::try_current() {
        return Ok(current);
    }
    static OWN: OnceLock<Result<Handle, String>> = OnceLock::new();
    OWN.get_or_init(start_own)
        .clone()
        .map_err(ClientError::NoRuntime)
}

/// Starts the shared runtime and its thread, which runs for the rest of the
/// process (clients come and go; one idle thread is all it costs).
fn start_own() -> Result<Handle, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("live-sync-client".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|e| e.to_string())?;
    Ok(handle)
}
