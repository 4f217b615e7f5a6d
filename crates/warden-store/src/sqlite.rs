//! The embedded store: SQLite in WAL mode.
//!
//! Lifecycle writes commit with `synchronous = FULL`, so an acknowledged change survives a
//! power cut. Client-assertion `jti`s go through a second pool with `synchronous = NORMAL`:
//! they survive a process crash, and a power cut can at worst forget the `jti`s of the last
//! moments, whose assertions expire within minutes anyway; that keeps issuance off the fsync
//! path.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use warden_core::{PrincipalId, PrincipalKind, ScopeSet, TenantId};

use crate::apply::{conflict, key_from_row, GRANT_COLUMNS, PRINCIPAL_COLUMNS, SIGNING_KEYS};
use crate::{
    apply, journal, Activity, Applied, AssertionJti, Change, ChangeRecord, DelegationGrant,
    GatewayKeyRecord, IdempotencyBegin, NewRevocation, OutboxEntry, Principal, Result, Revocation,
    RevocationTarget, SigningKeyRecord, Store, StoreError, Tenant,
};

/// Schema migrations in order; each runs once, in its own transaction.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_gateway_keys.sql")),
    (
        3,
        include_str!("../migrations/0003_delegation_revocation.sql"),
    ),
    (4, include_str!("../migrations/0004_activity.sql")),
    (5, include_str!("../migrations/0005_audit_outbox.sql")),
    (6, include_str!("../migrations/0006_tenant_revocation.sql")),
];

/// Rows per multi-row insert: three bound values each, well under SQLite's variable limit.
const JTI_BATCH_ROWS: usize = 500;

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
        migrate(&pool).await?;
        let jti_pool = SqlitePoolOptions::new()
            .max_connections(2)
            .min_connections(1)
            .connect_with(base.synchronous(SqliteSynchronous::Normal))
            .await?;
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM revocations")
            .fetch_one(&pool)
            .await?;
        let (revocations, _) = tokio::sync::watch::channel(head.unwrap_or(0));
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

async fn migrate(pool: &SqlitePool) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS warden_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    for (version, sql) in MIGRATIONS {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn tenant_from_row(row: &SqliteRow) -> Result<Tenant> {
    Ok(Tenant {
        id: TenantId::parse(row.try_get("id")?).map_err(corrupt)?,
        name: row.try_get("name")?,
        max_token_ttl_secs: row.try_get("max_token_ttl_secs")?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
    })
}

fn principal_from_row(row: &SqliteRow) -> Result<Principal> {
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

fn grant_from_row(row: &SqliteRow) -> Result<DelegationGrant> {
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

fn revocation_from_row(row: &SqliteRow) -> Result<Revocation> {
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
impl Store for SqliteStore {
    async fn apply(&self, change: Change<'_>, record: &ChangeRecord<'_>) -> Result<Applied> {
        // IMMEDIATE takes the write lock up front: a transaction that read first and wrote
        // later could find the lock taken and fail instead of waiting.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let applied = apply::make::<sqlx::Sqlite>(&mut tx, change).await?;
        journal::write::<sqlx::Sqlite>(&mut tx, record, &applied).await?;
        tx.commit().await?;
        if let Some(r) = &applied.revocation {
            self.revocations.send_replace(r.seq);
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
            .map(key_from_row::<sqlx::Sqlite>)
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
            sql.push_str(" ON CONFLICT (client_id, jti) DO NOTHING RETURNING client_id, jti");
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q.bind(&e.client_id).bind(&e.jti).bind(e.expires_at);
            }
            let inserted: HashSet<(String, String)> = q
                .fetch_all(&self.jti_pool)
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
            .execute(&self.jti_pool)
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
            let status: i64 = row.try_get("status")?;
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
        journal::complete::<sqlx::Sqlite>(&mut conn, key, reserved_at, status, body.to_owned())
            .await
    }

    async fn idempotency_release(&self, key: &str, reserved_at: i64) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        journal::release::<sqlx::Sqlite>(&mut conn, key, reserved_at).await
    }

    async fn audit_outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>> {
        let mut conn = self.pool.acquire().await?;
        journal::outbox_entry::<sqlx::Sqlite>(&mut conn, id).await
    }

    async fn claim_audit_outbox(
        &self,
        now: i64,
        hold_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        let mut conn = self.pool.acquire().await?;
        journal::claim_outbox::<sqlx::Sqlite>(&mut conn, now, hold_until, limit).await
    }

    async fn remove_audit_outbox(&self, id: &str) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        journal::remove_outbox::<sqlx::Sqlite>(&mut conn, id).await
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

    fn revocation_watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.revocations.subscribe()
    }

    async fn record_activity(&self, updates: &[Activity]) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for u in updates {
            sqlx::query(
                "INSERT INTO principal_activity (principal_id, last_issued_at, last_used_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (principal_id) DO UPDATE SET \
                 last_issued_at = MAX(COALESCE(principal_activity.last_issued_at, excluded.last_issued_at), COALESCE(excluded.last_issued_at, principal_activity.last_issued_at)), \
                 last_used_at = MAX(COALESCE(principal_activity.last_used_at, excluded.last_used_at), COALESCE(excluded.last_used_at, principal_activity.last_used_at))",
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
        .map(|r: &SqliteRow| {
            Ok(Activity {
                principal: PrincipalId::parse(r.try_get("principal_id")?).map_err(corrupt)?,
                last_issued_at: r.try_get("last_issued_at")?,
                last_used_at: r.try_get("last_used_at")?,
            })
        })
        .collect()
    }
}
