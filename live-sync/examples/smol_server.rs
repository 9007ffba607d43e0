//! The same server on smol: no tokio in the build unless a broker or the
//! client asks for it (`default-features = false, features = ["smol", "sqlite"]`).
//!
//! ```sh
//! cargo run -p live-sync --no-default-features --features smol,sqlite --example smol_server
//! ```

use live_sync::{Builder, ExecutorThreads, SmolRuntime};

fn main() -> Result<(), live_sync::Error> {
    let rt = SmolRuntime::new();
    let _workers = ExecutorThreads::per_core(&rt).map_err(live_sync::Error::Runtime)?;
    smol::block_on(async {
        let server = Builder::new().sqlite("app.db").start_on(rt.clone()).await?;
        let live = server.handle().clone(); // publish, send, close, trim ...
        smol::spawn(async move {
            let _ = live.publish("clock", r#""started""#).await;
        })
        .detach();
        server.serve("127.0.0.1:8080").await
    })
}
