//! Command-line arguments of the `loadgen` binary.

use clap::{Args, Parser, Subcommand};

/// Load generator for live + sync servers (run beside the server on loopback).
#[derive(Debug, Clone, Parser, PartialEq)]
#[command(name = "loadgen", version, long_about = None)]
pub struct Cli {
    /// Server origin: `http://HOST:PORT` (the WebSocket URL is derived from it).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// WebSocket endpoint path.
    #[arg(long, global = true, default_value = "/ws")]
    pub ws_path: String,
    /// Sync endpoint prefix.
    #[arg(long, global = true, default_value = "/_sync")]
    pub sync_prefix: String,
    /// Bearer token sent on every connection and request (none if unset).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// What to measure.
    #[command(subcommand)]
    pub mode: Mode,
}

/// The load shapes.
#[derive(Debug, Clone, Subcommand, PartialEq)]
pub enum Mode {
    /// N subscribers over T topics, P publishers at a set total rate.
    Fanout(FanoutArgs),
    /// K clients pushing one mutation per HTTP request, then pulling.
    Sync(SyncArgs),
    /// N idle WebSocket connections held open (for RSS per connection).
    Idle(IdleArgs),
    /// Pushes on one node, pokes awaited on another: cross-node poke latency.
    Pokes(PokesArgs),
    /// Clients arriving and leaving at a steady rate, each checking that its
    /// session works (connection churn).
    Churn(ChurnArgs),
    /// Clients on a topic with history that lose their connection (the node
    /// is restarted meanwhile) and resume from their last position.
    Resume(ResumeArgs),
}

/// Resume mode.
#[derive(Debug, Clone, Args, PartialEq)]
pub struct ResumeArgs {
    /// Subscribed clients, all on `--url`.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// The topic (the server must give it a history).
    #[arg(long, default_value = "resume-1")]
    pub topic: String,
    /// Origin of the node the publisher uses (`http://HOST:PORT`; default
    /// `--url`): another node of the cluster keeps publishing while `--url`
    /// restarts.
    #[arg(long)]
    pub publish_url: Option<String>,
    /// Publishes per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds over which the clients' reconnects are spread.
    #[arg(long, default_value_t = 1.0)]
    pub jitter: f64,
    /// Seconds a client keeps trying to reconnect.
    #[arg(long, default_value_t = 30.0)]
    pub give_up: f64,
    /// Seconds to keep reading after the last publish.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// Subscribes outstanding at once while setting up.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
}

/// Churn mode.
#[derive(Debug, Clone, Args, PartialEq)]
pub struct ChurnArgs {
    /// New clients per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of arrivals.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds each client stays connected.
    #[arg(long, default_value_t = 1.0)]
    pub stay: f64,
}

/// Poke-latency mode.
#[derive(Debug, Clone, Args, PartialEq)]
pub struct PokesArgs {
    /// Origin of the node whose subscriber waits for the pokes
    /// (`http://HOST:PORT`); pushes go to `--url`.
    #[arg(long)]
    pub watch_url: String,
    /// Pushes, one at a time.
    #[arg(long, default_value_t = 200)]
    pub count: u64,
    /// Milliseconds between a poke and the next push.
    #[arg(long, default_value_t = 20)]
    pub interval_ms: u64,
    /// Scope pushed to and watched.
    #[arg(long, default_value = "pokes")]
    pub scope: String,
}

/// Fan-out mode.
#[derive(Debug, Clone, Args, PartialEq)]
pub struct FanoutArgs {
    /// WebSocket subscribers.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Topics; subscriber j listens on topic j mod T.
    #[arg(long, default_value_t = 1)]
    pub topics: usize,
    /// Publisher connections (not subscribed).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Total publishes per second over all publishers.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Extra payload bytes per message.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Seconds to keep reading after the last publish.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// Connections opened concurrently while setting up.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Seconds between the last subscribe and the first publish.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
}

/// Sync mode.
#[derive(Debug, Clone, Args, PartialEq)]
pub struct SyncArgs {
    /// Concurrent clients, one keep-alive connection each.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds of pushing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop each client after this many pushes instead of after `duration`.
    #[arg(long)]
    pub mutations: Option<u64>,
    /// Scope pushed to (every client uses the same one unless --scope-per-client).
    #[arg(long, default_value = "load")]
    pub scope: String,
    /// Give client k the scope `<scope>-<k>`.
    #[arg(long)]
    pub scope_per_client: bool,
    /// Skip the pull phase.
    #[arg(long)]
    pub no_pull: bool,
    /// Total pushes per second over all clients (each client paced at its
    /// share); unset: as fast as the server answers.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Write only this many keys per client, round and round (key
    /// `k<client>-<seq mod keys>`), so a long run's state stays bounded;
    /// unset: a new key per push.
    #[arg(long)]
    pub keys: Option<u64>,
    /// After pushing, read every client's snapshot and check that nothing
    /// acknowledged is missing: the server's last applied sequence for the
    /// client is the last one it acknowledged, and that push's value is in
    /// the data. The run fails if anything is missing.
    #[arg(long)]
    pub verify: bool,
    /// Give client k the id `<prefix>-<k>` and let it resume from the
    /// sequence the server last applied for it, as a returning client does
    /// (so runs against one server reuse the same clients); unset: new
    /// client ids every run.
    #[arg(long)]
    pub client_prefix: Option<String>,
}

/// Idle mode.
#[derive(Debug, Clone, Args, PartialEq)]
pub struct IdleArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Seconds to hold them after all are open.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// Server process id: its RSS (VmRSS) is read before and after, and the delta
    /// per connection printed.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Connections opened concurrently.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
}

impl Cli {
    /// `ws://HOST:PORT{ws_path}` from `--url`.
    pub fn ws_url(&self) -> String {
        let rest = self
            .url
            .strip_prefix("http://")
            .unwrap_or(&self.url)
            .trim_end_matches('/');
        format!("ws://{rest}{}", self.ws_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_defaults_and_overrides() {
        let cli =
            Cli::try_parse_from(["loadgen", "fanout", "--subscribers", "10", "--rate", "2000"])
                .unwrap();
        assert_eq!(cli.url, "http://127.0.0.1:8080");
        assert_eq!(cli.ws_url(), "ws://127.0.0.1:8080/ws");
        let Mode::Fanout(f) = cli.mode else {
            panic!("not fanout")
        };
        assert_eq!(f.subscribers, 10);
        assert_eq!(f.topics, 1);
        assert_eq!(f.rate, 2000.0);
    }

    #[test]
    fn global_flags_after_the_mode() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "sync",
            "--clients",
            "4",
            "--url",
            "http://127.0.0.1:9/",
            "--token",
            "t",
            "--no-pull",
        ])
        .unwrap();
        assert_eq!(cli.ws_url(), "ws://127.0.0.1:9/ws");
        assert_eq!(cli.token.as_deref(), Some("t"));
        let Mode::Sync(s) = cli.mode else {
            panic!("not sync")
        };
        assert_eq!((s.clients, s.no_pull, s.mutations), (4, true, None));
    }

    #[test]
    fn idle_and_errors() {
        let cli = Cli::try_parse_from(["loadgen", "idle", "--server-pid", "42"]).unwrap();
        let Mode::Idle(i) = cli.mode else {
            panic!("not idle")
        };
        assert_eq!((i.connections, i.server_pid), (10_000, Some(42)));
        assert!(Cli::try_parse_from(["loadgen"]).is_err());
        assert!(Cli::try_parse_from(["loadgen", "fanout", "--rate", "fast"]).is_err());
        assert!(Cli::try_parse_from(["loadgen", "bogus"]).is_err());
    }
}
