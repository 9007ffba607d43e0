//! Change notices between nodes: every batch that commits sends one
//! `NOTIFY` listing the scopes it touched (PostgreSQL delivers it only after
//! the commit, so a notice can never arrive before the data it announces),
//! and [`crate::PgStore::watch`] listens on a connection of its own.
//!
//! One notice per batch rather than per scope: every notice is queued by
//! PostgreSQL and read and parsed by every listening node (the writer's own
//! included). Most of what notices cost is waking each listener once per
//! commit, which one notice per batch does as often; it spares the rest.
//!
//! A payload is the writing node's name, a newline, and the scopes as a
//! JSON array of strings; or `*` in place of the array when a scope is too
//! long for a notice, which tells the listeners that any scope may have
//! changed. A payload of the earlier form (the node's name, a tab, one
//! scope) is still understood.

use std::future::poll_fn;
use std::time::Duration;

use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Config, Socket};

/// What another node did, as told to a [`crate::PgStore::watch`] callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Changed {
    /// Another node committed a batch touching this scope.
    Scope(String),
    /// The listening connection is up, for the first time or again after it
    /// was lost (notices sent before are lost), or another node committed
    /// to a scope too long to name in a notice: any scope may have changed.
    Everything,
}

/// The channel for one deployment (schema), so deployments sharing a
/// database do not hear each other.
pub(crate) fn channel(schema: Option<&str>) -> String {
    format!("sync_changed_{}", schema.unwrap_or("public"))
}

/// What a payload may hold: PostgreSQL refuses one of 8000 bytes or more
/// (and with it the whole transaction).
const MAX_PAYLOAD: usize = 7900;

/// The payloads announcing a commit to `scopes` by `node`: as few as fit,
/// each listing as many scopes as it can hold.
pub(crate) fn payloads(node: &str, scopes: &[&str]) -> Vec<String> {
    let head = format!("{node}\n");
    let everything = || vec![format!("{head}*")];
    let mut out = Vec::new();
    let mut current = String::new();
    for scope in scopes {
        let Ok(quoted) = serde_json::to_string(scope) else {
            return everything();
        };
        if head.len() + quoted.len() + 2 > MAX_PAYLOAD {
            return everything();
        }
        if !current.is_empty() && head.len() + current.len() + quoted.len() + 2 > MAX_PAYLOAD {
            out.push(format!("{head}[{current}]"));
            current.clear();
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(&quoted);
    }
    if !current.is_empty() {
        out.push(format!("{head}[{current}]"));
    }
    out
}

/// What a payload from another node announces; `None` for this node's own
/// (`own` is its name) and for a payload nobody could have sent.
fn announced(payload: &str, own: &str) -> Option<Vec<Changed>> {
    // Node names hold neither separator, and a JSON array no raw tab.
    let at = payload.find(['\n', '\t'])?;
    let (node, rest) = (&payload[..at], &payload[at + 1..]);
    if node == own {
        return None;
    }
    if payload.as_bytes()[at] == b'\t' {
        return Some(vec![Changed::Scope(rest.to_owned())]);
    }
    if rest == "*" {
        return Some(vec![Changed::Everything]);
    }
    let scopes: Vec<String> = serde_json::from_str(rest).ok()?;
    Some(scopes.into_iter().map(Changed::Scope).collect())
}

/// Listens until the runtime shuts down, reconnecting after a pause when
/// the connection drops or stops answering.
///
/// A listening connection only receives, so a connection that went silent
/// (a network partition, a firewall that forgot it) would look like a quiet
/// database forever, and this node would never hear another commit. So
/// every `timeout` the listener asks PostgreSQL a trivial query, and
/// one that does not come within `timeout` counts as a lost connection.
pub(crate) async fn listen<T>(
    config: Config,
    tls: T,
    channel: String,
    node: String,
    timeout: Duration,
    on_change: Box<dyn Fn(Changed) + Send + Sync>,
) where
    T: MakeTlsConnect<Socket> + Clone,
    T::Stream: Send + 'static,
{
    let mut connected_before = false;
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driving = tokio::spawn(async move {
                    while let Some(Ok(message)) = poll_fn(|cx| conn.poll_message(cx)).await {
                        if let AsyncMessage::Notification(n) = message
                            && tx.send(n.payload().to_owned()).is_err()
                        {
                            break;
                        }
                    }
                });
                let listen = format!("LISTEN \"{channel}\"");
                match answered(client.batch_execute(&listen), timeout).await {
                    Ok(()) => {
                        // Commits made before the listener was up (at start
                        // or during an outage) were not heard.
                        if connected_before {
                            tracing::info!(%channel, "listening again");
                        }
                        connected_before = true;
                        on_change(Changed::Everything);
                        let why = relay(&client, &mut rx, &node, timeout, &*on_change).await;
                        tracing::warn!(%channel, why, "change notices interrupted; reconnecting");
                    }
                    Err(e) => tracing::warn!(%channel, error = %e, "cannot listen; retrying"),
                }
                // A connection that stopped answering would wait for its
                // unanswered check as long as the socket stays open.
                driving.abort();
            }
            Err(e) => tracing::warn!(%channel, error = %e, "cannot listen; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Hands other nodes' notices to `on_change` until the connection is lost
/// or leaves a check unanswered for `timeout`; returns which.
async fn relay(
    client: &tokio_postgres::Client,
    notices: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    node: &str,
    timeout: Duration,
    on_change: &(dyn Fn(Changed) + Send + Sync),
) -> &'static str {
    let mut checks = tokio::time::interval_at(tokio::time::Instant::now() + timeout, timeout);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            payload = notices.recv() => {
                let Some(payload) = payload else { return "connection lost" };
                for changed in announced(&payload, node).into_iter().flatten() {
                    on_change(changed);
                }
            }
            _ = checks.tick() => {
                if let Err(e) = answered(client.batch_execute("SELECT 1"), timeout).await {
                    tracing::debug!(error = %e, "the listening connection's check failed");
                    return "the connection stopped answering";
                }
            }
        }
    }
}

/// `op`'s outcome, or an error once `timeout` passed without one.
async fn answered(
    op: impl std::future::Future<Output = Result<(), tokio_postgres::Error>>,
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, op).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes_of(payloads: &[String], own: &str) -> Vec<Changed> {
        payloads
            .iter()
            .flat_map(|p| announced(p, own).expect("a payload another node sent"))
            .collect()
    }

    #[test]
    fn one_payload_lists_every_scope_of_a_batch() {
        let payloads = payloads("n1", &["a", "b\tc", "d\"\n"]);
        assert_eq!(payloads.len(), 1);
        assert_eq!(
            scopes_of(&payloads, "n2"),
            ["a", "b\tc", "d\"\n"].map(|s| Changed::Scope(s.into()))
        );
    }

    #[test]
    fn scopes_beyond_one_payload_go_in_more_each_within_the_limit() {
        let names: Vec<String> = (0..2000).map(|i| format!("scope-{i:05}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let payloads = payloads("n1", &refs);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let expected: Vec<Changed> = names.iter().cloned().map(Changed::Scope).collect();
        assert_eq!(scopes_of(&payloads, "n2"), expected);
    }

    #[test]
    fn a_scope_too_long_for_a_notice_announces_that_anything_may_have_changed() {
        let long = "x".repeat(MAX_PAYLOAD);
        let payloads = payloads("n1", &["a", &long]);
        assert_eq!(payloads, ["n1\n*"]);
        assert_eq!(scopes_of(&payloads, "n2"), [Changed::Everything]);
    }

    #[test]
    fn a_node_ignores_its_own_notices_and_nonsense() {
        assert_eq!(announced(&payloads("n1", &["a"])[0], "n1"), None);
        assert_eq!(announced("n1\tscope", "n1"), None);
        assert_eq!(announced("n1\nnot json", "n2"), None);
        assert_eq!(announced("no separator", "n2"), None);
    }

    #[test]
    fn a_payload_of_the_earlier_form_names_its_one_scope() {
        assert_eq!(
            announced("n1\ta\tb\nc", "n2"),
            Some(vec![Changed::Scope("a\tb\nc".into())])
        );
    }
}
