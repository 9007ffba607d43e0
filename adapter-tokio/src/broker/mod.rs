//! Broker links for the live backplane (`--broker`): Redis pub/sub and NATS.
//!
//! A link attaches itself to a running server
//! ([`adapter_common::ServerHandle::attach_backplane`]), then carries out the
//! server core's [`BackplaneCommand`]s (subscribe to a topic's channel while the
//! node has local subscribers, publish local clients' messages) and hands
//! other nodes' messages back with
//! [`adapter_common::ServerHandle::deliver_remote`]. Each message carries the
//! sending node's name so a node never delivers its own publish twice.
//! Messages from one node are published in order on one connection, so
//! per-topic order from one publisher holds on every node.
//!
//! When the broker connection drops, the link logs it, keeps track of the
//! wanted topics, and on return resubscribes them all and logs the gap (how
//! long, how many publishes of this node could not be sent): messages sent
//! during the gap are lost, as with any pub/sub broker.

mod nats;
mod redis;

use adapter_common::ServerHandle;
use adapter_common::backplane::{BackplaneCommand, BrokerUrl, decode_message};
use bytes::Bytes;

/// Why a broker link could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The server is gone.
    #[error("server stopped")]
    Stopped,
    /// The URL was refused by the client library.
    #[error("invalid broker URL: {0}")]
    Url(String),
}

/// Attaches a link to `url` to the server behind `handle` and runs it in the
/// background until the server stops. Connecting happens in the background
/// too (and is retried), so a broker that is down at start delays nothing.
pub async fn start<U: Send + 'static>(
    url: &BrokerUrl,
    handle: ServerHandle<U>,
) -> Result<(), BrokerError> {
    let commands = handle
        .attach_backplane()
        .await
        .map_err(|_| BrokerError::Stopped)?;
    let link = Link {
        node: node_name(),
        handle,
    };
    match url {
        BrokerUrl::Redis(u) => {
            let client =
                ::redis::Client::open(u.as_str()).map_err(|e| BrokerError::Url(e.to_string()))?;
            tokio::spawn(redis::run(client, link, commands));
        }
        BrokerUrl::Nats(u) => {
            tokio::spawn(nats::run(u.clone(), link, commands));
        }
        _ => return Err(BrokerError::Url(url.to_string())),
    }
    Ok(())
}

/// What both links share: this node's name and the way back into the server.
struct Link<U> {
    node: String,
    handle: ServerHandle<U>,
}

impl<U: Send + 'static> Link<U> {
    /// Delivers a broker message on `topic` locally, unless it is our own.
    async fn deliver(&self, topic: String, payload: &[u8]) {
        match decode_message(payload) {
            Some((node, _)) if node == self.node => {}
            Some((_, data)) => {
                let _ = self
                    .handle
                    .deliver_remote(topic, Bytes::copy_from_slice(data))
                    .await;
            }
            None => tracing::warn!(%topic, "broker message not from a live node; dropped"),
        }
    }
}

/// The wanted topic set after one interest command.
fn apply_interest(topics: &mut std::collections::BTreeSet<String>, command: &BackplaneCommand) {
    if let BackplaneCommand::Interest {
        subscribe,
        unsubscribe,
    } = command
    {
        topics.extend(subscribe.iter().cloned());
        for t in unsubscribe {
            topics.remove(t);
        }
    }
}

/// A name for this node in its broker messages: process id and start time.
fn node_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}
