//! `loadgen`: drives a live + sync server with fan-out, sync or idle load and
//! prints the figures. `cargo run --release -p testkit --bin loadgen -- --help`.

use clap::Parser;
use testkit::loadgen::{self, args::Cli};

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start a runtime: {e}");
            std::process::exit(2);
        }
    };
    match rt.block_on(loadgen::run(&cli)) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}
