//! Change notices between nodes: every batch that commits sends one
//! `NOTIFY` per scope it touched (PostgreSQL delivers it only after the
//! commit, so a notice can never arrive before the data it announces), and
//! [`crate::PgStore::watch`] listens on a connection of its own.

use std::future::poll_fn;
use std::time::Duration;

use tokio_postgres::{AsyncMessage, Config, NoTls};

/// What another node did, as told to a [`crate::PgStore::watch`] callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Changed {
    /// Another node committed a batch touching this scope.
    Scope(String),
    /// The listening connection is up, for the first time or again after it
    /// was lost: notices sent before are lost, so any scope may have changed.
    Everything,
}

/// The channel for one deployment (schema), so deployments sharing a
/// database do not hear each other.
pub(crate) fn channel(schema: Option<&str>) -> String {
    format!("sync_changed_{}", schema.unwrap_or("public"))
}

/// A notice's payload: the writing node, a tab, the scope.
pub(crate) fn payload_prefix(node: &str) -> String {
    format!("{node}\t")
}

/// Listens until the runtime shuts down, reconnecting after a pause when
/// the connection drops.
pub(crate) async fn listen(
    config: Config,
    channel: String,
    node: String,
    on_change: Box<dyn Fn(Changed) + Send + Sync>,
) {
    let own = payload_prefix(&node);
    let mut connected_before = false;
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(async move {
                    while let Some(Ok(message)) = poll_fn(|cx| conn.poll_message(cx)).await {
                        if let AsyncMessage::Notification(n) = message
                            && tx.send(n.payload().to_owned()).is_err()
                        {
                            break;
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN \"{channel}\"")).await {
                    Ok(()) => {
                        // Commits made before the listener was up (at start
                        // or during an outage) were not heard.
                        if connected_before {
                            tracing::info!(%channel, "listening again");
                        }
                        connected_before = true;
                        on_change(Changed::Everything);
                        while let Some(payload) = rx.recv().await {
                            if payload.starts_with(&own) {
                                continue;
                            }
                            if let Some((_, scope)) = payload.split_once('\t') {
                                on_change(Changed::Scope(scope.to_owned()));
                            }
                        }
                        tracing::warn!(%channel, "change notices interrupted; reconnecting");
                    }
                    Err(e) => tracing::warn!(%channel, error = %e, "cannot listen; retrying"),
                }
            }
            Err(e) => tracing::warn!(%channel, error = %e, "cannot listen; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
