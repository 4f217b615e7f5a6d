//! The shared store: PostgreSQL, for several authority replicas on one database.
//!
//! Semantics are those of [`crate::sqlite::SqliteStore`], method for method; what differs is
//! how they are kept when several processes write at once:
//!
//! - Migrations run one per transaction under a transaction-scoped advisory lock, so replicas
//!   that start together apply each migration exactly once.
//! - Revocation appenders are serialized by another advisory lock, so `seq` order is commit
//!   order (see `REVOCATION_LOCK`).
//! - Every revocation sends `NOTIFY warden_revocations` in its own transaction; each store
//!   listens on that channel, so
//!   [`revocation_watch`](crate::RevocationStore::revocation_watch) wakes for appends made by
//!   any replica.
//!
//! Everything else (every statement, every row mapping) is shared with SQLite
//! (`crate::shared`, `crate::apply`, `crate::journal`). This module must not grow behaviour
//! of its own: anything a caller can observe through the [`Store`](crate::Store) traits has
//! to match SQLite, which the conformance suite checks.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::PgConnection;
use tokio::sync::watch;

use crate::sql::{self, newest_seq, Backend};
use crate::{apply, journal, Applied, Change, ChangeRecord, ChangeStore, Result};

/// Schema migrations in order; each runs once, in its own transaction. 0003 has a PostgreSQL
/// form because SQLite's `AUTOINCREMENT` is not PostgreSQL.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_gateway_keys.sql")),
    (
        3,
        include_str!("../migrations/postgres/0003_delegation_revocation.sql"),
    ),
    (4, include_str!("../migrations/0004_activity.sql")),
    (5, include_str!("../migrations/0005_audit_outbox.sql")),
    (
        6,
        include_str!("../migrations/postgres/0006_tenant_revocation.sql"),
    ),
    (7, include_str!("../migrations/0007_principal_revoked.sql")),
    (8, include_str!("../migrations/0008_gateway_key_owner.sql")),
    (9, include_str!("../migrations/0009_client_key_age.sql")),
    (10, include_str!("../migrations/0010_oauth_clients.sql")),
    (11, include_str!("../migrations/0011_code_flow.sql")),
    (12, include_str!("../migrations/0012_people.sql")),
];

/// The channel on which every revocation announces its `seq`, as text.
pub const REVOCATION_CHANNEL: &str = "warden_revocations";

/// Advisory lock keys ("warden" in ASCII, then a number). Transaction-scoped: PostgreSQL
/// releases them at commit or rollback, so a crashed holder never leaves one behind.
const MIGRATION_LOCK: i64 = 0x7761_7264_656e_0001;
/// Serializes revocation appenders. An identity column takes its value when the row is
/// inserted, not when the transaction commits: without this lock, appender A could draw
/// seq 10, appender B seq 11, B commit first, and a gateway reading `seq > 9` at that moment
/// would see 11, move its cursor there and never see 10. With the lock taken before the
/// insert and held until commit (PostgreSQL releases it only after the commit is visible),
/// the next appender draws its seq only once the previous one is visible, so seq order is
/// commit order. Appends are rare (an operator revoking something), so the queue is short.
const REVOCATION_LOCK: i64 = 0x7761_7264_656e_0002;
/// Serializes key rotations, as SQLite's `BEGIN IMMEDIATE` does: the reads of a rotation
/// must see the rotation committed just before it.
const SIGNING_KEY_LOCK: i64 = 0x7761_7264_656e_0003;

/// Connections per store; the notification listener has one more of its own.
const POOL_CONNECTIONS: u32 = 8;

/// Back-off between attempts to re-establish the notification listener.
const LISTEN_RETRY_MIN: Duration = Duration::from_millis(100);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(10);

pub struct PgStore {
    pool: PgPool,
    /// The newest `seq` known, from this store's own appends and from other replicas'
    /// notifications; only ever grows.
    revocations: Arc<watch::Sender<i64>>,
    /// Ends the notification listener when the store is dropped.
    _listener: AbortOnDrop,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, with any parameter
    /// sqlx accepts) and brings the schema up to date. A schema other than the default is
    /// chosen with `?options=-c%20search_path%3Dname` (or `?options[search_path]=name`);
    /// every connection, the listener's included, uses it.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// As [`Self::connect`], with options built in code.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .connect_with(options.clone())
            .await?;
        sql::migrate::<Self>(&pool, MIGRATIONS).await?;
        // The listener holds its connection for as long as the store lives, so it gets a pool
        // of its own rather than one of the store's connections; PgListener reconnects through
        // this pool.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with(options)
            .await?;
        // Listen first, then read the head: an append committed in between is both counted
        // in the head and announced, never neither.
        let listener = subscribe(&listen_pool).await?;
        let head = newest_seq(&pool).await?;
        let revocations = Arc::new(watch::channel(head).0);
        let task = tokio::spawn(follow_notifications(
            listener,
            listen_pool,
            pool.clone(),
            Arc::clone(&revocations),
        ));
        Ok(Self {
            pool,
            revocations,
            _listener: AbortOnDrop(task.abort_handle()),
        })
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Raises the watched head to `seq`; never lowers it. A notification for another replica's
/// seq 11 can arrive before this store publishes its own seq 10, and watchers must not see
/// the head go backwards.
fn publish(head: &watch::Sender<i64>, seq: i64) {
    head.send_if_modified(|newest| {
        if seq > *newest {
            *newest = seq;
            true
        } else {
            false
        }
    });
}

async fn subscribe(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(REVOCATION_CHANNEL).await?;
    Ok(listener)
}

/// Publishes the seqs that other replicas announce, until aborted. Notifications sent while
/// the connection is down are lost, so after every reconnection the head is read afresh.
/// Errors are retried with back-off, never returned: the task has nobody to return them to,
/// and a watcher that misses a wakeup still catches up at the next one.
async fn follow_notifications(
    listener: PgListener,
    listen_pool: PgPool,
    pool: PgPool,
    head: Arc<watch::Sender<i64>>,
) {
    let mut listener = Some(listener);
    let mut stale = false;
    let mut backoff = LISTEN_RETRY_MIN;
    loop {
        let Some(current) = listener.as_mut() else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(LISTEN_RETRY_MAX);
            if let Ok(fresh) = subscribe(&listen_pool).await {
                listener = Some(fresh);
                stale = true;
            }
            continue;
        };
        if stale {
            // Listening again before this read, so nothing falls between the two.
            match newest_seq(&pool).await {
                Ok(seq) => {
                    publish(&head, seq);
                    stale = false;
                    backoff = LISTEN_RETRY_MIN;
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(LISTEN_RETRY_MAX);
                    continue;
                }
            }
        }
        match current.try_recv().await {
            Ok(Some(notification)) => {
                // Only this store's statements notify on this channel; anything else is noise.
                if let Ok(seq) = notification.payload().parse::<i64>() {
                    publish(&head, seq);
                }
            }
            // The connection dropped; PgListener has reconnected and listens again.
            Ok(None) => stale = true,
            // Reconnecting failed, or the connection broke in a way PgListener does not
            // recover from (the server terminating it, say): start over with a new one.
            Err(_) => listener = None,
        }
    }
}

/// Takes a transaction-scoped advisory lock, waiting for its holder to commit.
async fn advisory_lock(conn: &mut PgConnection, key: i64) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl Backend for PgStore {
    type Db = sqlx::Postgres;

    const BEGIN_WRITE: Option<&'static str> = None;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// PostgreSQL writes `jti`s with the durability of everything else.
    fn jti_pool(&self) -> &PgPool {
        &self.pool
    }

    fn revocation_watch(&self) -> watch::Receiver<i64> {
        self.revocations.subscribe()
    }

    async fn lock_migrations(conn: &mut PgConnection) -> Result<()> {
        advisory_lock(conn, MIGRATION_LOCK).await
    }
}

#[async_trait]
impl ChangeStore for PgStore {
    async fn apply(&self, change: Change<'_>, record: &ChangeRecord<'_>) -> Result<Applied> {
        let mut tx = self.pool.begin().await?;
        // Taken first, before an insert draws its seq, and held until commit: see
        // REVOCATION_LOCK. Taken before anything else the change writes, so that every
        // appender takes its locks in the same order.
        if change.appends_revocation() {
            advisory_lock(&mut tx, REVOCATION_LOCK).await?;
        }
        // Under READ COMMITTED each statement of a rotation sees what committed before it
        // started; with the lock, that includes any rotation that ran concurrently, so two
        // replicas rotating at once do two rotations in turn rather than one garbled one.
        if matches!(change, Change::RotateSigningKeys { .. }) {
            advisory_lock(&mut tx, SIGNING_KEY_LOCK).await?;
        }
        let applied = apply::make::<sqlx::Postgres>(&mut tx, change).await?;
        if let Some(r) = &applied.revocation {
            // Delivered to every listener on the database when, and only if, this commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(r.seq.to_string())
                .execute(&mut *tx)
                .await?;
        }
        journal::write::<sqlx::Postgres>(&mut tx, record, &applied).await?;
        tx.commit().await?;
        if let Some(r) = &applied.revocation {
            // Local watchers need not wait for the notification's round trip.
            publish(&self.revocations, r.seq);
        }
        Ok(applied)
    }
}
