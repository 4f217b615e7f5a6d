//! The embedded store: SQLite in WAL mode.
//!
//! Lifecycle writes commit with `synchronous = FULL`, so an acknowledged change survives a
//! power cut. Client-assertion `jti`s go through a second pool with `synchronous = NORMAL`:
//! they survive a process crash, and a power cut can at worst forget the `jti`s of the last
//! moments, whose assertions expire within minutes anyway; that keeps issuance off the fsync
//! path.
//!
//! Everything but the connection, the write transaction and the revocation watch is shared
//! with PostgreSQL (`crate::shared`, `crate::apply`, `crate::journal`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::sql::{self, Backend};
use crate::{apply, journal, Applied, Change, ChangeRecord, ChangeStore, Result};

/// Schema migrations in order; each runs once, in its own transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_gateway_keys.sql")),
    (
        3,
        include_str!("../migrations/0003_delegation_revocation.sql"),
    ),
    (4, include_str!("../migrations/0004_activity.sql")),
    (5, include_str!("../migrations/0005_audit_outbox.sql")),
    (6, include_str!("../migrations/0006_tenant_revocation.sql")),
    (7, include_str!("../migrations/0007_principal_revoked.sql")),
    (8, include_str!("../migrations/0008_gateway_key_owner.sql")),
    (9, include_str!("../migrations/0009_client_key_age.sql")),
    (10, include_str!("../migrations/0010_oauth_clients.sql")),
    (11, include_str!("../migrations/0011_code_flow.sql")),
    (12, include_str!("../migrations/0012_people.sql")),
];

pub struct SqliteStore {
    pool: SqlitePool,
    jti_pool: SqlitePool,
    /// One process owns an embedded database, so its own appends are all there is to watch.
    revocations: tokio::sync::watch::Sender<i64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        Self::with_options(base).await
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> Result<Self> {
        // A named shared-cache memory database lets both pools see the same data.
        let name = format!(
            "file:warden-{}?mode=memory&cache=shared",
            std::process::id() as u64 * 1_000_000 + u64::from(next_memory_id())
        );
        let base = SqliteConnectOptions::from_str(&name)?
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        Self::with_options(base).await
    }

    async fn with_options(base: SqliteConnectOptions) -> Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(base.clone().synchronous(SqliteSynchronous::Full))
            .await?;
        sql::migrate::<Self>(&pool, MIGRATIONS).await?;
        let jti_pool = SqlitePoolOptions::new()
            .max_connections(2)
            .min_connections(1)
            .connect_with(base.synchronous(SqliteSynchronous::Normal))
            .await?;
        let (revocations, _) = tokio::sync::watch::channel(sql::newest_seq(&pool).await?);
        Ok(Self {
            pool,
            jti_pool,
            revocations,
        })
    }
}

fn next_memory_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Backend for SqliteStore {
    type Db = sqlx::Sqlite;

    // IMMEDIATE takes the write lock up front: a transaction that read first and wrote
    // later could find the lock taken and fail instead of waiting.
    const BEGIN_WRITE: Option<&'static str> = Some("BEGIN IMMEDIATE");

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn jti_pool(&self) -> &SqlitePool {
        &self.jti_pool
    }

    fn revocation_watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.revocations.subscribe()
    }
}

#[async_trait]
impl ChangeStore for SqliteStore {
    async fn apply(&self, change: Change<'_>, record: &ChangeRecord<'_>) -> Result<Applied> {
        let mut tx = sql::begin_write::<Self>(&self.pool).await?;
        let applied = apply::make::<sqlx::Sqlite>(&mut tx, change).await?;
        journal::write::<sqlx::Sqlite>(&mut tx, record, &applied).await?;
        tx.commit().await?;
        if let Some(r) = &applied.revocation {
            self.revocations.send_replace(r.seq);
        }
        Ok(applied)
    }
}
