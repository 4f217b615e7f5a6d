//! Warden's persistent state behind one [`Store`] trait, which bundles one trait per area
//! ([`TenantStore`], [`SigningKeyStore`], [`RevocationStore`], … ; see [`store`]).
//!
//! The traits speak in Warden's types and know nothing of SQL. Two backends implement them:
//!
//! - [`sqlite::SqliteStore`], the embedded default: one process, one database file.
//! - [`postgres::PgStore`], for several authority replicas sharing one PostgreSQL database.
//!   Replicas learn of each other's revocations through `LISTEN`/`NOTIFY`, so
//!   [`RevocationStore::revocation_watch`] wakes for an append made by any of them.
//!
//! [`connect_url`] picks one from a URL. The schema in `migrations/` is written in the SQL
//! that SQLite and PostgreSQL share; the one statement they spell differently (the
//! revocation log's sequence column) has its PostgreSQL form in `migrations/postgres/`.
//! Both backends pass the same conformance suite (`tests/it`), which is what "identical
//! semantics" means here. Every method is one transaction: a failure leaves nothing half
//! applied. Lifecycle writes all go through [`ChangeStore::apply`], which commits a
//! [`Change`] together with its [`ChangeRecord`] (the idempotent answer, the audit entry).
//!
//! The SQL and the row mapping are written once for both backends (`apply`, `journal`,
//! `shared`, over the small database interface in `sql`); a backend module keeps only what
//! is its own: how it connects, its write transaction, its locks, how it learns of
//! revocations. See `docs/storage.md` for the layout and for running on PostgreSQL.

mod apply;
pub mod change;
mod journal;
pub mod model;
pub mod postgres;
mod shared;
mod sql;
pub mod sqlite;
pub mod store;

pub use change::*;
pub use model::*;
pub use store::*;

/// Every area trait, for calling the store's methods on a concrete backend
/// (`SqliteStore`, `PgStore`): `use warden_store::prelude::*;`. Methods on a `dyn Store`
/// need no import.
pub mod prelude {
    pub use crate::store::{
        ActivityStore, AssertionJtiStore, ChangeStore, CodeFlowStore, DelegationStore,
        GatewayKeyStore, IdempotencyStore, OAuthClientStore, OutboxStore, PeopleStore,
        RevocationStore, SigningKeyStore, Store, TenantStore,
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("storage backend: {0}")]
    Backend(#[from] sqlx::Error),
    /// The store could not be set up as asked (an unsupported URL, say).
    #[error("store configuration: {0}")]
    Config(String),
    /// A change was to complete an `Idempotency-Key` reservation that is no longer the
    /// caller's (another caller took it over as abandoned); nothing was applied.
    #[error("the idempotency key's reservation is no longer held")]
    ReservationLost,
    /// The store cannot take requests now, for the reason given.
    #[error("store unavailable: {0}")]
    Unavailable(&'static str),
    /// One failure of a statement that several callers shared (a group commit).
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Why the store cannot take this request now, when the cause is the store's state and
    /// not the request: a full disk, an I/O failure, an unreachable or exhausted database.
    /// Callers answer such failures 503 with `Retry-After`, never 500.
    pub fn unavailable(&self) -> Option<&'static str> {
        let e = match self {
            StoreError::Backend(e) => e,
            StoreError::Shared(inner) => return inner.unavailable(),
            StoreError::Unavailable(why) => return Some(why),
            _ => return None,
        };
        match e {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // SQLite's SQLITE_FULL; PostgreSQL's disk_full.
                Some("13" | "53100") => Some("the store's disk is full"),
                // PostgreSQL's insufficient_resources class.
                Some(code) if code.starts_with("53") => Some("the database is out of resources"),
                // SQLite's SQLITE_IOERR and its extended codes (low byte 10).
                Some(code) if code.parse::<i64>().is_ok_and(|c| c & 0xff == 10) => {
                    Some("the store's disk failed a write")
                }
                // PostgreSQL's operator_intervention class: shutting down, cannot connect now.
                Some(code) if code.starts_with("57") => Some("the database is not accepting work"),
                _ => None,
            },
            sqlx::Error::Io(err) if is_out_of_space(err) => Some("the store's disk is full"),
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                Some("the database is unreachable")
            }
            _ => None,
        }
    }
}

fn is_out_of_space(e: &std::io::Error) -> bool {
    // ENOSPC and EDQUOT on Linux.
    matches!(e.raw_os_error(), Some(28 | 122))
}

/// Opens the store a URL names:
///
/// - `postgres://…` or `postgresql://…`: [`postgres::PgStore::connect`], with the URL as
///   sqlx reads it (`postgres://user:password@host:5432/warden`; a schema other than the
///   default with `?options=-c%20search_path%3Dname`).
/// - `sqlite://PATH`: [`sqlite::SqliteStore::open`] on the file `PATH`, created if missing;
///   `sqlite:///var/lib/warden/warden.db` is absolute, `sqlite://warden.db` relative to the
///   working directory. Nothing after the path is interpreted: no query parameters.
///
/// Any other scheme is a [`StoreError::Config`]. Error messages never repeat the URL, which
/// may carry a password.
pub async fn connect_url(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
        .filter(|s| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        });
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => {
            Ok(std::sync::Arc::new(postgres::PgStore::connect(url).await?))
        }
        Some("sqlite") => {
            let path = url.get("sqlite://".len()..).unwrap_or_default();
            if path.is_empty() {
                return Err(StoreError::Config(
                    "`sqlite://` needs a file path, as in `sqlite:///var/lib/warden/warden.db`"
                        .into(),
                ));
            }
            Ok(std::sync::Arc::new(
                sqlite::SqliteStore::open(std::path::Path::new(path)).await?,
            ))
        }
        Some(other) => Err(StoreError::Config(format!(
            "store URL scheme `{other}` is not supported: use `postgres://`, `postgresql://` or `sqlite://`"
        ))),
        None => Err(StoreError::Config(
            "store URL has no valid scheme: use `postgres://`, `postgresql://` or `sqlite://`".into(),
        )),
    }
}
