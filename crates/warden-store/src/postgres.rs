//! The shared store: PostgreSQL, for several authority replicas on one database.
//!
//! Semantics are those of [`crate::sqlite::SqliteStore`], method for method; what differs is
//! how they are kept when several processes write at once:
//!
//! - Migrations run one per transaction under a transaction-scoped advisory lock, so replicas
//!   that start together apply each migration exactly once.
//! - Revocation appenders are serialized by another advisory lock, so `seq` order is commit
//!   order (see [`REVOCATION_LOCK`]).
//! - Every revocation sends `NOTIFY warden_revocations` in its own transaction; each store
//!   listens on that channel, so [`Store::revocation_watch`] wakes for appends made by any
//!   replica.
//!
//! This module must not grow behaviour of its own: anything a caller can observe through the
//! [`Store`] trait has to match SQLite, which the conformance suite checks.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row};
use tokio::sync::watch;
use warden_core::{PrincipalId, PrincipalKind, ScopeSet, TenantId};

use crate::apply::{conflict, key_from_row, GRANT_COLUMNS, PRINCIPAL_COLUMNS, SIGNING_KEYS};
use crate::{
    apply, journal, Activity, Applied, AssertionJti, Change, ChangeRecord, DelegationGrant,
    GatewayKeyRecord, IdempotencyBegin, NewRevocation, OutboxEntry, Principal, Result, Revocation,
    RevocationTarget, SigningKeyRecord, Store, StoreError, Tenant,
};

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

/// Rows per multi-row insert: three bound values each, well under PostgreSQL's 65535.
const JTI_BATCH_ROWS: usize = 500;

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
        migrate(&pool).await?;
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

async fn newest_seq(pool: &PgPool) -> Result<i64> {
    let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM revocations")
        .fetch_one(pool)
        .await?;
    Ok(head.unwrap_or(0))
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

async fn migrate(pool: &PgPool) -> Result<()> {
    // Concurrent `CREATE TABLE IF NOT EXISTS` can still collide in PostgreSQL's catalog, so
    // even this runs under the lock.
    let mut tx = pool.begin().await?;
    lock_migrations(&mut tx).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS warden_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    for (version, sql) in MIGRATIONS {
        let mut tx = pool.begin().await?;
        // A replica that waited here sees the version the holder recorded, and skips it.
        lock_migrations(&mut tx).await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM warden_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_none() {
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO warden_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(unix_now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

async fn lock_migrations(conn: &mut PgConnection) -> Result<()> {
    advisory_lock(conn, MIGRATION_LOCK).await
}

/// Takes a transaction-scoped advisory lock, waiting for its holder to commit.
async fn advisory_lock(conn: &mut PgConnection, key: i64) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn tenant_from_row(row: &PgRow) -> Result<Tenant> {
    Ok(Tenant {
        id: TenantId::parse(row.try_get("id")?).map_err(corrupt)?,
        name: row.try_get("name")?,
        max_token_ttl_secs: row.try_get("max_token_ttl_secs")?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
    })
}

fn principal_from_row(row: &PgRow) -> Result<Principal> {
    let owner: Option<&str> = row.try_get("owner_id")?;
    let audiences: &str = row.try_get("audiences")?;
    Ok(Principal {
        id: PrincipalId::parse(row.try_get("id")?).map_err(corrupt)?,
        tenant: TenantId::parse(row.try_get("tenant_id")?).map_err(corrupt)?,
        kind: PrincipalKind::from_str(row.try_get("kind")?).map_err(corrupt)?,
        name: row.try_get("name")?,
        owner: owner.map(PrincipalId::parse).transpose().map_err(corrupt)?,
        scopes: ScopeSet::parse(row.try_get("scopes")?).map_err(corrupt)?,
        audiences: serde_json::from_str(audiences).map_err(corrupt)?,
        public_jwk: row.try_get("public_jwk")?,
        secret_hash: row.try_get("secret_hash")?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn grant_from_row(row: &PgRow) -> Result<DelegationGrant> {
    Ok(DelegationGrant {
        id: row.try_get("id")?,
        tenant: TenantId::parse(row.try_get("tenant_id")?).map_err(corrupt)?,
        user: PrincipalId::parse(row.try_get("user_id")?).map_err(corrupt)?,
        agent: PrincipalId::parse(row.try_get("agent_id")?).map_err(corrupt)?,
        scopes: ScopeSet::parse(row.try_get("scopes")?).map_err(corrupt)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn revocation_from_row(row: &PgRow) -> Result<Revocation> {
    Ok(Revocation {
        seq: row.try_get("seq")?,
        event: NewRevocation {
            target: RevocationTarget::from_columns(
                row.try_get("kind")?,
                row.try_get("target")?,
                row.try_get("grant_user")?,
                row.try_get("grant_agent")?,
            )
            .map_err(corrupt)?,
            issued_before: row.try_get("issued_before")?,
            horizon: row.try_get("horizon")?,
            reason: row.try_get("reason")?,
            created_at: row.try_get("created_at")?,
        },
    })
}

#[async_trait]
impl Store for PgStore {
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

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tenant_from_row)
            .transpose()
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        sqlx::query("SELECT * FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tenant_from_row)
            .transpose()
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        sqlx::query("SELECT * FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(tenant_from_row)
            .collect()
    }

    async fn principal(&self, id: &PrincipalId) -> Result<Option<Principal>> {
        sqlx::query(&format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(principal_from_row)
        .transpose()
    }

    async fn list_principals(&self, tenant: &TenantId) -> Result<Vec<Principal>> {
        sqlx::query(&format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(principal_from_row)
        .collect()
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        sqlx::query(SIGNING_KEYS)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(key_from_row::<sqlx::Postgres>)
            .collect()
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, public_key, sealed_private, state, created_at, activated_at, publish_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.kid)
        .bind(&k.public_key)
        .bind(&k.sealed_private)
        .bind(k.state.as_str())
        .bind(k.created_at)
        .bind(k.activated_at)
        .bind(k.publish_until)
        .execute(&self.pool)
        .await
        .map_err(conflict("signing key"))?;
        Ok(())
    }

    async fn prune_signing_keys(&self, now: i64) -> Result<u64> {
        let r =
            sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND publish_until < $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected())
    }

    async fn record_assertion_jtis(&self, entries: &[AssertionJti]) -> Result<Vec<bool>> {
        let mut fresh = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(JTI_BATCH_ROWS) {
            let mut sql = String::from(
                "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let n = i * 3;
                sql.push_str(&format!("(${}, ${}, ${})", n + 1, n + 2, n + 3));
            }
            // DO NOTHING (unlike DO UPDATE) accepts the same key twice in one statement: the
            // second occurrence is skipped, and RETURNING lists each inserted pair once.
            sql.push_str(" ON CONFLICT (client_id, jti) DO NOTHING RETURNING client_id, jti");
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q.bind(&e.client_id).bind(&e.jti).bind(e.expires_at);
            }
            let inserted: HashSet<(String, String)> = q
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("client_id")?, r.try_get("jti")?)))
                .collect::<Result<_>>()?;
            // A pair inserted by this statement is fresh for its first occurrence only.
            let mut claimed = HashSet::new();
            for e in chunk {
                let key = (e.client_id.clone(), e.jti.clone());
                fresh.push(inserted.contains(&key) && claimed.insert(key));
            }
        }
        Ok(fresh)
    }

    async fn prune_assertion_jtis(&self, now: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM client_assertion_jtis WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn gateway_keys(&self, now: i64) -> Result<Vec<GatewayKeyRecord>> {
        sqlx::query("SELECT * FROM gateway_keys WHERE expires_at >= $1 ORDER BY registered_at, kid")
            .bind(now)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(GatewayKeyRecord {
                    kid: r.try_get("kid")?,
                    public_key: r.try_get("public_key")?,
                    gateway: r.try_get("gateway")?,
                    registered_at: r.try_get("registered_at")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }

    async fn prune_gateway_keys(&self, now: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM gateway_keys WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn idempotency_begin(
        &self,
        key: &str,
        request_hash: &str,
        now: i64,
        abandon_after: i64,
    ) -> Result<IdempotencyBegin> {
        // Insert first, read second: each statement is atomic on its own, so concurrent
        // duplicates race on the primary key rather than on a read-then-write transaction.
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (key, request_hash, state, created_at) \
             VALUES ($1, $2, 'pending', $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(request_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(IdempotencyBegin::Started);
        }
        let row = sqlx::query(
            "SELECT request_hash, state, status, response, created_at FROM idempotency_keys WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        // Pruned between the two statements: the caller may simply retry.
        .ok_or(StoreError::Conflict("idempotency key"))?;
        let hash: String = row.try_get("request_hash")?;
        let state: String = row.try_get("state")?;
        let created_at: i64 = row.try_get("created_at")?;
        if hash != request_hash {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if state == "done" {
            // `status INTEGER` is 32 bits on PostgreSQL (SQLite's INTEGER is 64).
            let status: i32 = row.try_get("status")?;
            return Ok(IdempotencyBegin::Replay {
                status: u16::try_from(status).map_err(corrupt)?,
                body: row
                    .try_get::<Option<String>, _>("response")?
                    .unwrap_or_default(),
            });
        }
        if now - created_at <= abandon_after {
            return Ok(IdempotencyBegin::InFlight);
        }
        // The holder died mid-call; its change, if any, committed atomically or not at all,
        // so one caller may take the key over. The compare-and-set picks exactly one.
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET created_at = $1 \
             WHERE key = $2 AND state = 'pending' AND created_at = $3",
        )
        .bind(now)
        .bind(key)
        .bind(created_at)
        .execute(&self.pool)
        .await?;
        Ok(if taken.rows_affected() == 1 {
            IdempotencyBegin::Started
        } else {
            IdempotencyBegin::InFlight
        })
    }

    async fn idempotency_complete(
        &self,
        key: &str,
        reserved_at: i64,
        status: u16,
        body: &str,
    ) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        journal::complete::<sqlx::Postgres>(&mut conn, key, reserved_at, status, body.to_owned())
            .await
    }

    async fn idempotency_release(&self, key: &str, reserved_at: i64) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        journal::release::<sqlx::Postgres>(&mut conn, key, reserved_at).await
    }

    async fn audit_outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>> {
        let mut conn = self.pool.acquire().await?;
        journal::outbox_entry::<sqlx::Postgres>(&mut conn, id).await
    }

    async fn claim_audit_outbox(
        &self,
        now: i64,
        hold_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        let mut conn = self.pool.acquire().await?;
        journal::claim_outbox::<sqlx::Postgres>(&mut conn, now, hold_until, limit).await
    }

    async fn remove_audit_outbox(&self, id: &str) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        journal::remove_outbox::<sqlx::Postgres>(&mut conn, id).await
    }

    async fn prune_idempotency(&self, created_before: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(created_before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn delegation_grant(&self, id: &str) -> Result<Option<DelegationGrant>> {
        sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM delegation_grants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(grant_from_row)
        .transpose()
    }

    async fn live_delegation_grant(
        &self,
        user: &PrincipalId,
        agent: &PrincipalId,
        now: i64,
    ) -> Result<Option<DelegationGrant>> {
        sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM delegation_grants \
             WHERE user_id = $1 AND agent_id = $2 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $3)"
        ))
        .bind(user.as_str())
        .bind(agent.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(grant_from_row)
        .transpose()
    }

    async fn list_delegation_grants(&self, tenant: &TenantId) -> Result<Vec<DelegationGrant>> {
        sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM delegation_grants WHERE tenant_id = $1 \
             ORDER BY created_at, id"
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(grant_from_row)
        .collect()
    }

    async fn revocations_since(&self, cursor: i64, limit: u32) -> Result<Vec<Revocation>> {
        sqlx::query("SELECT * FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(cursor)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(revocation_from_row)
            .collect()
    }

    async fn prune_revocations(&self, now: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM revocations WHERE horizon < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    fn revocation_watch(&self) -> watch::Receiver<i64> {
        self.revocations.subscribe()
    }

    async fn record_activity(&self, updates: &[Activity]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for u in updates {
            sqlx::query(
                "INSERT INTO principal_activity (principal_id, last_issued_at, last_used_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (principal_id) DO UPDATE SET \
                 last_issued_at = GREATEST(principal_activity.last_issued_at, EXCLUDED.last_issued_at), \
                 last_used_at = GREATEST(principal_activity.last_used_at, EXCLUDED.last_used_at)",
            )
            .bind(u.principal.as_str())
            .bind(u.last_issued_at)
            .bind(u.last_used_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn activity(&self, tenant: &TenantId) -> Result<Vec<Activity>> {
        sqlx::query(
            "SELECT a.principal_id, a.last_issued_at, a.last_used_at FROM principal_activity a \
             JOIN principals p ON p.id = a.principal_id WHERE p.tenant_id = $1 \
             ORDER BY a.principal_id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r: &PgRow| {
            Ok(Activity {
                principal: PrincipalId::parse(r.try_get("principal_id")?).map_err(corrupt)?,
                last_issued_at: r.try_get("last_issued_at")?,
                last_used_at: r.try_get("last_used_at")?,
            })
        })
        .collect()
    }
}
