//! [`PgStore`]: a pool of connections driven by the thread each operation
//! runs on, and the scope versions this node has seen.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod};
use sync_core::store::{ScopeDelta, ScopeMark, ScopeRecords, ScopeUpdate, load_whole};
use sync_core::{Batch, Recovered, Store};

use crate::client_cert::ClientCert;
use crate::tls::Connector;
use crate::watch::{self, Changed};
use crate::writer::{Persist, Writer};
use crate::{Error, delta, read, schema};

/// How a [`PgStore`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgOptions {
    /// Connections for reads and loads. Default 4. The store opens one more
    /// for writing batches, which it keeps once it has used it, so reads
    /// never wait behind writes.
    pub pool_size: usize,
    /// Longest wait for connecting, for a connection from the pool, and for
    /// each whole operation (a batch, a load). Past it the operation fails
    /// with [`Error::Timeout`] instead of hanging. Default 5 s.
    pub timeout: Duration,
    /// A PostgreSQL schema to keep the tables in (created if missing), for
    /// several independent deployments or tests in one database. Letters,
    /// digits and `_` only. Default: none (the server's `search_path`).
    pub schema: Option<String>,
    /// A PEM file of the certificate authorities that sign PostgreSQL's
    /// certificate: connections use TLS, verifying the server against them.
    /// Without it, the URL's `sslrootcert=PATH` names one; else TLS is used
    /// when the URL says `sslmode=require` (or libpq's `verify-full` or
    /// `verify-ca`), verifying the server against the system's authorities;
    /// otherwise connections are in the clear. Default: none.
    pub ca_file: Option<std::path::PathBuf>,
    /// A certificate and key the store presents to PostgreSQL, for a
    /// server that authenticates clients by certificate (`cert`, or
    /// `clientcert=verify-full`, in `pg_hba.conf`): connections use TLS.
    /// Without it, the URL's `sslcert=PATH` and `sslkey=PATH` name them.
    /// The files are read again when they change, so a renewed certificate
    /// is shown from the next connection on. Default: none.
    pub client_cert: Option<ClientCert>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 4,
            timeout: Duration::from_secs(5),
            schema: None,
            ca_file: None,
            client_cert: None,
        }
    }
}

impl PgOptions {
    /// Options with the tables in `schema`.
    pub fn in_schema(schema: impl Into<String>) -> Self {
        PgOptions {
            schema: Some(schema.into()),
            ..PgOptions::default()
        }
    }

    /// The same options with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same options with TLS verified against the authorities of the
    /// PEM file at `path` (see [`PgOptions::ca_file`]).
    pub fn with_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// The same options presenting the PEM certificate chain at `cert`
    /// and the PEM private key at `key` to PostgreSQL (see
    /// [`PgOptions::client_cert`]).
    pub fn with_client_cert(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.client_cert = Some(ClientCert {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// The same options with another pool size.
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }
}

/// A [`Store`] in PostgreSQL, safe to share between several nodes.
///
/// Every [`Store::persist`] is one transaction that first locks the version
/// row of each scope the batch touches (in scope order, so two nodes never
/// deadlock; a node waits while another writes the scope), checks each
/// version against the one this store last loaded or wrote, writes the
/// batch, and bumps the versions: one flight to PostgreSQL while no other
/// node writes the same scopes, two (lock, then write) after a refusal. A
/// node that missed another node's commit gets [`Error::Stale`], writes
/// nothing, and keeps the scopes locked: it reads what it lacks
/// ([`Store::load_scopes_since`]) and its next batch, computed again on top,
/// is written in the same transaction, so no other node can get in between
/// and refuse it again.
pub struct PgStore {
    /// Taken out only in `Drop`, to shut it down without blocking.
    rt: Option<tokio::runtime::Runtime>,
    /// The listening connection's thread (see [`PgStore::watch`]).
    watcher: Option<tokio::runtime::Runtime>,
    pool: Pool,
    timeout: Duration,
    /// Scope -> version as of this node's last load or write of it. A scope
    /// missing here is expected to be at version 0 (never written).
    versions: BTreeMap<String, i64>,
    /// The connection batches are written on, and the scopes it holds
    /// locked after a refusal.
    writer: Writer,
    /// Scope -> version held before the last read of it, restored by
    /// `forget_scope` when the engine did not take what was read.
    read_from: BTreeMap<String, i64>,
    /// Kept for the listening connection of [`PgStore::watch`].
    config: tokio_postgres::Config,
    connector: Connector,
    /// Channel of this deployment's change notices.
    channel: String,
    /// This store's name in its notices, so it can ignore its own.
    node: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("timeout", &self.timeout)
            .field("scopes_known", &self.versions.len())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://USER@HOST[:PORT]/DB`), brings the schema
    /// up to date and returns the store. Fails within `options.timeout` when
    /// the server cannot be reached.
    pub fn connect(url: &str, options: PgOptions) -> Result<Self, Error> {
        let (url, named) = crate::tls::libpq_tls_options(url)?;
        let ca_file = options.ca_file.clone().or(named.ca_file);
        let client_cert = options.client_cert.clone().or(named.client_cert);
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| Error::Config(format!("{e}")))?;
        if let Some(schema) = &options.schema {
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(Error::Config(format!("schema name {schema:?}")));
            }
            config.options(format!("-c search_path={schema}"));
        }
        config.connect_timeout(options.timeout);
        let connector = Connector::new(&mut config, ca_file.as_deref(), client_cert.as_ref())?;
        // The URL's own (`?application_name=node-1`) names the node in
        // `pg_stat_activity`.
        if config.get_application_name().is_none() {
            config.application_name("sync-postgres");
        }
        // Driven by the thread an operation runs on, for as long as it
        // runs: a batch's round trips need no hand-off to another thread
        // and back (a node's batches on a scope other nodes write hold its
        // lock across them). The listening connection, which must hear
        // notices between operations too, has a thread of its own.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let watcher = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sync-postgres-watch")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let manager = connector.manager(
            config.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _guard = rt.enter();
            Pool::builder(manager)
                // The writing connection comes from the pool and never
                // goes back: one more than the readers get.
                .max_size(options.pool_size.max(1) + 1)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(options.timeout))
                .create_timeout(Some(options.timeout))
                .recycle_timeout(Some(options.timeout))
                .build()
                .map_err(|e| Error::Config(e.to_string()))?
        };
        let mut store = PgStore {
            rt: Some(rt),
            watcher: Some(watcher),
            pool,
            timeout: options.timeout,
            versions: BTreeMap::new(),
            writer: Writer::default(),
            read_from: BTreeMap::new(),
            config,
            connector,
            channel: watch::channel(options.schema.as_deref()),
            node: node_name(),
        };
        let schema = options.schema.as_deref();
        store.run("migrating", async {
            let mut client = store.pool.get().await?;
            schema::migrate(&mut client, schema).await
        })?;
        // The writing connection, set up now rather than at the first push,
        // so that a user who may not create its temporary function (see
        // `write`) is told when connecting.
        let mut writer = Writer::default();
        store
            .run(
                "connecting the writer",
                writer.connect(&store.pool, store.timeout),
            )
            .map_err(|e| no_temporary(e, &store.config))?;
        store.writer = writer;
        Ok(store)
    }

    /// The highest cursor stored for `scope` (0 when its log is empty and it
    /// was never trimmed). For operators and tests.
    pub fn head(&self, scope: &str) -> Result<u64, Error> {
        self.read("reading a head", async |client| {
            read::head(client, scope).await
        })
    }

    /// Calls `on_change` (on the store's own thread) whenever another node
    /// commits a batch touching a scope, and with [`Changed::Everything`]
    /// each time the listening connection is up (at first, and after it was
    /// lost), since commits made before may not have been heard. The driver
    /// reloads those scopes before telling its own clients (a poke), so a
    /// client never pulls from a node that has not seen the commit it was
    /// poked about. The listening connection is checked every
    /// [`PgOptions::timeout`] and replaced when it does not answer within
    /// it. Runs until the store is dropped.
    pub fn watch(&self, on_change: impl Fn(Changed) + Send + Sync + 'static) {
        let rt = self.watcher.as_ref().expect("runtime present until drop");
        rt.spawn(self.connector.listener(
            self.config.clone(),
            self.channel.clone(),
            self.node.clone(),
            self.timeout,
            Box::new(on_change),
        ));
    }

    /// Runs `read` on a pooled connection, once more if PostgreSQL ended
    /// the session it ran on (see [`PgStore::again_if_session_ended`]).
    fn read<T>(
        &self,
        what: &'static str,
        read: impl AsyncFn(&mut deadpool_postgres::Object) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.again_if_session_ended(|| {
            self.run(what, async {
                let mut client = self.pool.get().await?;
                read(&mut client).await
            })
        })
    }

    /// Runs `op`, which must change nothing when it fails; if it failed
    /// because PostgreSQL ended the session it ran on, `op` runs once more,
    /// on a new connection (see [`PgStore::after_session_ended`]), rather
    /// than failing once per dead connection after every restart.
    fn again_if_session_ended<T>(
        &self,
        mut op: impl FnMut() -> Result<T, Error>,
    ) -> Result<T, Error> {
        match op() {
            Err(e) if self.after_session_ended(&e) => op(),
            other => other,
        }
    }

    /// Whether `e` says PostgreSQL ended the session it came from (a
    /// restart, a failover, an operator). If so, the pool's idle
    /// connections most likely went with it: they are dropped, so what
    /// runs next takes a new one.
    fn after_session_ended(&self, e: &Error) -> bool {
        let ended = e.session_ended();
        if ended {
            self.close_idle_connections();
        }
        ended
    }

    /// Closes the pool's idle connections, so what runs next connects anew.
    fn close_idle_connections(&self) {
        // Closing a connection may need the runtime that drives it.
        let _in_runtime = self.rt.as_ref().map(|rt| rt.enter());
        self.pool.retain(|_, _| false);
    }

    /// Runs `fut` on the store's runtime, bounded by the timeout.
    ///
    /// A connection that did not answer in time may never answer (a network
    /// partition, a firewall that forgot the connection): PostgreSQL may be
    /// back while it still hangs. So after a timeout, the pool's idle
    /// connections (the one that timed out went back among them when `fut`
    /// was dropped) are closed, and what runs next takes a new one.
    fn run<T>(
        &self,
        what: &'static str,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let rt = self.rt.as_ref().expect("runtime present until drop");
        // The timer is made inside the runtime: it needs the runtime's clock.
        let result = rt.block_on(async { tokio::time::timeout(self.timeout, fut).await });
        result.unwrap_or_else(|_| {
            self.close_idle_connections();
            Err(Error::Timeout {
                what,
                after: self.timeout,
            })
        })
    }
}

/// Names the privilege missing when the database user may not create the
/// writing connection's temporary function.
fn no_temporary(e: Error, config: &tokio_postgres::Config) -> Error {
    let Error::Postgres(e) = e else { return e };
    if e.code() != Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
        return Error::Postgres(e);
    }
    let database = config.get_dbname().unwrap_or("DATABASE");
    let user = config.get_user().unwrap_or("USER");
    Error::Config(format!(
        "user {user:?} may not create temporary objects in database {database:?}, which \
         writing batches needs (GRANT TEMPORARY ON DATABASE \"{database}\" TO \"{user}\"): {}",
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned())
    ))
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async task (where
        // a driver may drop its store): let it wind down in the background.
        for rt in [self.rt.take(), self.watcher.take()].into_iter().flatten() {
            rt.shutdown_background();
        }
    }
}

impl Store for PgStore {
    type Error = Error;

    fn persist(&mut self, batch: &Batch) -> Result<(), Error> {
        self.persist_marked(batch, &BTreeMap::new())
    }

    /// Reads, in a refusal's own flight, what the refused scopes gained
    /// after `marks`, for the [`Store::load_scopes_since`] that follows.
    fn persist_marked(
        &mut self,
        batch: &Batch,
        marks: &BTreeMap<String, Option<ScopeMark>>,
    ) -> Result<(), Error> {
        // Out of `self` while it runs, as the runtime is borrowed from it.
        let mut writer = std::mem::take(&mut self.writer);
        let how = Persist {
            known: &self.versions,
            marks,
            notice: (self.channel.as_str(), self.node.as_str()),
            idle_limit: self.timeout,
        };
        let result = self.run("persisting a batch", writer.persist(&self.pool, batch, how));
        self.writer = writer;
        // On an ended session, whether the batch landed is unknown, and the
        // versions stay as they were, so the batch tried again is checked
        // against them (see `Store`'s contract); that try, and the reads
        // after it, take new connections.
        if let Err(e) = &result {
            self.after_session_ended(e);
        }
        let bumped = result?;
        for (scope, _) in &bumped {
            self.read_from.remove(scope);
        }
        self.versions.extend(bumped);
        Ok(())
    }

    /// Locks the scopes' version rows in the transaction the next batch is
    /// written in, and reads their deltas in the same flight.
    /// Should PostgreSQL have ended the writing connection's session, the
    /// locks are taken again on a new one: nothing was written.
    fn lock_scopes(&mut self, scopes: &[(String, Option<ScopeMark>)]) -> Result<(), Error> {
        let mut writer = std::mem::take(&mut self.writer);
        let result = self.again_if_session_ended(|| {
            let locking = writer.lock(&self.pool, scopes, &self.versions, self.timeout);
            self.run("locking scopes", locking)
        });
        self.writer = writer;
        result
    }

    fn load(&mut self) -> Result<Recovered, Error> {
        let (scopes, versions) =
            self.read("loading", async |client| read::load(client, None).await)?;
        self.versions = versions;
        Ok(Recovered {
            scopes: scopes.into_values().collect(),
        })
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, Error> {
        let (mut scopes, versions) = self.read("loading a scope", async |client| {
            read::load(client, Some(scope)).await
        })?;
        let before = self.versions.remove(scope);
        self.read_from.insert(scope.to_owned(), before.unwrap_or(0));
        self.versions.extend(versions);
        Ok(scopes.remove(scope))
    }

    /// Reads only rows stamped with a later version than the one this node
    /// holds of `scope`, and changes after `held.head`; loads the scope
    /// whole when this node holds no version of it (never loaded, or
    /// forgotten because the engine did not take a load).
    fn load_scope_since(&mut self, scope: &str, held: ScopeMark) -> Result<ScopeUpdate, Error> {
        let mut updates = self.load_scopes_since(&[(scope, held)])?;
        match updates.pop() {
            Some(update) => Ok(update),
            None => load_whole(self, scope),
        }
    }

    /// [`Store::load_scope_since`] for every scope in one snapshot and one
    /// round trip; only scopes without a delta are then loaded whole, one by
    /// one.
    fn load_scopes_since(
        &mut self,
        scopes: &[(&str, ScopeMark)],
    ) -> Result<Vec<ScopeUpdate>, Error> {
        let wanted: Vec<delta::Wanted<'_>> = scopes
            .iter()
            .filter_map(|(scope, held)| delta::Wanted::of(scope, &self.versions, Some(*held)))
            .collect();
        // A refused batch's scopes were read with its locks, from the same
        // marks: no second read.
        let mut prefetched = self.writer.take_prefetched();
        let mut read: BTreeMap<&str, (ScopeDelta, i64)> = BTreeMap::new();
        let mut unread = Vec::with_capacity(wanted.len());
        for w in wanted {
            match prefetched.remove(w.scope) {
                Some(p) if p.known == w.known && p.held == w.held => {
                    if let Some(delta) = p.delta {
                        read.insert(w.scope, delta);
                    }
                }
                _ => unread.push(w),
            }
        }
        if !unread.is_empty() {
            let deltas = self.read("reading scopes' deltas", async |client| {
                delta::load_since(client, &unread).await
            })?;
            read.extend(
                unread
                    .iter()
                    .zip(deltas)
                    .filter_map(|(w, r)| Some((w.scope, r?))),
            );
        }
        let mut out = Vec::with_capacity(scopes.len());
        for (scope, _) in scopes {
            match read.remove(scope) {
                Some((delta, version)) => {
                    let before = self.versions.insert((*scope).to_owned(), version);
                    self.read_from
                        .insert((*scope).to_owned(), before.unwrap_or(0));
                    out.push(ScopeUpdate::Delta(delta));
                }
                None => out.push(load_whole(self, scope)?),
            }
        }
        Ok(out)
    }

    /// Goes back to the version this node held before its last read of
    /// `scope` (which the engine did not take): the next batch on it is
    /// refused as stale and the next read starts from there again, as a
    /// delta. Without such a read, to no version at all (a full load).
    fn forget_scope(&mut self, scope: &str) {
        // No stored version is negative: the next batch on it is stale.
        let before = self.read_from.remove(scope).unwrap_or(-1);
        self.versions.insert(scope.to_owned(), before);
    }

    fn stale_scopes(error: &Error) -> Vec<String> {
        error.stale_scopes().to_vec()
    }

    fn is_unavailable(error: &Error) -> bool {
        error.is_unavailable()
    }
}

/// A name for this store in its change notices, unique among the nodes of a
/// deployment: process id, creation time, and a counter.
fn node_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
