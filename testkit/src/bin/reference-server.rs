//! `reference-server`: the kit's reference implementation of the conformance
//! profile as a process, so the crash driver can SIGKILL and restart it.
//!
//! `reference-server --addr 127.0.0.1:PORT --db state.json`

use std::path::PathBuf;

use clap::Parser;
use testkit::profile::Profile;

/// Reference server for the conformance profile (not the project's server).
#[derive(Parser)]
#[command(name = "reference-server", about, long_about = None)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// JSON file holding the sync state; memory only when unset.
    #[arg(long)]
    db: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("reference-server: runtime: {e}");
            std::process::exit(2)
        });
    rt.block_on(async {
        match testkit::reference::serve(Profile::conformance(), &args.addr, args.db).await {
            Ok(server) => {
                eprintln!("reference-server: listening on {}", server.addr());
                std::future::pending::<()>().await;
            }
            Err(e) => {
                eprintln!("reference-server: {e}");
                std::process::exit(1);
            }
        }
    });
}
