//! A TCP forwarder for tests that take a service (PostgreSQL, a broker)
//! away from one process without stopping it for everyone else on the
//! machine: it can cut every connection and refuse new ones, or go silent,
//! holding every connection open while forwarding nothing, as a network
//! partition or a firewall that forgot the connections does.

use std::sync::{Arc, Mutex};

/// `url` (`SCHEME://USER@HOST[:PORT]/REST`) with its host and port
/// replaced by `addr`, to reach a service through a proxy or front.
pub fn url_via(url: &str, addr: &str) -> String {
    let (scheme_user, rest) = url.split_once('@').expect("USER@HOST in the URL");
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    format!("{scheme_user}@{addr}{path}")
}

/// A TCP forwarder on a loopback port; dropping it cuts every connection.
pub struct TcpProxy {
    /// Where it listens (`127.0.0.1:PORT`).
    pub addr: String,
    mode: tokio::sync::watch::Sender<ProxyMode>,
    live: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

/// What a [`TcpProxy`] does with its connections, and how often it went
/// silent (a connection goes silent for good once that count moves, even
/// if the proxy forwards again before the connection's task looks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProxyMode {
    refuse: bool,
    silent: bool,
    silenced: u64,
}

impl TcpProxy {
    /// Listens on a free loopback port, forwarding to `target`.
    pub async fn start(target: &str) -> TcpProxy {
        TcpProxy::start_on("127.0.0.1:0", target)
            .await
            .expect("a free loopback port")
    }

    /// Listens on `listen`, forwarding to `target`.
    pub async fn start_on(listen: &str, target: &str) -> std::io::Result<TcpProxy> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?.to_string();
        let (mode, _) = tokio::sync::watch::channel(ProxyMode {
            refuse: false,
            silent: false,
            silenced: 0,
        });
        let live: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let target = target.to_owned();
        let (m, l) = (mode.clone(), live.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let now = *m.borrow();
                if now.refuse {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(forward(inbound, target.clone(), now, m.subscribe()));
                l.lock().unwrap().push(task.abort_handle());
            }
        });
        Ok(TcpProxy {
            addr,
            mode,
            live,
            accept,
        })
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_modify(|m| m.refuse = true);
        for task in self.live.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Forwards nothing more on the connections it has, for good, holding
    /// them open; new ones are held too until [`TcpProxy::restore`]: the
    /// service neither answers nor refuses.
    pub fn silence(&self) {
        self.mode.send_modify(|m| {
            m.silent = true;
            m.silenced += 1;
        });
    }

    /// Forwards new connections again (a silenced connection stays silent:
    /// the peer cannot tell what was lost).
    pub fn restore(&self) {
        self.mode.send_modify(|m| {
            m.refuse = false;
            m.silent = false;
        });
    }
}

/// One connection through a [`TcpProxy`], accepted in mode `at_accept`:
/// forwarded to `target` until the proxy goes silent, then held open,
/// forwarding nothing, until it is cut.
async fn forward(
    mut inbound: tokio::net::TcpStream,
    target: String,
    at_accept: ProxyMode,
    mut mode: tokio::sync::watch::Receiver<ProxyMode>,
) {
    let mut outbound = None;
    if !at_accept.silent {
        let Ok(mut out) = tokio::net::TcpStream::connect(&target).await else {
            return;
        };
        // The mode first: once `silence` returned, no poll forwards a byte.
        tokio::select! {
            biased;
            _ = mode.wait_for(|m| m.silenced != at_accept.silenced) => {}
            _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => return,
        }
        outbound = Some(out);
    }
    // Silent: hold both ends until cut (the proxy aborts this task).
    std::future::pending::<()>().await;
    drop((inbound, outbound));
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
