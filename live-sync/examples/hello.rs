//! The README's 30-second example: live on `/ws`, sync on
//! `/_sync/push|pull|snapshot`, data in `app.db`, until Ctrl-C.
//!
//! ```sh
//! cargo run -p live-sync --example hello
//! ```

fn main() -> Result<(), live_sync::Error> {
    live_sync::Builder::new()
        .sqlite("app.db")
        .run("127.0.0.1:8080")
}
