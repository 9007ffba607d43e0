//! A TCP forwarder driven from its standard input, for scripts that take a
//! service away from one process the way a network does: `silence` (hold
//! every connection open, forward nothing, as a partition), `cut` (drop
//! every connection and refuse new ones, as a crash), `restore`. Each
//! command is acknowledged with a line on standard output.
//!
//! usage: tcp-proxy LISTEN_ADDR TARGET_ADDR

use std::io::BufRead;

use testkit::tcp_proxy::TcpProxy;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, target] = &args[..] else {
        eprintln!("usage: tcp-proxy LISTEN_ADDR TARGET_ADDR");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let proxy = match rt.block_on(TcpProxy::start_on(listen, target)) {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    println!("forwarding {} to {target}", proxy.addr);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "silence" => proxy.silence(),
            "cut" => proxy.cut(),
            "restore" => proxy.restore(),
            "" => continue,
            other => {
                eprintln!("unknown command {other:?} (silence, cut, restore)");
                continue;
            }
        }
        println!("{}", line.trim());
    }
}
