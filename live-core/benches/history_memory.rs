//! Memory held by topic histories: 10 000 topics each keeping 100
//! publications of 1 KiB of data, filled through `Hub::publish` in one
//! process, with the process's resident set (`VmRSS` from
//! `/proc/self/status`) read before and after, and the hub's own gauges.
//!
//! Run: `cargo bench -p live-core --bench history_memory`
//! (`-- TOPICS SIZE BYTES` to change the shape).

use std::time::Instant;

use live_core::{HistoryLimits, HistoryRule, Hub, HubConfig};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let topics = arg(1, 10_000);
    let size = arg(2, 100);
    let bytes = arg(3, 1024);
    let mut config = HubConfig::default();
    config.history = vec![HistoryRule::new("*", HistoryLimits::new(size, None))];
    let mut hub: Hub<()> = Hub::new(config, 1);
    hub.publish_at(Instant::now(), "warm-up", b"0").unwrap();
    // 1 KiB of JSON: a string of `bytes - 2` characters.
    let data = format!("\"{}\"", "x".repeat(bytes.saturating_sub(2)));
    let names: Vec<String> = (0..topics).map(|t| format!("room:{t}")).collect();
    let before = rss_kib();
    let started = Instant::now();
    for _ in 0..size {
        for name in &names {
            hub.publish(name, data.as_bytes()).unwrap();
        }
    }
    let took = started.elapsed();
    let after = rss_kib();
    let m = hub.metrics();
    let entries = m.history_entries as u64;
    let grown = (after.saturating_sub(before)) * 1024;
    println!("topics {topics}, {size} publications of {bytes} bytes of data kept per topic");
    println!(
        "hub gauges: history_topics {} history_entries {} history_bytes {} ({:.1} MiB of frames)",
        m.history_topics,
        m.history_entries,
        m.history_bytes,
        m.history_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "process RSS: {:.1} MiB before, {:.1} MiB after, grew {:.1} MiB = {} bytes per entry ({} bytes of frame)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        grown as f64 / (1024.0 * 1024.0),
        grown / entries.max(1),
        m.history_bytes as u64 / entries.max(1)
    );
    println!(
        "filled in {:.2} s ({:.0} publishes/s, no subscribers)",
        took.as_secs_f64(),
        (topics * size) as f64 / took.as_secs_f64()
    );
}
