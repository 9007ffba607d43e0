//! The database unit tests run against: `TEST_POSTGRES_URL`, or none (the
//! test is skipped, unless `TEST_SERVICES_REQUIRED=1` says it must run).

/// A connection to the test database, its connection task spawned; `None`
/// when there is none to use.
pub(crate) async fn connect() -> Option<tokio_postgres::Client> {
    let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("TEST_SERVICES_REQUIRED").as_deref() != Ok("1"),
            "TEST_SERVICES_REQUIRED=1 but TEST_POSTGRES_URL is not set"
        );
        eprintln!("TEST_POSTGRES_URL not set: skipping a PostgreSQL test");
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    Some(client)
}
