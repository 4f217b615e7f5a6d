//! A fresh database on the throwaway PostgreSQL that `scripts/postgres.sh` starts.
//!
//! A PostgreSQL test that finds no server fails, as `scripts/test.sh` promises, rather than
//! pass having checked nothing; `WARDEN_TEST_POSTGRES=skip` is the developer's explicit
//! opt-out, and then [`server_url`] is `None` (after a note) and the test returns.

use std::str::FromStr;

use rand_core::{OsRng, RngCore};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

/// The server to test against, from `WARDEN_TEST_POSTGRES_URL`; `None` only when the
/// developer skips the PostgreSQL tests.
pub fn server_url() -> Option<String> {
    match std::env::var("WARDEN_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("WARDEN_TEST_POSTGRES").as_deref() == Ok("skip") => {
            eprintln!("note: WARDEN_TEST_POSTGRES=skip, PostgreSQL test skipped");
            None
        }
        _ => panic!(
            "no PostgreSQL to test against: WARDEN_TEST_POSTGRES_URL is not set \
             (`source scripts/postgres.sh` starts a throwaway server and sets it; \
             WARDEN_TEST_POSTGRES=skip skips the PostgreSQL tests)"
        ),
    }
}

/// Creates an empty database on the server at `url` and returns options that connect to it.
/// A database rather than a schema per test: `NOTIFY` channels are per database, so tests
/// in schemas of one database would hear each other's revocations.
pub async fn fresh_database(url: &str) -> PgConnectOptions {
    let admin = PgConnectOptions::from_str(url).unwrap();
    let name = format!("warden_t_{:016x}", OsRng.next_u64());
    let mut conn = PgConnection::connect_with(&admin).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    admin.database(&name)
}

/// `url` with its database name replaced (the URL forms this suite is given:
/// `postgres://user:password@host:port/database?query`).
pub fn url_with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.split_once('?').map(|(_, q)| q);
    match query {
        Some(q) => format!("{scheme}://{authority}/{database}?{q}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}
