//! Tests against the real PostgreSQL: the URL comes from `TEST_POSTGRES_URL`
//! (`.ci/run` sets it after checking the server is up). Without it these tests
//! say so and pass without checking anything; with `TEST_SERVICES_REQUIRED=1`
//! a missing URL fails them instead.

#![allow(dead_code, unreachable_pub)]

pub mod records;

use std::sync::atomic::{AtomicU32, Ordering};

use sync_postgres::PgOptions;

/// The server to test against, or `None` (after saying so) when not configured.
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("TEST_SERVICES_REQUIRED").as_deref() != Ok("1"),
                "TEST_SERVICES_REQUIRED=1 but TEST_POSTGRES_URL is not set"
            );
            eprintln!("TEST_POSTGRES_URL not set: skipping a PostgreSQL test");
            None
        }
    }
}

/// A schema of its own for one test (dropped now and when the guard drops),
/// so tests running in parallel never see each other's rows.
pub struct Schema {
    url: String,
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Schema {
    pub fn fresh(url: &str, tag: &str) -> Schema {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{tag}_{}_{n}", std::process::id());
        let s = Schema {
            url: url.to_owned(),
            name,
        };
        s.drop_schema();
        s
    }

    pub fn options(&self) -> PgOptions {
        PgOptions::in_schema(self.name.clone())
    }

    pub fn sql(&self, sql: &str) {
        if let Err(e) = self.try_sql(sql) {
            panic!("sql: {e}");
        }
    }

    /// Runs `sql` on a connection of its own; the server's error code and
    /// message when it fails.
    pub fn try_sql(&self, sql: &str) -> Result<(), String> {
        let url = self.url.clone();
        let sql = sql.replace("{schema}", &self.name);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(conn);
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| match e.as_db_error() {
                        Some(db) => format!("{}: {}", db.code().code(), db.message()),
                        None => e.to_string(),
                    })
            })
        })
        .join()
        .expect("sql thread")
    }

    fn drop_schema(&self) {
        self.sql("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.drop_schema();
        }
    }
}
