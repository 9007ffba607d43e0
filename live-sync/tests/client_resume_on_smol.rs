//! The Rust client resuming a topic with history from smol code, against
//! the server on smol, with no tokio runtime in the application: cut off by
//! a relay while the server publishes, it comes back by itself and gets
//! every publication once and in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use live_sync::Builder;
use live_sync::client::{LiveClient, LiveEvent, LiveOptions};
use live_sync::live_core::{HistoryLimits, HistoryRule};
use serde_json::{Value, json};

mod smol_support;
use smol_support::{Served, outside_tokio, until};

/// A TCP relay on smol that can drop every connection it carries and refuse
/// new ones for a while.
struct Relay {
    addr: std::net::SocketAddr,
    refuse: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<smol::Task<()>>>>,
    _accepting: smol::Task<()>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refuse = Arc::new(AtomicBool::new(false));
        let links: Arc<std::sync::Mutex<Vec<smol::Task<()>>>> = Arc::default();
        let (refusing, held) = (refuse.clone(), links.clone());
        let accepting = smol::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if refusing.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let link = smol::spawn(async move {
                    let Ok(outbound) = smol::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let up = smol::io::copy(inbound.clone(), outbound.clone());
                    let down = smol::io::copy(outbound, inbound);
                    let _ = smol::future::race(up, down).await;
                });
                held.lock().unwrap().push(link);
            }
        });
        Relay {
            addr,
            refuse,
            links,
            _accepting: accepting,
        }
    }

    /// Drops every link (their sockets close) and refuses new ones.
    fn cut(&self) {
        self.refuse.store(true, Ordering::SeqCst);
        self.links.lock().unwrap().clear();
    }

    fn heal(&self) {
        self.refuse.store(false, Ordering::SeqCst);
    }
}

#[test]
fn the_client_resumes_from_smol_against_the_smol_server() {
    const TOPIC: &str = "hist:news";
    outside_tokio(|rt| async move {
        let builder = Builder::new().configure(|c| {
            c.hub.history = vec![HistoryRule::new("hist:*", HistoryLimits::new(100, None))];
        });
        let served = Served::start(&rt, builder).await;
        let handle = served.handle.clone();
        let relay = Relay::start(served.addr).await;

        let options = LiveOptions::default()
            .seed(3)
            .backoff(Duration::from_millis(20), Duration::from_millis(200));
        let (alice, mut events) =
            LiveClient::connect(&format!("ws://{}/ws", relay.addr), options).unwrap();
        alice.subscribe(TOPIC).await.unwrap();
        let start = until(&mut events, "subscribed", |ev| match ev {
            LiveEvent::Subscribed { position, .. } => Some(position.clone()),
            _ => None,
        })
        .await;
        let mut got: Vec<(Value, Option<u64>)> = Vec::new();
        for n in 1..=3 {
            handle.publish(TOPIC, n.to_string()).await.unwrap();
        }
        for _ in 1..=3 {
            let m = until(&mut events, "message", |ev| match ev {
                LiveEvent::Message(m) if m.topic == TOPIC => Some((m.data.clone(), m.offset)),
                _ => None,
            })
            .await;
            got.push(m);
        }

        relay.cut();
        until(&mut events, "disconnected", |ev| {
            matches!(ev, LiveEvent::Disconnected { .. }).then_some(())
        })
        .await;
        // Published while alice is away: the server keeps them in the history.
        for n in 4..=8 {
            handle.publish(TOPIC, n.to_string()).await.unwrap();
        }
        relay.heal();
        let recovered = until(&mut events, "subscribed again", |ev| match ev {
            LiveEvent::Subscribed { recovered, .. } => Some(*recovered),
            LiveEvent::RecoveryFailed { .. } => Some(false),
            _ => None,
        })
        .await;
        assert!(recovered, "the position was still held");
        // Then a live one: nothing old may come twice before it.
        handle.publish(TOPIC, "9").await.unwrap();
        for _ in 4..=9 {
            let m = until(&mut events, "replayed message", |ev| match ev {
                LiveEvent::Message(m) if m.topic == TOPIC => Some((m.data.clone(), m.offset)),
                _ => None,
            })
            .await;
            got.push(m);
        }
        let want: Vec<(Value, Option<u64>)> = (1..=9u64)
            .map(|n| (json!(n), Some(start.offset + n)))
            .collect();
        assert_eq!(got, want, "every publication once, in order");

        alice.close().await.unwrap();
        served.stop().await;
    });
}
