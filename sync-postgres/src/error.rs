//! What can go wrong when storing or loading.

use std::time::Duration;

/// A failure of the PostgreSQL store. Any error from
/// [`crate::PgStore`]'s `persist` means its transaction did not commit, or
/// (connection lost during `COMMIT`) that the outcome is unknown; in both
/// cases the scope versions this node holds are left as they were, so a
/// batch that did commit after all makes the next write of those scopes fail
/// with [`Error::Stale`] and the driver reloads them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// PostgreSQL refused a statement or the connection broke.
    #[error("postgres: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool (server down, refused, ...).
    #[error("postgres unavailable: {}", describe_pool(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    /// An operation took longer than the configured timeout.
    #[error("postgres did not answer {what} within {after:?}")]
    Timeout {
        /// The operation.
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// Another node wrote these scopes since this node last loaded or wrote
    /// them; nothing was written. The store keeps them locked until its next
    /// `persist` (or until the connection's idle-transaction limit, the
    /// store's timeout): reload them, compute the batch again and persist
    /// it, and no other node can get in between.
    #[error("scopes changed by another node: {scopes:?}")]
    Stale {
        /// The scopes to reload, sorted.
        scopes: Vec<String>,
    },
    /// The URL or options could not be used.
    #[error("invalid postgres configuration: {0}")]
    Config(String),
    /// The store's runtime could not be started.
    #[error("cannot start the store's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A record could not be encoded into a column, or a stored column
    /// could not be decoded (bad JSON, a number out of range).
    #[error(transparent)]
    Column(#[from] sync_core::store::columns::ColumnError),
    /// The database was written by a newer version of this crate.
    #[error("database schema version {found} is newer than this build understands ({supported})")]
    SchemaTooNew {
        /// Version in the database.
        found: i32,
        /// Highest version this build knows.
        supported: i32,
    },
}

impl Error {
    /// True when the database could not be reached or is going away
    /// (rather than refusing what was sent): the HTTP layer answers such
    /// failures with 503 and the store recovers by itself once PostgreSQL is
    /// back. A server shutting down or restarting ends each session with an
    /// error of its own (`57P01` and its kin) before closing it, a server
    /// out of connection slots refuses with `53300`: those count as
    /// unreachable too.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Pool(_) | Error::Timeout { .. } => true,
            Error::Postgres(e) => {
                e.is_closed()
                    || e.as_db_error()
                        .is_none_or(|db| unavailable(db.code().code()))
            }
            _ => false,
        }
    }

    /// True when PostgreSQL ended the session the operation ran on, or the
    /// connection broke: a new connection may well succeed at once (the
    /// server restarted, or an operator ended the session), unlike when no
    /// connection could be had at all.
    pub(crate) fn session_ended(&self) -> bool {
        matches!(self, Error::Postgres(_)) && self.is_unavailable()
    }

    /// The scopes another node changed, when that is why a batch was refused.
    pub fn stale_scopes(&self) -> &[String] {
        match self {
            Error::Stale { scopes } => scopes,
            _ => &[],
        }
    }
}

/// SQLSTATEs that mean the server cannot serve the session now, whatever
/// was sent: connection exceptions (class 08), insufficient resources
/// (class 53: out of connections, memory or disk) and operator intervention
/// ending the session (`57P01` admin shutdown, `57P02` crash shutdown,
/// `57P03` cannot connect now, `57P04` database dropped). Also `57014`, a
/// statement cancelled: by the writing connection's `statement_timeout`,
/// which is the store's own timeout (PostgreSQL gave up where the store
/// would have), or by an operator.
fn unavailable(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") || code == "57014"
}

/// tokio-postgres says only "db error" or "error connecting to server": name
/// the server's message or the cause too.
fn describe(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{}: {}", db.code().code(), db.message()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

/// The pool says only "Error occurred while creating a new object: db
/// error" when PostgreSQL refused the connection: name the server's reason
/// (`57P03: the database system is starting up`, say).
fn describe_pool(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => format!("connecting: {}", describe(e)),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::unavailable;

    #[test]
    fn a_refused_connection_says_why() {
        let url = "postgres://postgres@127.0.0.1:1/test";
        let options = crate::PgOptions::default();
        let Err(e) = crate::PgStore::connect(url, options) else {
            panic!("nothing listens on port 1");
        };
        let text = e.to_string();
        assert!(e.is_unavailable(), "{text}");
        assert!(text.contains("connecting: "), "{text}");
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }

    #[test]
    fn a_server_going_away_or_full_is_unavailable_and_a_refusal_is_not() {
        for code in [
            "08006", "08001", "53300", "53100", "57P01", "57P02", "57P03", "57014",
        ] {
            assert!(unavailable(code), "{code}");
        }
        for code in ["23505", "42P01", "SY001", "40001", "22003"] {
            assert!(!unavailable(code), "{code}");
        }
    }
}
