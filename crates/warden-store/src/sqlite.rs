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

use crate::{
    Activity, AssertionJti, DelegationGrant, GatewayKeyRecord, IdempotencyBegin, KeyState,
    NewRevocation, Principal, Result, Revocation, RevocationTarget, SigningKeyRecord, Store,
    StoreError, Tenant,
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

fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound("referenced tenant or owner")
        }
        _ => StoreError::Backend(e),
    }
}

fn expect_one(rows: u64, what: &'static str) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotFound(what))
    } else {
        Ok(())
    }
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

fn key_from_row(row: &SqliteRow) -> Result<SigningKeyRecord> {
    let state: &str = row.try_get("state")?;
    Ok(SigningKeyRecord {
        kid: row.try_get("kid")?,
        public_key: row.try_get("public_key")?,
        sealed_private: row.try_get("sealed_private")?,
        state: KeyState::parse(state).ok_or_else(|| corrupt(format!("key state `{state}`")))?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        publish_until: row.try_get("publish_until")?,
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

async fn insert_revocation(
    conn: &mut sqlx::SqliteConnection,
    event: &NewRevocation,
) -> Result<Revocation> {
    let (kind, target, user, agent) = event.target.to_columns();
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO revocations \
         (kind, target, grant_user, grant_agent, issued_before, horizon, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
    )
    .bind(kind)
    .bind(target)
    .bind(user)
    .bind(agent)
    .bind(event.issued_before)
    .bind(event.horizon)
    .bind(event.reason.as_deref())
    .bind(event.created_at)
    .fetch_one(conn)
    .await?;
    Ok(Revocation {
        seq,
        event: event.clone(),
    })
}

const GRANT_COLUMNS: &str =
    "id, tenant_id, user_id, agent_id, scopes, created_at, expires_at, revoked_at";

const PRINCIPAL_COLUMNS: &str = "id, tenant_id, kind, name, owner_id, scopes, audiences, \
     public_jwk, secret_hash, disabled, created_at, updated_at";

#[async_trait]
impl Store for SqliteStore {
    async fn create_tenant(&self, t: &Tenant) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenants (id, name, max_token_ttl_secs, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(t.id.as_str())
        .bind(&t.name)
        .bind(t.max_token_ttl_secs)
        .bind(t.disabled)
        .bind(t.created_at)
        .execute(&self.pool)
        .await
        .map_err(conflict("tenant"))?;
        Ok(())
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

    async fn set_tenant_disabled(&self, id: &TenantId, disabled: bool) -> Result<()> {
        let r = sqlx::query("UPDATE tenants SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        expect_one(r.rows_affected(), "tenant")
    }

    async fn set_tenant_max_token_ttl(&self, id: &TenantId, secs: i64) -> Result<()> {
        let r = sqlx::query("UPDATE tenants SET max_token_ttl_secs = $1 WHERE id = $2")
            .bind(secs)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        expect_one(r.rows_affected(), "tenant")
    }

    async fn create_principal(&self, p: &Principal) -> Result<()> {
        let audiences = serde_json::to_string(&p.audiences).map_err(corrupt)?;
        sqlx::query(&format!(
            "INSERT INTO principals ({PRINCIPAL_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(p.id.as_str())
        .bind(p.tenant.as_str())
        .bind(p.kind.as_str())
        .bind(&p.name)
        .bind(p.owner.as_ref().map(PrincipalId::as_str))
        .bind(p.scopes.to_string())
        .bind(audiences)
        .bind(p.public_jwk.as_deref())
        .bind(p.secret_hash.as_deref())
        .bind(p.disabled)
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&self.pool)
        .await
        .map_err(conflict("principal with that name in the tenant"))?;
        Ok(())
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

    async fn set_principal_disabled(
        &self,
        id: &PrincipalId,
        disabled: bool,
        now: i64,
    ) -> Result<()> {
        let r = sqlx::query("UPDATE principals SET disabled = $1, updated_at = $2 WHERE id = $3")
            .bind(disabled)
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        expect_one(r.rows_affected(), "principal")
    }

    async fn set_principal_scopes(
        &self,
        id: &PrincipalId,
        scopes: &ScopeSet,
        now: i64,
    ) -> Result<()> {
        let r = sqlx::query("UPDATE principals SET scopes = $1, updated_at = $2 WHERE id = $3")
            .bind(scopes.to_string())
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        expect_one(r.rows_affected(), "principal")
    }

    async fn set_principal_public_key(&self, id: &PrincipalId, jwk: &str, now: i64) -> Result<()> {
        let r = sqlx::query("UPDATE principals SET public_jwk = $1, updated_at = $2 WHERE id = $3")
            .bind(jwk)
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        expect_one(r.rows_affected(), "principal")
    }

    async fn set_principal_secret_hash(
        &self,
        id: &PrincipalId,
        hash: &str,
        now: i64,
    ) -> Result<()> {
        let r =
            sqlx::query("UPDATE principals SET secret_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash)
                .bind(now)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
        expect_one(r.rows_affected(), "principal")
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(key_from_row)
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

    async fn rotate_signing_keys(
        &self,
        new_next: &SigningKeyRecord,
        now: i64,
        publish_until: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let next =
            sqlx::query_scalar::<_, String>("SELECT kid FROM signing_keys WHERE state = 'next'")
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("next signing key"))?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', publish_until = $1 WHERE state = 'active'",
        )
        .bind(publish_until)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE kid = $2")
            .bind(now)
            .bind(&next)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, public_key, sealed_private, state, created_at) \
             VALUES ($1, $2, $3, 'next', $4)",
        )
        .bind(&new_next.kid)
        .bind(&new_next.public_key)
        .bind(&new_next.sealed_private)
        .bind(new_next.created_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict("signing key"))?;
        tx.commit().await?;
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

    async fn register_gateway_key(&self, key: &GatewayKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO gateway_keys (kid, public_key, gateway, registered_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kid) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE gateway_keys.public_key = excluded.public_key",
        )
        .bind(&key.kid)
        .bind(&key.public_key)
        .bind(&key.gateway)
        .bind(key.registered_at)
        .bind(key.expires_at)
        .execute(&self.pool)
        .await?;
        // A kid already bound to another key is not rebound: that would let one
        // registration take over another gateway's published identity.
        let stored: Option<String> =
            sqlx::query_scalar("SELECT public_key FROM gateway_keys WHERE kid = $1")
                .bind(&key.kid)
                .fetch_optional(&self.pool)
                .await?;
        match stored {
            Some(pk) if pk == key.public_key => Ok(()),
            _ => Err(StoreError::Conflict("gateway key id bound to another key")),
        }
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

    async fn idempotency_complete(&self, key: &str, status: u16, body: &str) -> Result<()> {
        let r = sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = $1, response = $2 WHERE key = $3",
        )
        .bind(i64::from(status))
        .bind(body)
        .bind(key)
        .execute(&self.pool)
        .await?;
        expect_one(r.rows_affected(), "idempotency key")
    }

    async fn idempotency_release(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND state = 'pending'")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn prune_idempotency(&self, created_before: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(created_before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn create_delegation_grant(&self, g: &DelegationGrant) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO delegation_grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&g.id)
        .bind(g.tenant.as_str())
        .bind(g.user.as_str())
        .bind(g.agent.as_str())
        .bind(g.scopes.to_string())
        .bind(g.created_at)
        .bind(g.expires_at)
        .bind(g.revoked_at)
        .execute(&self.pool)
        .await
        .map_err(conflict("live delegation grant for this user and agent"))?;
        Ok(())
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

    async fn revoke_delegation_grant(&self, id: &str, event: &NewRevocation) -> Result<Revocation> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let updated = sqlx::query(
            "UPDATE delegation_grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(event.created_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        expect_one(updated.rows_affected(), "live delegation grant")?;
        let appended = insert_revocation(&mut tx, event).await?;
        tx.commit().await?;
        self.revocations.send_replace(appended.seq);
        Ok(appended)
    }

    async fn append_revocation(&self, event: &NewRevocation) -> Result<Revocation> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let appended = insert_revocation(&mut tx, event).await?;
        tx.commit().await?;
        self.revocations.send_replace(appended.seq);
        Ok(appended)
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
