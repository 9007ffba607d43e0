//! `loadgen`: drives a live + sync server with fan-out, sync or idle load and
//! prints the figures. `cargo run --release -p testkit --bin loadgen -- --help`.

use clap::Parser;
use testkit::loadgen::{self, args::Cli};

fn main() {
    let cli = Cli::parse();
    // Every second scheduler tick takes a task from the runtime's shared
    // queue first. A worker that finds a thousand subscriber sockets ready
    // at once keeps 256 of their tasks in its own queue and moves the rest,
    // 128 at a time, to the shared queue, which by default it looks at only
    // every 61 ticks, taking one task: under a sustained fan-out those 128
    // readers stopped reading long enough for the server to close them as
    // slow consumers, a failure of the generator, not of the server.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .global_queue_interval(2)
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
