//! A durable [`sync_core::Store`] on PostgreSQL, shared by several server
//! nodes.
//!
//! Owns: the relational layout of the sync log, client sequence records,
//! mutation-id records and trim bases in PostgreSQL; the guarantee that one
//! [`sync_core::Batch`] is one transaction, sent in as few round trips and
//! messages as PostgreSQL allows (one statement per table, all inside one
//! call of a function the writing connection defines in its temporary
//! schema, so the database user needs the `TEMPORARY` privilege); and the
//! per-scope version check that lets several nodes write the same database
//! safely: every batch locks the rows of the scopes it touches, so writers
//! of one scope wait for each other in PostgreSQL, and is refused with
//! [`Error::Stale`] when another node wrote one of them since this node last
//! loaded or wrote it. The locks are then kept: the driver reads only what
//! was written after the version it holds
//! ([`sync_core::store::refresh_scope`],
//! [`sync_core::Engine::apply_scope_update`]), pushes again, and the next
//! batch is written in the same transaction, where no other node can get in
//! between. So two nodes can never write the same cursor twice, leave a gap,
//! or apply one client's sequence twice, and a batch is refused once at most.
//!
//! The same check makes a batch safe to send again when its outcome is
//! unknown: one whose session ended under it (a restart, a failover, an
//! operator), perhaps during `COMMIT`, fails as unavailable
//! ([`Error::is_unavailable`]) with the versions left as they were, so if it
//! landed after all, the next try is refused as stale and reads it back.
//! The server core tries such batches again for a while before it answers
//! 503; reads whose session ended run again on a new connection here.

//! It must never decide protocol questions (which cursor comes next, whether
//! a mutation is a replay): those belong to `sync-core`.
//!
//! Connections are in the clear unless the URL says `sslmode=require` or
//! [`PgOptions::ca_file`] names the authorities that sign the server's
//! certificate: then they use TLS (rustls) and always verify the server,
//! against that file or else the system's authorities.
//!
//! The store is synchronous, like every [`sync_core::Store`]: it owns a small
//! tokio runtime (one worker thread) for the asynchronous client and its
//! pool, and blocks the calling thread. Drivers already run stores on a
//! blocking thread, so a batch costs one hop, and the same store serves any
//! adapter runtime. Do not call it from inside an async task.
//!
//! ```no_run
//! use sync_core::Store;
//! use sync_postgres::{PgOptions, PgStore};
//!
//! let mut store = PgStore::connect("postgres://postgres@127.0.0.1/test", PgOptions::default())?;
//! let recovered = store.load()?; // hand to `sync_core::Engine::recover`
//! # Ok::<(), sync_postgres::Error>(())
//! ```

mod client_cert;
mod delta;
mod error;
mod pem;
mod pipeline;
mod read;
mod schema;
mod store;
#[cfg(test)]
mod test_db;
mod tls;
mod watch;
mod write;
mod writer;

pub use client_cert::ClientCert;
pub use error::Error;
pub use schema::SCHEMA_VERSION;
pub use store::{PgOptions, PgStore};
pub use watch::Changed;
