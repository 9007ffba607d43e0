//! SIGINT / SIGTERM as a future, for graceful shutdown.

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. Elsewhere than Unix, never.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use async_signal::{Signal, Signals};
        use futures_util::StreamExt;

        match Signals::new([Signal::Int, Signal::Term]) {
            Ok(mut signals) => match signals.next().await {
                Some(Ok(Signal::Term)) => tracing::info!("SIGTERM received, shutting down"),
                Some(Ok(_)) => tracing::info!("SIGINT received, shutting down"),
                Some(Err(e)) => tracing::warn!(error = %e, "signal error, shutting down"),
                None => std::future::pending::<()>().await,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGINT/SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}
