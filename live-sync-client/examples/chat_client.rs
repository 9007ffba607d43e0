//! A terminal chat on the live client: every line typed is published to a
//! room; every message in the room is printed, as are connection changes.
//! Stop the server and start it again to watch it reconnect and resubscribe.
//!
//! `cargo run -p live-sync-client --example chat_client -- ws://127.0.0.1:8080/ws alice lobby`

use live_sync_client::{LiveClient, LiveEvent, LiveOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let user = args.next().unwrap_or_else(|| "guest".into());
    let room = args.next().unwrap_or_else(|| "lobby".into());

    let (live, mut events) = LiveClient::connect(&url, LiveOptions::default().token(&user))?;
    live.subscribe(room.clone()).await?;

    // tokio's stdin needs a feature this workspace does not enable; a thread
    // reading lines is all a chat prompt needs.
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(text) if !text.trim().is_empty() => {
                    let msg = json!({"from": user, "text": text});
                    if let Err(e) = live.publish(&room, msg).await {
                        eprintln!("(not sent: {e})");
                    }
                }
                Some(_) => {}
                None => break,
            },
            event = events.recv() => match event {
                Some(LiveEvent::Message(m)) => {
                    let from = m.data["from"].as_str().unwrap_or("?");
                    let text = m.data["text"].as_str().unwrap_or_default();
                    println!("[{}] {from}: {text}", m.topic);
                }
                Some(LiveEvent::Connected) => eprintln!("(connected to {url} as {user}, room {room})"),
                Some(LiveEvent::Disconnected { reason }) => eprintln!("(disconnected: {reason:?})"),
                Some(LiveEvent::Reconnecting { attempt, delay }) => {
                    eprintln!("(reconnecting in {delay:?}, attempt {attempt})")
                }
                Some(LiveEvent::ServerError { code, message }) => eprintln!("(server: {code}: {message})"),
                Some(LiveEvent::RecoveryFailed { topic, .. }) => {
                    eprintln!("(messages on {topic} were missed while disconnected)")
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    live.close().await?;
    Ok(())
}
