//! The Redis pub/sub link: one multiplexed connection for publishing, one
//! pub/sub connection whose channels follow the node's active topics
//! (channel `live:<topic>`).

use std::collections::BTreeSet;
use std::time::Duration;

use std::time::Instant;

use adapter_common::backplane::{BackplaneCommand, Broker, encode_message};
use futures_util::StreamExt;
use redis::AsyncCommands;

use crate::redis_history::{self, Scripts};
use crate::redis_presence::{self, Presence};
use crate::{BrokerError, Link, answer_unreachable, apply_interest};

const PREFIX: &str = "live:";

/// How long connecting, or one command, may take before the broker is taken
/// as unreachable: a broker that takes connections but does not answer (a
/// partition, a TLS client at a plain port) must not hold the link.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `f`, or a timeout error (an I/O error, so taken as a lost connection)
/// once it has waited [`TIMEOUT`].
async fn within<T>(f: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    tokio::time::timeout(TIMEOUT, f).await.unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", TIMEOUT.as_secs()),
        )
        .into())
    })
}

fn channel(topic: &str) -> String {
    format!("{PREFIX}{topic}")
}

/// The client for `broker`: over TLS for a `rediss://` URL, verified
/// against the system's authorities, or, with a CA file (a `redis://` URL
/// then taken as `rediss://`), against the file's; showing the client
/// certificate when there is one (which turns TLS on too).
pub(crate) fn make_client(broker: &Broker) -> Result<redis::Client, BrokerError> {
    let url = broker.url().as_str();
    let invalid = |e: redis::RedisError| BrokerError::Url(format!("{}: {e}", broker.url()));
    if !broker.has_tls_files() {
        return redis::Client::open(url).map_err(invalid);
    }
    let root_cert = broker.ca_file().map(crate::tls::read_ca_file).transpose()?;
    let client_tls = match broker.client_cert() {
        Some((cert, key)) => {
            let (client_cert, client_key) = crate::tls::read_client_cert(cert, key)?;
            Some(redis::ClientTlsConfig {
                client_cert,
                client_key,
            })
        }
        None => None,
    };
    let url = match url.strip_prefix("redis://") {
        Some(rest) => format!("rediss://{rest}"),
        None => url.to_owned(),
    };
    let certificates = redis::TlsCertificates {
        client_tls,
        root_cert,
    };
    redis::Client::build_with_tls(url, certificates).map_err(invalid)
}

/// The link's whole life: `client` was made from `broker` at start.
pub(crate) async fn run<U: Send + 'static>(
    broker: Broker,
    mut client: redis::Client,
    link: Link<U>,
    commands: async_channel::Receiver<BackplaneCommand>,
) {
    let mut topics: BTreeSet<String> = BTreeSet::new();
    // Since when the broker is unreachable, and how many of our publishes
    // could not be sent meanwhile.
    let mut lost: Option<(Instant, u64)> = None;
    let mut presence = Presence::default();
    loop {
        // TLS files are read again for each connection, so a renewed
        // certificate is used without a restart; while they cannot be read
        // (being replaced, say), the last good ones are.
        if broker.has_tls_files() {
            match make_client(&broker) {
                Ok(fresh) => client = fresh,
                Err(e) => {
                    tracing::warn!(error = %e, "broker (redis) TLS files unreadable; using the last ones read")
                }
            }
        }
        // Commands on the publishing connection time out by themselves, and
        // fail as a lost connection would.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT);
        let connected = within(async {
            let publisher = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let pubsub = client.get_async_pubsub().await?;
            Ok((publisher, pubsub))
        })
        .await;
        let (mut publisher, pubsub) = match connected {
            Ok(c) => c,
            Err(e) => {
                if lost.is_none() {
                    let _ = link.handle.backplane_connection(false).await;
                }
                let (_, dropped) = lost.get_or_insert_with(|| {
                    tracing::warn!(error = %e, "broker (redis) unreachable; retrying");
                    (link.handle.now(), 0)
                });
                // Keep following the server while waiting.
                let wait = tokio::time::sleep(Duration::from_millis(500));
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        () = &mut wait => break,
                        command = commands.recv() => match command {
                            Err(_) => return,
                            Ok(c @ BackplaneCommand::Interest { .. }) => apply_interest(&mut topics, &c),
                            Ok(BackplaneCommand::Presence { topic, member, joined }) => {
                                presence.track(&topic, &member, joined);
                            }
                            Ok(c) if redis_history::waits_for_answer(&c) => {
                                if matches!(c, BackplaneCommand::Append { .. }) {
                                    *dropped += 1;
                                }
                                answer_unreachable(&link.handle, c).await;
                            }
                            Ok(_) => *dropped += 1,
                        },
                    }
                }
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        if !topics.is_empty() {
            let all: Vec<String> = topics.iter().map(|t| channel(t)).collect();
            if let Err(e) = within(sink.subscribe(all)).await {
                tracing::warn!(error = %e, "resubscribing failed; reconnecting");
                lost.get_or_insert((link.handle.now(), 0));
                continue;
            }
        }
        let _ = link.handle.backplane_connection(true).await;
        if let Some((since, dropped)) = lost.take() {
            tracing::warn!(
                gap_ms = link
                    .handle
                    .now()
                    .saturating_duration_since(since)
                    .as_millis() as u64,
                resubscribed = topics.len(),
                unsent_publishes = dropped,
                "broker (redis) connection back; topics resubscribed; messages published during the gap were lost"
            );
        }
        let mut dropped = 0;
        let mut scripts = Scripts::new();
        // The first tick is at once: entries written before a drop (or
        // tracked during it) are restored.
        let mut refresh = tokio::time::interval(redis_presence::REFRESH);
        loop {
            tokio::select! {
                _ = refresh.tick() => {
                    if let Err(e) = presence.refresh(&mut publisher, channel).await {
                        tracing::warn!(error = %e, "broker (redis) presence refresh failed");
                        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                            break;
                        }
                    }
                }
                command = commands.recv() => {
                    let Ok(command) = command else { return };
                    let sent = match &command {
                        BackplaneCommand::Interest { subscribe, unsubscribe } => {
                            let mut r = Ok(());
                            if !subscribe.is_empty() {
                                r = within(sink.subscribe(subscribe.iter().map(|t| channel(t)).collect::<Vec<_>>())).await;
                            }
                            if r.is_ok() && !unsubscribe.is_empty() {
                                r = within(sink.unsubscribe(unsubscribe.iter().map(|t| channel(t)).collect::<Vec<_>>())).await;
                            }
                            r
                        }
                        BackplaneCommand::Publish { topic, data } => {
                            let payload = encode_message(&link.node, data);
                            let r = publisher.publish::<_, _, ()>(channel(topic), payload).await;
                            if r.is_err() {
                                dropped += 1;
                            }
                            r
                        }
                        BackplaneCommand::Append { topic, data, limits } => {
                            let r = redis_history::append(&mut publisher, &mut scripts, topic, channel(topic), data, limits).await;
                            if let Err(e) = &r {
                                dropped += 1;
                                tracing::warn!(%topic, error = %e, "broker (redis) append failed; the publication stays on this node");
                                let _ = link.handle.append_failed(topic.clone(), data.clone()).await;
                            }
                            only_connection_errors(r)
                        }
                        BackplaneCommand::Presence { topic, member, joined } => {
                            let r = presence.change(&mut publisher, &link.node, topic, channel(topic), member, *joined).await;
                            if let Err(e) = &r {
                                tracing::warn!(%topic, error = %e, "broker (redis) presence change failed");
                            }
                            only_connection_errors(r)
                        }
                        BackplaneCommand::ReadPresence { request, topic } => {
                            let r = presence.read(&mut publisher, topic).await;
                            let (members, r) = match r {
                                Ok(m) => (Some(m), Ok(())),
                                Err(e) => {
                                    tracing::warn!(%topic, error = %e, "broker (redis) presence read failed");
                                    (None, Err(e))
                                }
                            };
                            let _ = link.handle.presence_read(*request, members).await;
                            only_connection_errors(r)
                        }
                        BackplaneCommand::ReadHistory { request, topic, after, limits } => {
                            let r = redis_history::read(&mut publisher, &mut scripts, topic, *after, limits).await;
                            let (read, r) = match r {
                                Ok(read) => (read, Ok(())),
                                Err(e) => (None, Err(e)),
                            };
                            if read.is_none() {
                                tracing::warn!(%topic, "broker (redis) history read failed");
                            }
                            let _ = link.handle.history_read(*request, read).await;
                            only_connection_errors(r)
                        }
                        _ => Ok(()),
                    };
                    apply_interest(&mut topics, &command);
                    if let Err(e) = sent {
                        tracing::warn!(error = %e, "broker (redis) connection lost");
                        break;
                    }
                }
                message = stream.next() => {
                    let Some(message) = message else {
                        tracing::warn!("broker (redis) connection lost");
                        break;
                    };
                    let Some(topic) = message.get_channel_name().strip_prefix(PREFIX) else { continue };
                    link.deliver(topic.to_owned(), message.get_payload_bytes()).await;
                }
            }
        }
        let _ = link.handle.backplane_connection(false).await;
        lost = Some((link.handle.now(), dropped));
    }
}

/// A script's own error (a key of another type, a reply of another shape)
/// is the command's failure, already answered; only a lost connection ends
/// the connection.
fn only_connection_errors(r: redis::RedisResult<()>) -> redis::RedisResult<()> {
    match r {
        Err(e) if !(e.is_io_error() || e.is_connection_dropped() || e.is_timeout()) => Ok(()),
        other => other,
    }
}
