//! The NATS link: one client (echo off), one subscription per active topic on
//! subject `live.<hex of the topic>` (topics may hold characters subjects may
//! not). The client reconnects and restores its subscriptions by itself; the
//! link logs the loss and the gap.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use adapter_common::ServerHandle;
use adapter_common::backplane::{BackplaneCommand, Broker, encode_message};
use futures_util::StreamExt;

use crate::nats_history::{History, numbered};
use crate::nats_presence::{self, Presence};
use crate::nats_subject::hex_topic;
use crate::{BrokerError, Link};

/// How often the client pings the broker. A broker that keeps the
/// connection but stops answering (a partition) is taken as lost after
/// three unanswered pings, so within about 10 s instead of the client's
/// default of about 3 minutes, during which every publish would be lost
/// without a word.
const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

/// How long the first connection may take before the link logs the broker
/// as unreachable and lets the client retry in the background.
const FIRST_TRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn subject(topic: &str) -> String {
    format!("live.{}", hex_topic(topic))
}

/// How to reach a NATS broker: its URL, and whether and how TLS is used.
pub(crate) struct Connect {
    url: String,
    /// Shown in logs: the URL without its credentials.
    shown: String,
    tls: bool,
    ca_file: Option<std::path::PathBuf>,
    client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Connect {
    /// Over TLS for a `tls://` URL, or with a CA file or a client
    /// certificate, verified against the file's authorities or else the
    /// system's.
    pub(crate) fn new(broker: &Broker) -> Result<Connect, BrokerError> {
        if let Some(path) = broker.ca_file() {
            crate::tls::read_ca_file(path)?;
        }
        if let Some((cert, key)) = broker.client_cert() {
            crate::tls::read_client_cert(cert, key)?;
        }
        Ok(Connect {
            url: broker.url().as_str().to_owned(),
            shown: broker.url().to_string(),
            tls: broker.uses_tls(),
            ca_file: broker.ca_file().map(ToOwned::to_owned),
            client_cert: broker
                .client_cert()
                .map(|(cert, key)| (cert.to_owned(), key.to_owned())),
        })
    }

    /// The client's options; `lost` follows the connection's losses, timed
    /// by `clock`, and `states` hears each connection and loss.
    fn options<U: Send + 'static>(
        &self,
        lost: &Arc<Mutex<Option<Instant>>>,
        clock: &ServerHandle<U>,
        states: &States,
    ) -> async_nats::ConnectOptions {
        let events = lost.clone();
        let clock = clock.clone();
        let states = states.clone();
        let mut options = async_nats::ConnectOptions::new()
            .no_echo()
            .ping_interval(PING_INTERVAL)
            .event_callback(move |event| {
                let lost = events.clone();
                let states = states.clone();
                let now = clock.now();
                async move {
                    let connected = {
                        let mut lost =
                            lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        match event {
                            async_nats::Event::Disconnected => {
                                tracing::warn!("broker (nats) connection lost");
                                lost.get_or_insert(now);
                                Some(false)
                            }
                            async_nats::Event::Connected => {
                                if let Some(since) = lost.take() {
                                    tracing::warn!(
                                        gap_ms = now.saturating_duration_since(since).as_millis() as u64,
                                        "broker (nats) connection back; subscriptions restored; messages published during the gap were lost"
                                    );
                                }
                                Some(true)
                            }
                            other => {
                                tracing::debug!(event = %other, "broker (nats)");
                                None
                            }
                        }
                    };
                    if let Some(connected) = connected {
                        let _ = states.send(connected);
                    }
                }
            });
        if self.tls {
            options = options.require_tls(true);
        }
        if let Some(path) = &self.ca_file {
            options = options.add_root_certificates(path.clone());
        }
        if let Some((cert, key)) = &self.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        options
    }
}

/// Where the link's connections and losses go, in order, to be reported
/// to the server (the client's callbacks cannot wait for the server).
type States = tokio::sync::mpsc::UnboundedSender<bool>;

/// A task that hands each reported state to the server, in order.
fn report_states<U: Send + 'static>(handle: ServerHandle<U>) -> States {
    let (states, mut reported) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(connected) = reported.recv().await {
            if handle.backplane_connection(connected).await.is_err() {
                return;
            }
        }
    });
    states
}

pub(crate) async fn run<U: Send + 'static>(
    connect: Connect,
    link: Link<U>,
    commands: async_channel::Receiver<BackplaneCommand>,
) {
    let link = Arc::new(link);
    let lost: Arc<Mutex<Option<Instant>>> = Arc::default();
    let clock = link.handle.clone();
    let states = report_states(link.handle.clone());
    // One try first, to log why it failed (a certificate refused, say) in
    // full; then the client retries in the background. The client bounds
    // only the TCP connect by its timeout, not the wait for the server's
    // first words, hence the bound here.
    let first_try = connect
        .options(&lost, &clock, &states)
        .connect(connect.url.as_str());
    let first_try = tokio::time::timeout(FIRST_TRY_TIMEOUT, first_try)
        .await
        .unwrap_or_else(|_| {
            Err(async_nats::ConnectError::new(
                async_nats::ConnectErrorKind::TimedOut,
            ))
        });
    let client = match first_try {
        Ok(c) => {
            let _ = states.send(true);
            c
        }
        Err(e) => {
            let _ = states.send(false);
            tracing::warn!(error = %e, broker = %connect.shown, "broker (nats) unreachable; retrying");
            *lost
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(clock.now());
            let retrying = connect
                .options(&lost, &clock, &states)
                .retry_on_initial_connect();
            match retrying.connect(connect.url.as_str()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, broker = %connect.shown, "broker (nats) refused; live stays on this node");
                    return;
                }
            }
        }
    };
    let mut history = History::new(client.clone());
    // History reads running at once.
    let reads = Arc::new(tokio::sync::Semaphore::new(32));
    let mut presence = Presence::new(client.clone());
    let mut refresh = tokio::time::interval(nats_presence::REFRESH);
    let mut subscriptions: BTreeMap<String, tokio::task::AbortHandle> = BTreeMap::new();
    loop {
        let command = tokio::select! {
            command = commands.recv() => match command {
                Ok(c) => c,
                Err(_) => return,
            },
            _ = refresh.tick() => {
                if let Err(e) = presence.refresh().await {
                    tracing::warn!(error = %e, "broker (nats) presence refresh failed");
                }
                continue;
            }
        };
        match command {
            BackplaneCommand::Interest {
                subscribe,
                unsubscribe,
            } => {
                for topic in &unsubscribe {
                    if let Some(task) = subscriptions.remove(topic) {
                        task.abort();
                    }
                }
                for topic in subscribe {
                    match client.subscribe(subject(&topic)).await {
                        Ok(mut sub) => {
                            let (link, topic2) = (link.clone(), topic.clone());
                            let task = tokio::spawn(async move {
                                while let Some(m) = sub.next().await {
                                    match numbered(m.headers.as_ref()) {
                                        // The epoch marker of an empty history.
                                        Some((_, 0)) => {}
                                        Some((epoch, offset)) => {
                                            let _ = link
                                                .handle
                                                .deliver_numbered(
                                                    topic2.clone(),
                                                    epoch,
                                                    offset,
                                                    m.payload,
                                                )
                                                .await;
                                        }
                                        None => link.deliver(topic2.clone(), &m.payload).await,
                                    }
                                }
                            });
                            subscriptions.insert(topic, task.abort_handle());
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, %topic, "broker (nats) subscribe failed")
                        }
                    }
                }
            }
            BackplaneCommand::Publish { topic, data } => {
                let payload = encode_message(&link.node, &data);
                if let Err(e) = client.publish(subject(&topic), payload.into()).await {
                    tracing::warn!(error = %e, %topic, "broker (nats) publish failed");
                }
            }
            BackplaneCommand::Append {
                topic,
                data,
                limits,
            } => {
                if let Err(e) = history.append(&topic, data.clone(), &limits).await {
                    tracing::warn!(error = %e, %topic, "broker (nats) append failed; the publication stays on this node");
                    let _ = link.handle.append_failed(topic, data).await;
                }
            }
            BackplaneCommand::Presence {
                topic,
                member,
                joined,
            } => {
                let plain = subject(&topic);
                if let Err(e) = presence
                    .change(&client, &link.node, &topic, plain, member, joined)
                    .await
                {
                    tracing::warn!(error = %e, %topic, "broker (nats) presence change failed");
                }
            }
            BackplaneCommand::ReadPresence { request, topic } => {
                let members = match presence.read(&topic).await {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::warn!(error = %e, %topic, "broker (nats) presence read failed");
                        None
                    }
                };
                let _ = link.handle.presence_read(request, members).await;
            }
            BackplaneCommand::ReadHistory {
                request,
                topic,
                after,
                limits,
            } => {
                // The read starts after the topic's subscription went out
                // on the same connection, and runs beside later commands.
                match history.reader(&topic, &limits).await {
                    Ok(reader) => {
                        let (link, reads) = (link.clone(), reads.clone());
                        tokio::spawn(async move {
                            let _permit = reads.acquire_owned().await;
                            let read = match reader.read(after).await {
                                Ok(read) => Some(read),
                                Err(e) => {
                                    tracing::warn!(error = %e, %topic, "broker (nats) history read failed");
                                    None
                                }
                            };
                            let _ = link.handle.history_read(request, read).await;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %topic, "broker (nats) history read failed");
                        let _ = link.handle.history_read(request, None).await;
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_topic_makes_a_valid_subject() {
        assert_eq!(subject("a.b c*>"), "live.612e6220632a3e");
        assert_eq!(subject(""), "live.");
    }
}
