//! Poke latency across nodes: a WebSocket subscriber on one node (`--watch-url`)
//! of `sync:<scope>`, and pushes made one at a time on another (`--url`). For
//! each push, how long from sending it until the watching node's poke for its
//! cursor arrives (this covers the commit, the change notice between the
//! nodes, the watching node's reload and its poke), and from the push's answer
//! until that poke.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::json;

use super::args::{Cli, PokesArgs};
use super::stats::{Latencies, Summary};
use super::{LoadError, token_opts};
use crate::sync_client::{SyncHttp, push_body, put, with_client};
use crate::ws_client::{Incoming, WsClient};

/// Outcome of a poke-latency run.
#[derive(Debug, Clone)]
pub struct PokesReport {
    /// From sending the push on one node to the poke on the other.
    pub from_push: Summary,
    /// From the push's answer to the poke on the other node.
    pub from_answer: Summary,
}

impl fmt::Display for PokesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pokes on the other node: {} pushes",
            self.from_push.count
        )?;
        writeln!(f, "push sent -> poke: {}", self.from_push)?;
        write!(f, "push answered -> poke: {}", self.from_answer)
    }
}

/// Runs the poke-latency measurement.
pub async fn run(cli: &Cli, args: &PokesArgs) -> Result<PokesReport, LoadError> {
    let watch = Cli {
        url: args.watch_url.clone(),
        ..cli.clone()
    };
    let mut ws = WsClient::connect(&watch.ws_url(), &token_opts(cli))
        .await
        .map_err(|e| LoadError::Connect(e.to_string()))?;
    let topic = format!("sync:{}", args.scope);
    ws.subscribe(&topic).await;
    // The server sends no subscribe confirmation.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut http = SyncHttp::new(&cli.url, &cli.sync_prefix, cli.token.as_deref())
        .map_err(|e| LoadError::Args(e.to_string()))?;
    let client_id = format!(
        "pokes-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let (mut from_push, mut from_answer) = (Latencies::new(), Latencies::new());
    for seq in 1..=args.count {
        let m = with_client(
            put(&format!("{client_id}-{seq}"), &args.scope, "k", json!(seq)),
            &client_id,
            seq,
        );
        let sent = Instant::now();
        let resp = http
            .push(&push_body(&[m]))
            .await
            .map_err(|e| LoadError::Server(e.to_string()))?;
        let answered = Instant::now();
        let cursor = resp.json()["results"][0]["cursor"].as_u64();
        let Some(cursor) = cursor.filter(|_| resp.status == 200) else {
            return Err(LoadError::Server(format!("push answered {}", resp.status)));
        };
        loop {
            match ws.recv().await {
                Incoming::Message(v) if v["topic"] == topic.as_str() => {
                    if v["data"]["cursor"].as_u64().is_some_and(|c| c >= cursor) {
                        break;
                    }
                }
                Incoming::Message(_) => {}
                other => {
                    return Err(LoadError::Server(format!(
                        "no poke for cursor {cursor}: {other:?}"
                    )));
                }
            }
        }
        let poked = Instant::now();
        from_push.record(poked - sent);
        from_answer.record(poked.saturating_duration_since(answered));
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    Ok(PokesReport {
        from_push: from_push.summary(),
        from_answer: from_answer.summary(),
    })
}
