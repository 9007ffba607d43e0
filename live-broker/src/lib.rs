//! Broker links for the live backplane (`--broker`): Redis pub/sub and NATS.
//!
//! # What this crate owns
//!
//! The links between a running server ([`ServerHandle`]) and a broker, each
//! behind its cargo feature (`redis`, `nats`) so that a build without one
//! compiles none of its client library. The links run on tokio (both client
//! libraries need it): [`start`] on the caller's tokio runtime,
//! [`start_on_own_thread`] on a one-thread tokio runtime of their own, for
//! servers on another runtime (smol). They talk to the server only through
//! its handle's runtime-neutral channels, so either works for any server.
//!
//! # What it must never do
//!
//! Decide anything about topics or delivery: which topics cross nodes and
//! when to subscribe are the server core's (`server_core::broker`); a link
//! only carries out its commands and hands messages back.
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
//! Topics with history and presence go through the broker's storage: the
//! link numbers and keeps publications there (`redis_history`,
//! `nats_history`: Redis Streams, JetStream streams), reads them back for a
//! recovering subscribe, and records, refreshes and reads members
//! (`redis_presence`, `nats_presence`), always as the server core's
//! commands ask; every command that waits for an answer gets one, a failed
//! one included (an append the broker could not take is handed back to be
//! delivered on this node only).
//!
//! When the broker connection drops, the link logs it, keeps track of the
//! wanted topics, and on return resubscribes them all and logs the gap (how
//! long, how many publishes of this node could not be sent): messages sent
//! during the gap are lost, as with any pub/sub broker.

#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "nats")]
mod nats_history;
#[cfg(feature = "nats")]
mod nats_presence;
#[cfg(feature = "nats")]
mod nats_subject;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_history;
#[cfg(feature = "redis")]
mod redis_presence;
#[cfg(any(feature = "redis", feature = "nats"))]
mod tls;

use std::future::Future;
use std::pin::Pin;

use adapter_common::ServerHandle;
use adapter_common::backplane::{BackplaneCommand, Broker, BrokerUrl};
#[cfg(any(feature = "redis", feature = "nats"))]
use adapter_common::backplane::{decode_message, decode_numbered, decode_presence};
#[cfg(any(feature = "redis", feature = "nats"))]
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
    /// A TLS file (the authorities to verify the broker against, the
    /// client certificate or its key) is unusable.
    #[error("{flag} {path}: {reason}")]
    TlsFile {
        /// The flag that names the file (`--broker-ca-file`, ...).
        flag: &'static str,
        /// The file given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// This build has no link for the URL's broker.
    #[error(
        "--broker {url}: this build has no {broker} support; enable the cargo feature `{feature}`"
    )]
    NotBuilt {
        /// The URL asked for.
        url: String,
        /// The broker's name.
        broker: &'static str,
        /// The cargo feature that brings its link in.
        feature: &'static str,
    },
    /// The link's thread or runtime could not be started.
    #[error("cannot start the broker link's thread: {0}")]
    Thread(std::io::Error),
}

/// A link's whole life: runs until the server stops.
type LinkTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Attaches a link to `url` to the server behind `handle` and runs it in the
/// background of the current tokio runtime until the server stops.
/// Connecting happens in the background too (and is retried), so a broker
/// that is down at start delays nothing. Must be called within a tokio
/// runtime; servers on another runtime use [`start_on_own_thread`].
pub async fn start<U: Send + 'static>(
    broker: &Broker,
    handle: ServerHandle<U>,
) -> Result<(), BrokerError> {
    let task = attach(broker, handle).await?;
    tokio::spawn(task);
    Ok(())
}

/// As [`start`], for a server on any runtime: the link runs on a one-thread
/// tokio runtime on a thread of its own (named `live-broker`), which ends
/// when the server stops. Resolves once the link is attached (or refused).
pub async fn start_on_own_thread<U: Send + 'static>(
    broker: &Broker,
    handle: ServerHandle<U>,
) -> Result<(), BrokerError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BrokerError::Thread)?;
    let (attached_tx, attached) = async_channel::bounded(1);
    let broker = broker.clone();
    std::thread::Builder::new()
        .name("live-broker".into())
        .spawn(move || {
            runtime.block_on(async move {
                match attach(&broker, handle).await {
                    Ok(task) => {
                        let _ = attached_tx.send(Ok(())).await;
                        task.await;
                    }
                    Err(e) => {
                        let _ = attached_tx.send(Err(e)).await;
                    }
                }
            });
        })
        .map_err(BrokerError::Thread)?;
    attached.recv().await.unwrap_or(Err(BrokerError::Stopped))
}

/// [`start`] within a tokio runtime, [`start_on_own_thread`] anywhere else.
pub async fn start_anywhere<U: Send + 'static>(
    broker: &Broker,
    handle: ServerHandle<U>,
) -> Result<(), BrokerError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        start(broker, handle).await
    } else {
        start_on_own_thread(broker, handle).await
    }
}

/// Refuses a broker this build lacks or cannot reach as asked (its URL,
/// its CA file), then attaches to the server and returns the link's task
/// (not yet running).
async fn attach<U: Send + 'static>(
    broker: &Broker,
    handle: ServerHandle<U>,
) -> Result<LinkTask, BrokerError> {
    check_built(broker.url())?;
    let connector = Connector::new(broker)?;
    let commands = handle
        .attach_backplane()
        .await
        .map_err(|_| BrokerError::Stopped)?;
    Ok(connector.run(handle, commands))
}

/// The error for a broker whose feature is off, before anything is attached.
fn check_built(url: &BrokerUrl) -> Result<(), BrokerError> {
    let not_built = |broker, feature| -> Result<(), BrokerError> {
        Err(BrokerError::NotBuilt {
            url: url.to_string(),
            broker,
            feature,
        })
    };
    match url {
        #[cfg(not(feature = "redis"))]
        BrokerUrl::Redis(_) => not_built("Redis", "redis"),
        #[cfg(not(feature = "nats"))]
        BrokerUrl::Nats(_) => not_built("NATS", "nats"),
        _ => {
            let _ = not_built;
            Ok(())
        }
    }
}

/// A broker's client, made and checked before the link attaches, so that a
/// bad URL or CA file fails the start instead of a background task.
enum Connector {
    #[cfg(feature = "redis")]
    Redis(Broker, ::redis::Client),
    #[cfg(feature = "nats")]
    Nats(nats::Connect),
}

impl Connector {
    #[allow(unused_variables)]
    fn new(broker: &Broker) -> Result<Connector, BrokerError> {
        match broker.url() {
            #[cfg(feature = "redis")]
            BrokerUrl::Redis(_) => Ok(Connector::Redis(
                broker.clone(),
                redis::make_client(broker)?,
            )),
            #[cfg(feature = "nats")]
            BrokerUrl::Nats(_) => Ok(Connector::Nats(nats::Connect::new(broker)?)),
            url => Err(BrokerError::Url(url.to_string())),
        }
    }

    #[allow(unused_variables)]
    fn run<U: Send + 'static>(
        self,
        handle: ServerHandle<U>,
        commands: async_channel::Receiver<BackplaneCommand>,
    ) -> LinkTask {
        #[cfg(any(feature = "redis", feature = "nats"))]
        let link = Link {
            node: node_name(handle.wall_clock()),
            handle,
        };
        match self {
            #[cfg(feature = "redis")]
            Connector::Redis(broker, client) => {
                Box::pin(redis::run(broker, client, link, commands))
            }
            #[cfg(feature = "nats")]
            Connector::Nats(connect) => Box::pin(nats::run(connect, link, commands)),
        }
    }
}

/// What both links share: this node's name and the way back into the server.
#[cfg(any(feature = "redis", feature = "nats"))]
struct Link<U> {
    node: String,
    handle: ServerHandle<U>,
}

#[cfg(any(feature = "redis", feature = "nats"))]
impl<U: Send + 'static> Link<U> {
    /// Delivers a broker message on `topic` locally, unless it is our own
    /// plain publish (a numbered one comes back to every node, ours too:
    /// only the broker's copy carries its offset).
    async fn deliver(&self, topic: String, payload: &[u8]) {
        if let Some((epoch, offset, data)) = decode_numbered(payload) {
            let _ = self
                .handle
                .deliver_numbered(
                    topic,
                    epoch.to_owned(),
                    offset,
                    Bytes::copy_from_slice(data),
                )
                .await;
            return;
        }
        if let Some((node, joined, member)) = decode_presence(payload) {
            if node != self.node {
                let _ = self.handle.deliver_presence(topic, member, joined).await;
            }
            return;
        }
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
#[cfg(feature = "redis")]
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

/// A fresh epoch for a topic whose history starts in the broker: 16 hex
/// digits from the standard library's random hash keys (seeded from the
/// operating system; each call draws new keys).
#[cfg(any(feature = "redis", feature = "nats"))]
fn fresh_epoch() -> String {
    use std::hash::{BuildHasher, Hasher};
    static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(DRAWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Answers what a history command waits for when the broker cannot do it:
/// an append is delivered on this node only, a read fails.
#[cfg(any(feature = "redis", feature = "nats"))]
async fn answer_unreachable<U: Send + 'static>(
    handle: &ServerHandle<U>,
    command: BackplaneCommand,
) {
    match command {
        BackplaneCommand::Append { topic, data, .. } => {
            tracing::warn!(%topic, "broker unreachable: append failed; the publication stays on this node");
            let _ = handle.append_failed(topic, data).await;
        }
        BackplaneCommand::ReadHistory { request, .. } => {
            let _ = handle.history_read(request, None).await;
        }
        BackplaneCommand::ReadPresence { request, .. } => {
            let _ = handle.presence_read(request, None).await;
        }
        _ => {}
    }
}

/// A name for this node in its broker messages: process id and start time
/// (`started`, from the server's runtime).
#[cfg(any(feature = "redis", feature = "nats"))]
fn node_name(started: std::time::SystemTime) -> String {
    let nanos = started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker whose feature is off is refused by name, before the link
    /// touches the server.
    #[test]
    fn a_broker_left_out_of_the_build_is_refused_with_its_feature() {
        let redis: BrokerUrl = "redis://127.0.0.1:6379".parse().unwrap();
        let nats: BrokerUrl = "nats://127.0.0.1:4222".parse().unwrap();
        for (url, built, feature) in [
            (redis, cfg!(feature = "redis"), "`redis`"),
            (nats, cfg!(feature = "nats"), "`nats`"),
        ] {
            match check_built(&url) {
                Ok(()) => assert!(built, "{url} accepted without its feature"),
                Err(e) => {
                    assert!(!built, "{url} refused with its feature: {e}");
                    assert!(e.to_string().contains(feature), "{e}");
                }
            }
        }
    }
}
