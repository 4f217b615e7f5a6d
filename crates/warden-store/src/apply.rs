//! How each [`Change`] is made, in SQL that SQLite and PostgreSQL share, generic over
//! [`SqlDb`] so that it is written once. A backend wraps [`make`] in its transaction and adds
//! what is its own: SQLite's `BEGIN IMMEDIATE`; PostgreSQL's advisory locks and the
//! revocation `NOTIFY`.
//!
//! Statements that must say whether they touched a row use `RETURNING` and look for the row,
//! since sqlx has no backend-neutral affected-row count.

use warden_core::PrincipalId;

use crate::change::{Applied, Change};
use crate::model::{DelegationGrant, NewRevocation, Principal, Revocation};
use crate::shared::{key_from_row, GRANT_COLUMNS, PRINCIPAL_COLUMNS, SIGNING_KEYS};
use crate::sql::{Arg, SqlDb};
use crate::{Result, StoreError};

/// Makes `change` on `conn`, inside the caller's transaction.
pub(crate) async fn make<DB: SqlDb>(
    conn: &mut DB::Connection,
    change: Change<'_>,
) -> Result<Applied> {
    let mut applied = Applied::default();
    match change {
        Change::CreateTenant(t) => {
            let args = [
                Arg::Text(t.id.as_str()),
                Arg::Text(&t.name),
                Arg::Int(t.max_token_ttl_secs),
                Arg::Bool(t.disabled),
                Arg::Int(t.created_at),
                Arg::OptInt(t.max_client_key_age_secs),
            ];
            DB::execute(
                conn,
                "INSERT INTO tenants \
                 (id, name, max_token_ttl_secs, disabled, created_at, max_client_key_age_secs) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &args,
            )
            .await
            .map_err(conflict("tenant"))?;
        }
        Change::SetTenantMaxClientKeyAge { id, secs } => {
            let sql = "UPDATE tenants SET max_client_key_age_secs = $1 WHERE id = $2 RETURNING id";
            let args = [Arg::OptInt(secs), Arg::Text(id.as_str())];
            found(DB::fetch_optional(conn, sql, &args).await?, "tenant")?;
        }
        Change::SetTenantDisabled { id, disabled } => {
            set_tenant_disabled::<DB>(conn, id.as_str(), disabled).await?;
        }
        Change::DisableTenant { id, event } => {
            set_tenant_disabled::<DB>(conn, id.as_str(), true).await?;
            applied.revocation = Some(insert_revocation::<DB>(conn, event).await?);
        }
        Change::SetTenantMaxTokenTtl { id, secs } => {
            let row = DB::fetch_optional(
                conn,
                "UPDATE tenants SET max_token_ttl_secs = $1 WHERE id = $2 RETURNING id",
                &[Arg::Int(secs), Arg::Text(id.as_str())],
            )
            .await?;
            found(row, "tenant")?;
        }
        Change::CreatePrincipal(p) => insert_principal::<DB>(conn, p).await?,
        Change::CreateHoneytoken { principal, flag } => {
            insert_principal::<DB>(conn, principal).await?;
            applied.revocation = Some(insert_revocation::<DB>(conn, flag).await?);
        }
        Change::SetPrincipalDisabled { id, disabled, now } => {
            let set = "disabled = $1";
            update_principal::<DB>(conn, id.as_str(), set, Arg::Bool(disabled), now).await?;
        }
        Change::DisablePrincipal { id, now, event } => {
            let set = "disabled = $1";
            update_principal::<DB>(conn, id.as_str(), set, Arg::Bool(true), now).await?;
            applied.revocation = Some(insert_revocation::<DB>(conn, event).await?);
        }
        Change::RevokePrincipal {
            id,
            now,
            reason,
            event,
        } => {
            let sql =
                "UPDATE principals SET revoked_at = $1, revoked_reason = $2, updated_at = $1 \
                       WHERE id = $3 RETURNING id";
            let args = [Arg::Int(now), Arg::OptText(reason), Arg::Text(id.as_str())];
            found(DB::fetch_optional(conn, sql, &args).await?, "principal")?;
            applied.revocation = Some(insert_revocation::<DB>(conn, event).await?);
        }
        Change::ReinstatePrincipal { id, jwk, now } => {
            let sql = "UPDATE principals SET revoked_at = NULL, revoked_reason = NULL, \
                       public_jwk = COALESCE($1, public_jwk), updated_at = $2, \
                       key_registered_at = COALESCE($4, key_registered_at) \
                       WHERE id = $3 RETURNING id";
            let args = [
                Arg::OptText(jwk),
                Arg::Int(now),
                Arg::Text(id.as_str()),
                Arg::OptInt(jwk.map(|_| now)),
            ];
            found(DB::fetch_optional(conn, sql, &args).await?, "principal")?;
        }
        Change::SetPrincipalScopes { id, scopes, now } => {
            let scopes = scopes.to_string();
            let value = Arg::Text(&scopes);
            update_principal::<DB>(conn, id.as_str(), "scopes = $1", value, now).await?;
        }
        Change::SetPrincipalPublicKey { id, jwk, now } => {
            let value = Arg::Text(jwk);
            // `$2` is the change's `now`, as `updated_at` is.
            let set = "public_jwk = $1, key_registered_at = $2";
            update_principal::<DB>(conn, id.as_str(), set, value, now).await?;
        }
        Change::SetPrincipalSecretHash { id, hash, now } => {
            let value = Arg::Text(hash);
            update_principal::<DB>(conn, id.as_str(), "secret_hash = $1", value, now).await?;
        }
        Change::UpgradePrincipalSecretHash { id, from, to } => {
            DB::execute(
                conn,
                "UPDATE principals SET secret_hash = $1 WHERE id = $2 AND secret_hash = $3",
                &[Arg::Text(to), Arg::Text(id.as_str()), Arg::Text(from)],
            )
            .await?;
        }
        Change::RotateSigningKeys {
            new_next,
            now,
            publish_until,
            next_created_by,
        } => {
            let next = DB::fetch_optional(
                conn,
                "SELECT kid, created_at FROM signing_keys WHERE state = 'next'",
                &[],
            )
            .await?
            .ok_or(StoreError::NotFound("next signing key"))?;
            if next_created_by
                .is_some_and(|by| DB::int(&next, "created_at").is_ok_and(|at| at > by))
            {
                return Err(StoreError::Conflict(
                    "next signing key published too recently",
                ));
            }
            let next = DB::text(&next, "kid")?;
            DB::execute(
                conn,
                "UPDATE signing_keys SET state = 'retired', publish_until = $1 \
                 WHERE state = 'active'",
                &[Arg::Int(publish_until)],
            )
            .await?;
            DB::execute(
                conn,
                "UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE kid = $2",
                &[Arg::Int(now), Arg::Text(&next)],
            )
            .await?;
            let args = [
                Arg::Text(&new_next.kid),
                Arg::Text(&new_next.public_key),
                Arg::Text(&new_next.sealed_private),
                Arg::Int(new_next.created_at),
            ];
            DB::execute(
                conn,
                "INSERT INTO signing_keys (kid, public_key, sealed_private, state, created_at) \
                 VALUES ($1, $2, $3, 'next', $4)",
                &args,
            )
            .await
            .map_err(conflict("signing key"))?;
            applied.signing_keys = DB::fetch_all(conn, SIGNING_KEYS, &[])
                .await?
                .iter()
                .map(key_from_row::<DB>)
                .collect::<Result<_>>()?;
        }
        Change::RegisterGatewayKey(key) => {
            let args = [
                Arg::Text(&key.kid),
                Arg::Text(&key.public_key),
                Arg::Text(&key.gateway),
                Arg::Int(key.registered_at),
                Arg::Int(key.expires_at),
                Arg::OptText(key.principal.as_ref().map(PrincipalId::as_str)),
            ];
            // A renewal extends only the same key of the same owner; a `kid` already taken
            // stays as it was (the caller sees no row changed).
            DB::execute(
                conn,
                "INSERT INTO gateway_keys \
                 (kid, public_key, gateway, registered_at, expires_at, principal_id) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (kid) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE gateway_keys.public_key = excluded.public_key \
                 AND COALESCE(gateway_keys.principal_id, '') = COALESCE(excluded.principal_id, '')",
                &args,
            )
            .await?;
            // A kid already bound to another key is not rebound: that would let one
            // registration take over another gateway's published identity.
            let stored = DB::fetch_optional(
                conn,
                "SELECT public_key, principal_id FROM gateway_keys WHERE kid = $1",
                &[Arg::Text(&key.kid)],
            )
            .await?
            .map(|row| {
                Ok::<_, sqlx::Error>((
                    DB::text(&row, "public_key")?,
                    DB::opt_text(&row, "principal_id")?,
                ))
            })
            .transpose()?;
            let mine = (
                key.public_key.clone(),
                key.principal.as_ref().map(|p| p.as_str().to_owned()),
            );
            if stored.as_ref() != Some(&mine) {
                return Err(StoreError::Conflict(
                    "gateway key id bound to another key or owner",
                ));
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
        Change::CreateOAuthClient(c) => {
            let uris: Vec<&str> = c.redirect_uris.iter().map(|u| u.as_str()).collect();
            let uris =
                serde_json::to_string(&uris).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let args = [
                Arg::Text(c.id.as_str()),
                Arg::Text(c.tenant.as_str()),
                Arg::Text(&c.name),
                Arg::Text(&uris),
                Arg::Bool(c.public),
                Arg::OptText(c.secret_hash.as_deref()),
                Arg::Int(c.created_at),
            ];
            DB::execute(
                conn,
                "INSERT INTO oauth_clients \
                 (id, tenant_id, name, redirect_uris, public, secret_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &args,
            )
            .await
            .map_err(conflict("client"))?;
        }
        Change::CreateInvite { user, invite } => {
            insert_principal::<DB>(conn, user).await?;
            let args = [
                Arg::Text(&invite.digest),
                Arg::Text(invite.user.as_str()),
                Arg::Int(invite.created_at),
                Arg::Int(invite.expires_at),
                Arg::OptInt(invite.used_at),
                Arg::OptText(invite.totp_pending.as_deref()),
            ];
            DB::execute(
                conn,
                "INSERT INTO invites (digest, user_id, created_at, expires_at, used_at, totp_pending) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &args,
            )
            .await
            .map_err(conflict("invite"))?;
        }
        Change::CompleteEnrollment { invite, totp, now } => {
            let sql = "UPDATE invites SET used_at = $1 \
                 WHERE digest = $2 AND used_at IS NULL AND expires_at >= $1 RETURNING digest";
            let row = DB::fetch_optional(conn, sql, &[Arg::Int(now), Arg::Text(invite)]).await?;
            found(row, "invite")?;
            let args = [
                Arg::Text(totp.user.as_str()),
                Arg::Text(&totp.sealed),
                Arg::Int(totp.created_at),
                Arg::Int(totp.last_step),
            ];
            DB::execute(
                conn,
                "INSERT INTO user_totp (user_id, sealed, created_at, last_step) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO UPDATE SET \
                 sealed = excluded.sealed, created_at = excluded.created_at, \
                 last_step = excluded.last_step",
                &args,
            )
            .await?;
        }
        Change::DeleteOAuthClient(id) => {
            let sql = "DELETE FROM oauth_clients WHERE id = $1 RETURNING id";
            let row = DB::fetch_optional(conn, sql, &[Arg::Text(id.as_str())]).await?;
            found(row, "client")?;
        }
    }
    Ok(applied)
}

async fn set_tenant_disabled<DB: SqlDb>(
    conn: &mut DB::Connection,
    id: &str,
    disabled: bool,
) -> Result<()> {
    let row = DB::fetch_optional(
        conn,
        "UPDATE tenants SET disabled = $1 WHERE id = $2 RETURNING id",
        &[Arg::Bool(disabled), Arg::Text(id)],
    )
    .await?;
    found(row, "tenant")
}

async fn insert_principal<DB: SqlDb>(conn: &mut DB::Connection, p: &Principal) -> Result<()> {
    let audiences =
        serde_json::to_string(&p.audiences).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let scopes = p.scopes.to_string();
    let args = [
        Arg::Text(p.id.as_str()),
        Arg::Text(p.tenant.as_str()),
        Arg::Text(p.kind.as_str()),
        Arg::Text(&p.name),
        Arg::OptText(p.owner.as_ref().map(|o| o.as_str())),
        Arg::Text(&scopes),
        Arg::Text(&audiences),
        Arg::OptText(p.public_jwk.as_deref()),
        Arg::OptText(p.secret_hash.as_deref()),
        Arg::Bool(p.disabled),
        Arg::Int(p.created_at),
        Arg::Int(p.updated_at),
        Arg::OptInt(p.revoked.as_ref().map(|r| r.at)),
        Arg::OptText(p.revoked.as_ref().and_then(|r| r.reason.as_deref())),
        Arg::OptInt(p.key_registered_at),
    ];
    let sql = format!(
        "INSERT INTO principals ({PRINCIPAL_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    );
    DB::execute(conn, &sql, &args)
        .await
        .map_err(conflict("principal with that name in the tenant"))?;
    Ok(())
}

/// Sets one column of a principal (`set` names it, as `column = $1`) and its `updated_at`.
async fn update_principal<DB: SqlDb>(
    conn: &mut DB::Connection,
    id: &str,
    set: &str,
    value: Arg<'_>,
    now: i64,
) -> Result<()> {
    let sql = format!("UPDATE principals SET {set}, updated_at = $2 WHERE id = $3 RETURNING id");
    let row = DB::fetch_optional(conn, &sql, &[value, Arg::Int(now), Arg::Text(id)]).await?;
    found(row, "principal")
}

async fn insert_grant<DB: SqlDb>(conn: &mut DB::Connection, g: &DelegationGrant) -> Result<()> {
    let scopes = g.scopes.to_string();
    let args = [
        Arg::Text(&g.id),
        Arg::Text(g.tenant.as_str()),
        Arg::Text(g.user.as_str()),
        Arg::Text(g.agent.as_str()),
        Arg::Text(&scopes),
        Arg::Int(g.created_at),
        Arg::OptInt(g.expires_at),
        Arg::OptInt(g.revoked_at),
    ];
    let sql = format!(
        "INSERT INTO delegation_grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    );
    DB::execute(conn, &sql, &args)
        .await
        .map_err(conflict("live delegation grant for this user and agent"))?;
    Ok(())
}

/// Marks the grant revoked at `at`; false when it is not there or revoked already.
async fn revoke_grant<DB: SqlDb>(conn: &mut DB::Connection, id: &str, at: i64) -> Result<bool> {
    let row = DB::fetch_optional(
        conn,
        "UPDATE delegation_grants SET revoked_at = $1 \
         WHERE id = $2 AND revoked_at IS NULL RETURNING id",
        &[Arg::Int(at), Arg::Text(id)],
    )
    .await?;
    Ok(row.is_some())
}

async fn insert_revocation<DB: SqlDb>(
    conn: &mut DB::Connection,
    event: &NewRevocation,
) -> Result<Revocation> {
    let (kind, target, user, agent) = event.target.to_columns();
    let args = [
        Arg::Text(kind),
        Arg::Text(target),
        Arg::OptText(user),
        Arg::OptText(agent),
        Arg::Int(event.issued_before),
        Arg::Int(event.horizon),
        Arg::OptText(event.reason.as_deref()),
        Arg::Int(event.created_at),
    ];
    let row = DB::fetch_one(
        conn,
        "INSERT INTO revocations \
         (kind, target, grant_user, grant_agent, issued_before, horizon, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
        &args,
    )
    .await?;
    Ok(Revocation {
        seq: DB::int(&row, "seq")?,
        event: event.clone(),
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
