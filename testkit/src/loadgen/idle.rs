//! Idle load: opens N WebSocket connections and holds them, so the server's
//! memory per idle connection can be read from its RSS.

use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;

use super::args::{Cli, IdleArgs};
use super::{LoadError, token_opts};
use crate::ws_client::WsClient;

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| parse_vm_rss_kib(&s))
}

/// Bytes per connection from two RSS readings in KiB (`None` without connections).
pub fn bytes_per_connection(before_kib: u64, after_kib: u64, connections: usize) -> Option<f64> {
    if connections == 0 {
        return None;
    }
    Some((after_kib as f64 - before_kib as f64) * 1024.0 / connections as f64)
}

/// Outcome of an idle run.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleReport {
    /// Connections open at the end of the hold.
    pub open: usize,
    /// Connections that failed to open.
    pub failed: usize,
    /// Connections that ended during the hold.
    pub dropped: usize,
    /// Server RSS before and after opening, in KiB, when a pid was given.
    pub rss_kib: Option<(u64, u64)>,
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "idle: {} open, {} failed, {} dropped during hold",
            self.open, self.failed, self.dropped
        )?;
        if let Some((before, after)) = self.rss_kib {
            write!(f, "\nserver RSS: {before} KiB -> {after} KiB")?;
            if let Some(b) = bytes_per_connection(before, after, self.open) {
                write!(f, " ({b:.0} bytes per connection)")?;
            }
        }
        Ok(())
    }
}

/// Runs the idle mode.
pub async fn run(cli: &Cli, args: &IdleArgs) -> Result<IdleReport, LoadError> {
    let url = cli.ws_url();
    let opts = token_opts(cli);
    let before = args.server_pid.and_then(rss_kib);
    let results: Vec<Result<WsClient, String>> = stream::iter(0..args.connections)
        .map(|_| {
            let (url, opts) = (url.clone(), opts.clone());
            async move {
                WsClient::connect(&url, &opts)
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let mut failed = 0;
    let mut holders = Vec::new();
    for r in results {
        match r {
            Ok(c) => {
                // Keep reading so pings are answered; end when the server closes.
                holders.push(tokio::spawn(async move {
                    let mut ws = c.into_stream();
                    while let Some(Ok(_)) = ws.next().await {}
                }));
            }
            Err(e) => {
                if failed == 0 {
                    eprintln!("connect failed: {e} (is `ulimit -n` high enough?)");
                }
                failed += 1;
            }
        }
    }
    // Let the server settle its per-connection allocations before reading RSS.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = args.server_pid.and_then(rss_kib);
    tokio::time::sleep(Duration::from_secs_f64(args.hold.max(0.0))).await;
    let dropped = holders.iter().filter(|h| h.is_finished()).count();
    let open = holders.len() - dropped;
    for h in holders {
        h.abort();
    }
    Ok(IdleReport {
        open,
        failed,
        dropped,
        rss_kib: before.zip(after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let s = "Name:\tserver\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss_kib(s), Some(12345));
        assert_eq!(parse_vm_rss_kib("Name: x\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS: lots kB"), None);
    }

    #[test]
    fn per_connection_math() {
        assert_eq!(bytes_per_connection(1000, 1080, 10), Some(8192.0));
        assert_eq!(bytes_per_connection(1000, 990, 10), Some(-1024.0));
        assert_eq!(bytes_per_connection(1, 2, 0), None);
    }

    #[test]
    fn reads_own_rss() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|k| k > 0));
    }

    #[test]
    fn report_shows_per_connection_bytes() {
        let r = IdleReport {
            open: 10,
            failed: 0,
            dropped: 0,
            rss_kib: Some((1000, 1080)),
        };
        assert!(r.to_string().contains("8192 bytes per connection"), "{r}");
    }
}
