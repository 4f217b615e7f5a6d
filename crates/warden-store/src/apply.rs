//! How each [`Change`] is made, in SQL that SQLite and PostgreSQL share, generic over the
//! sqlx database so that it is written once. A backend wraps [`make`] in its transaction
//! and adds what is its own: SQLite's `BEGIN IMMEDIATE`; PostgreSQL's advisory locks and the
//! revocation `NOTIFY`.
//!
//! Statements that must say whether they touched a row use `RETURNING` and look for the row,
//! since sqlx has no backend-neutral affected-row count.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::change::{Applied, Change};
use crate::model::{
    DelegationGrant, KeyState, NewRevocation, Principal, Revocation, SigningKeyRecord,
};
use crate::{Result, StoreError};

pub(crate) const GRANT_COLUMNS: &str =
    "id, tenant_id, user_id, agent_id, scopes, created_at, expires_at, revoked_at";

pub(crate) const PRINCIPAL_COLUMNS: &str = "id, tenant_id, kind, name, owner_id, scopes, \
     audiences, public_jwk, secret_hash, disabled, created_at, updated_at";

pub(crate) const SIGNING_KEYS: &str = "SELECT * FROM signing_keys ORDER BY created_at, kid";

/// Makes `change` on `conn`, inside the caller's transaction.
pub(crate) async fn make<DB>(conn: &mut DB::Connection, change: Change<'_>) -> Result<Applied>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> Option<i64>: Decode<'r, DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    let mut applied = Applied::default();
    match change {
        Change::CreateTenant(t) => {
            sqlx::query::<DB>(
                "INSERT INTO tenants (id, name, max_token_ttl_secs, disabled, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(t.id.as_str().to_owned())
            .bind(t.name.clone())
            .bind(t.max_token_ttl_secs)
            .bind(t.disabled)
            .bind(t.created_at)
            .execute(&mut *conn)
            .await
            .map_err(conflict("tenant"))?;
        }
        Change::SetTenantDisabled { id, disabled } => {
            let row =
                sqlx::query::<DB>("UPDATE tenants SET disabled = $1 WHERE id = $2 RETURNING id")
                    .bind(disabled)
                    .bind(id.as_str().to_owned())
                    .fetch_optional(&mut *conn)
                    .await?;
            found(row, "tenant")?;
        }
        Change::DisableTenant { id, event } => {
            let row =
                sqlx::query::<DB>("UPDATE tenants SET disabled = $1 WHERE id = $2 RETURNING id")
                    .bind(true)
                    .bind(id.as_str().to_owned())
                    .fetch_optional(&mut *conn)
                    .await?;
            found(row, "tenant")?;
            applied.revocation = Some(insert_revocation::<DB>(conn, event).await?);
        }
        Change::SetTenantMaxTokenTtl { id, secs } => {
            let row = sqlx::query::<DB>(
                "UPDATE tenants SET max_token_ttl_secs = $1 WHERE id = $2 RETURNING id",
            )
            .bind(secs)
            .bind(id.as_str().to_owned())
            .fetch_optional(&mut *conn)
            .await?;
            found(row, "tenant")?;
        }
        Change::CreatePrincipal(p) => insert_principal::<DB>(conn, p).await?,
        Change::CreateHoneytoken { principal, flag } => {
            insert_principal::<DB>(conn, principal).await?;
            applied.revocation = Some(insert_revocation::<DB>(conn, flag).await?);
        }
        Change::SetPrincipalDisabled { id, disabled, now } => {
            set_principal_disabled::<DB>(conn, id.as_str(), disabled, now).await?;
        }
        Change::DisablePrincipal { id, now, event } => {
            set_principal_disabled::<DB>(conn, id.as_str(), true, now).await?;
            applied.revocation = Some(insert_revocation::<DB>(conn, event).await?);
        }
        Change::SetPrincipalScopes { id, scopes, now } => {
            let row = sqlx::query::<DB>(
                "UPDATE principals SET scopes = $1, updated_at = $2 WHERE id = $3 RETURNING id",
            )
            .bind(scopes.to_string())
            .bind(now)
            .bind(id.as_str().to_owned())
            .fetch_optional(&mut *conn)
            .await?;
            found(row, "principal")?;
        }
        Change::SetPrincipalPublicKey { id, jwk, now } => {
            let row = sqlx::query::<DB>(
                "UPDATE principals SET public_jwk = $1, updated_at = $2 WHERE id = $3 RETURNING id",
            )
            .bind(jwk.to_owned())
            .bind(now)
            .bind(id.as_str().to_owned())
            .fetch_optional(&mut *conn)
            .await?;
            found(row, "principal")?;
        }
        Change::SetPrincipalSecretHash { id, hash, now } => {
            let row = sqlx::query::<DB>(
                "UPDATE principals SET secret_hash = $1, updated_at = $2 WHERE id = $3 RETURNING id",
            )
            .bind(hash.to_owned())
            .bind(now)
            .bind(id.as_str().to_owned())
            .fetch_optional(&mut *conn)
            .await?;
            found(row, "principal")?;
        }
        Change::RotateSigningKeys {
            new_next,
            now,
            publish_until,
        } => {
            let next: String =
                sqlx::query::<DB>("SELECT kid FROM signing_keys WHERE state = 'next'")
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or(StoreError::NotFound("next signing key"))?
                    .try_get("kid")?;
            sqlx::query::<DB>(
                "UPDATE signing_keys SET state = 'retired', publish_until = $1 \
                 WHERE state = 'active'",
            )
            .bind(publish_until)
            .execute(&mut *conn)
            .await?;
            sqlx::query::<DB>(
                "UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE kid = $2",
            )
            .bind(now)
            .bind(next)
            .execute(&mut *conn)
            .await?;
            sqlx::query::<DB>(
                "INSERT INTO signing_keys (kid, public_key, sealed_private, state, created_at) \
                 VALUES ($1, $2, $3, 'next', $4)",
            )
            .bind(new_next.kid.clone())
            .bind(new_next.public_key.clone())
            .bind(new_next.sealed_private.clone())
            .bind(new_next.created_at)
            .execute(&mut *conn)
            .await
            .map_err(conflict("signing key"))?;
            applied.signing_keys = sqlx::query::<DB>(SIGNING_KEYS)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(key_from_row::<DB>)
                .collect::<Result<_>>()?;
        }
        Change::RegisterGatewayKey(key) => {
            sqlx::query::<DB>(
                "INSERT INTO gateway_keys (kid, public_key, gateway, registered_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (kid) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE gateway_keys.public_key = excluded.public_key",
            )
            .bind(key.kid.clone())
            .bind(key.public_key.clone())
            .bind(key.gateway.clone())
            .bind(key.registered_at)
            .bind(key.expires_at)
            .execute(&mut *conn)
            .await?;
            // A kid already bound to another key is not rebound: that would let one
            // registration take over another gateway's published identity.
            let stored: Option<String> =
                sqlx::query::<DB>("SELECT public_key FROM gateway_keys WHERE kid = $1")
                    .bind(key.kid.clone())
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|row| row.try_get("public_key"))
                    .transpose()?;
            if stored.as_deref() != Some(key.public_key.as_str()) {
                return Err(StoreError::Conflict("gateway key id bound to another key"));
            }
        }
        Change::CreateDelegationGrant { grant, supersede } => {
            if let Some(old) = supersede {
                // Retired concurrently by another call: nothing to append, the pair is free.
                if revoke_grant::<DB>(conn, old.grant, old.event.created_at).await? {
                    applied.revocation = Some(insert_revocation::<DB>(conn, old.event).await?);
                }
            }
            insert_grant::<DB>(conn, grant).await?;
        }
        Change::RevokeDelegationGrant { id, event } => {
            if !revoke_grant::<DB>(conn, id, event.created_at).await? {
                return Err(StoreError::NotFound("live delegation grant"));
            }
            applied.revocation = Some(insert_revocation::<DB>(conn, event).await?);
        }
        Change::AppendRevocation(event) => {
            applied.revocation = Some(insert_revocation::<DB>(conn, event).await?);
        }
    }
    Ok(applied)
}

async fn insert_principal<DB>(conn: &mut DB::Connection, p: &Principal) -> Result<()>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
{
    let audiences =
        serde_json::to_string(&p.audiences).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query::<DB>(&format!(
        "INSERT INTO principals ({PRINCIPAL_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(p.id.as_str().to_owned())
    .bind(p.tenant.as_str().to_owned())
    .bind(p.kind.as_str().to_owned())
    .bind(p.name.clone())
    .bind(p.owner.as_ref().map(|o| o.as_str().to_owned()))
    .bind(p.scopes.to_string())
    .bind(audiences)
    .bind(p.public_jwk.clone())
    .bind(p.secret_hash.clone())
    .bind(p.disabled)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut *conn)
    .await
    .map_err(conflict("principal with that name in the tenant"))?;
    Ok(())
}

async fn set_principal_disabled<DB>(
    conn: &mut DB::Connection,
    id: &str,
    disabled: bool,
    now: i64,
) -> Result<()>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
{
    let row = sqlx::query::<DB>(
        "UPDATE principals SET disabled = $1, updated_at = $2 WHERE id = $3 RETURNING id",
    )
    .bind(disabled)
    .bind(now)
    .bind(id.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    found(row, "principal")
}

async fn insert_grant<DB>(conn: &mut DB::Connection, g: &DelegationGrant) -> Result<()>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
{
    sqlx::query::<DB>(&format!(
        "INSERT INTO delegation_grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(g.id.clone())
    .bind(g.tenant.as_str().to_owned())
    .bind(g.user.as_str().to_owned())
    .bind(g.agent.as_str().to_owned())
    .bind(g.scopes.to_string())
    .bind(g.created_at)
    .bind(g.expires_at)
    .bind(g.revoked_at)
    .execute(&mut *conn)
    .await
    .map_err(conflict("live delegation grant for this user and agent"))?;
    Ok(())
}

/// Marks the grant revoked at `at`; false when it is not there or revoked already.
async fn revoke_grant<DB>(conn: &mut DB::Connection, id: &str, at: i64) -> Result<bool>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let row = sqlx::query::<DB>(
        "UPDATE delegation_grants SET revoked_at = $1 \
         WHERE id = $2 AND revoked_at IS NULL RETURNING id",
    )
    .bind(at)
    .bind(id.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

async fn insert_revocation<DB>(
    conn: &mut DB::Connection,
    event: &NewRevocation,
) -> Result<Revocation>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    let (kind, target, user, agent) = event.target.to_columns();
    let seq: i64 = sqlx::query::<DB>(
        "INSERT INTO revocations \
         (kind, target, grant_user, grant_agent, issued_before, horizon, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
    )
    .bind(kind.to_owned())
    .bind(target.to_owned())
    .bind(user.map(str::to_owned))
    .bind(agent.map(str::to_owned))
    .bind(event.issued_before)
    .bind(event.horizon)
    .bind(event.reason.clone())
    .bind(event.created_at)
    .fetch_one(&mut *conn)
    .await?
    .try_get("seq")?;
    Ok(Revocation {
        seq,
        event: event.clone(),
    })
}

pub(crate) fn key_from_row<DB>(row: &DB::Row) -> Result<SigningKeyRecord>
where
    DB: Database,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Decode<'r, DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    let state: String = row.try_get("state")?;
    Ok(SigningKeyRecord {
        kid: row.try_get("kid")?,
        public_key: row.try_get("public_key")?,
        sealed_private: row.try_get("sealed_private")?,
        state: KeyState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("key state `{state}`")))?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        publish_until: row.try_get("publish_until")?,
    })
}

fn found<R>(row: Option<R>, what: &'static str) -> Result<()> {
    row.map(drop).ok_or(StoreError::NotFound(what))
}

pub(crate) fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound("referenced tenant or owner")
        }
        _ => StoreError::Backend(e),
    }
}
