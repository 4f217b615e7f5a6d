//! Every area of the store but [`ChangeStore::apply`](crate::ChangeStore::apply), written
//! once for both backends: each area trait is implemented for every [`Backend`], with its
//! SQL in the dialect SQLite and PostgreSQL share and one row mapping per record, generic
//! over [`SqlDb`]. What a backend does its own way (its pools, its write transaction, its
//! revocation watch) it says through [`Backend`]; this module must not ask which backend it
//! runs on.

use std::collections::HashSet;
use std::str::FromStr;

use async_trait::async_trait;
use warden_core::{ClientId, PrincipalId, PrincipalKind, RedirectUri, ScopeSet, TenantId};

use crate::change::OutboxEntry;
use crate::model::{
    Activity, AssertionJti, DelegationGrant, GatewayKeyRecord, Invite, KeyState, NewRevocation,
    OAuthClient, Principal, RefreshFamily, Revocation, RevocationTarget, Revoked, Session,
    SigningKeyRecord, StoredCode, Tenant, TotpCredential,
};
use crate::sql::{begin_write, conn, corrupt, Arg, Backend, SqlDb};
use crate::store::{
    ActivityStore, AssertionJtiStore, CodeFlowStore, DelegationStore, GatewayKeyStore,
    IdempotencyBegin, IdempotencyStore, OAuthClientStore, OutboxStore, PeopleStore,
    RevocationStore, SigningKeyStore, TenantStore,
};
use crate::{apply, journal, Result, StoreError};

pub(crate) const GRANT_COLUMNS: &str =
    "id, tenant_id, user_id, agent_id, scopes, created_at, expires_at, revoked_at";

pub(crate) const PRINCIPAL_COLUMNS: &str = "id, tenant_id, kind, name, owner_id, scopes, \
     audiences, public_jwk, secret_hash, disabled, created_at, updated_at, revoked_at, \
     revoked_reason, key_registered_at";

pub(crate) const SIGNING_KEYS: &str = "SELECT * FROM signing_keys ORDER BY created_at, kid";

/// Rows per multi-row insert: three bound values each, well under SQLite's variable limit
/// and PostgreSQL's 65535.
const JTI_BATCH_ROWS: usize = 500;

/// Merges one principal's activity; each time only moves forward, and a time not given
/// (NULL) leaves the stored one. Spelled without `GREATEST` (PostgreSQL) or two-argument
/// `MAX` (SQLite), which each treat NULL their own way.
const MERGE_ACTIVITY: &str = "INSERT INTO principal_activity \
     (principal_id, last_issued_at, last_used_at) VALUES ($1, $2, $3) \
     ON CONFLICT (principal_id) DO UPDATE SET \
     last_issued_at = CASE WHEN principal_activity.last_issued_at IS NULL \
     OR excluded.last_issued_at > principal_activity.last_issued_at \
     THEN excluded.last_issued_at ELSE principal_activity.last_issued_at END, \
     last_used_at = CASE WHEN principal_activity.last_used_at IS NULL \
     OR excluded.last_used_at > principal_activity.last_used_at \
     THEN excluded.last_used_at ELSE principal_activity.last_used_at END";

#[async_trait]
impl<B: Backend> TenantStore for B {
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        let sql = "SELECT * FROM tenants WHERE id = $1";
        let args = [Arg::Text(id.as_str())];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &args).await?;
        row.as_ref().map(tenant_from_row::<B::Db>).transpose()
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let sql = "SELECT * FROM tenants WHERE name = $1";
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &[Arg::Text(name)]).await?;
        row.as_ref().map(tenant_from_row::<B::Db>).transpose()
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let sql = "SELECT * FROM tenants ORDER BY created_at, id";
        let rows = B::Db::fetch_all(&mut *conn(self).await?, sql, &[]).await?;
        rows.iter().map(tenant_from_row::<B::Db>).collect()
    }

    async fn principal(&self, id: &PrincipalId) -> Result<Option<Principal>> {
        let sql = format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = $1");
        let args = [Arg::Text(id.as_str())];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, &sql, &args).await?;
        row.as_ref().map(principal_from_row::<B::Db>).transpose()
    }

    async fn principal_by_name(&self, tenant: &TenantId, name: &str) -> Result<Option<Principal>> {
        let sql = format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE tenant_id = $1 AND name = $2"
        );
        let args = [Arg::Text(tenant.as_str()), Arg::Text(name)];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, &sql, &args).await?;
        row.as_ref().map(principal_from_row::<B::Db>).transpose()
    }

    async fn list_principals(&self, tenant: &TenantId) -> Result<Vec<Principal>> {
        let sql = format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE tenant_id = $1 \
             ORDER BY created_at, id"
        );
        let args = [Arg::Text(tenant.as_str())];
        let rows = B::Db::fetch_all(&mut *conn(self).await?, &sql, &args).await?;
        rows.iter().map(principal_from_row::<B::Db>).collect()
    }
}

#[async_trait]
impl<B: Backend> OAuthClientStore for B {
    async fn oauth_client(&self, id: &ClientId) -> Result<Option<OAuthClient>> {
        let sql = "SELECT * FROM oauth_clients WHERE id = $1";
        let args = [Arg::Text(id.as_str())];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &args).await?;
        row.as_ref().map(oauth_client_from_row::<B::Db>).transpose()
    }

    async fn list_oauth_clients(&self, tenant: &TenantId) -> Result<Vec<OAuthClient>> {
        let sql = "SELECT * FROM oauth_clients WHERE tenant_id = $1 ORDER BY created_at, id";
        let args = [Arg::Text(tenant.as_str())];
        let rows = B::Db::fetch_all(&mut *conn(self).await?, sql, &args).await?;
        rows.iter().map(oauth_client_from_row::<B::Db>).collect()
    }
}

#[async_trait]
impl<B: Backend> PeopleStore for B {
    async fn invite(&self, digest: &str) -> Result<Option<Invite>> {
        let sql = "SELECT * FROM invites WHERE digest = $1";
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &[Arg::Text(digest)]).await?;
        row.as_ref().map(invite_from_row::<B::Db>).transpose()
    }

    async fn pend_invite_totp(&self, digest: &str, sealed: &str) -> Result<Option<Invite>> {
        let mut c = conn(self).await?;
        let sql = "UPDATE invites SET totp_pending = $1 \
             WHERE digest = $2 AND totp_pending IS NULL RETURNING digest";
        B::Db::fetch_optional(&mut c, sql, &[Arg::Text(sealed), Arg::Text(digest)]).await?;
        let sql = "SELECT * FROM invites WHERE digest = $1";
        let row = B::Db::fetch_optional(&mut c, sql, &[Arg::Text(digest)]).await?;
        row.as_ref().map(invite_from_row::<B::Db>).transpose()
    }

    async fn totp(&self, user: &PrincipalId) -> Result<Option<TotpCredential>> {
        let sql = "SELECT * FROM user_totp WHERE user_id = $1";
        let args = [Arg::Text(user.as_str())];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &args).await?;
        row.as_ref()
            .map(|r| {
                Ok(TotpCredential {
                    user: PrincipalId::parse(&B::Db::text(r, "user_id")?).map_err(corrupt)?,
                    sealed: B::Db::text(r, "sealed")?,
                    created_at: B::Db::int(r, "created_at")?,
                    last_step: B::Db::int(r, "last_step")?,
                })
            })
            .transpose()
    }

    async fn accept_totp_step(&self, user: &PrincipalId, step: i64) -> Result<bool> {
        let sql = "UPDATE user_totp SET last_step = $1 \
             WHERE user_id = $2 AND last_step < $1 RETURNING user_id";
        let args = [Arg::Int(step), Arg::Text(user.as_str())];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &args).await?;
        Ok(row.is_some())
    }

    async fn create_session(&self, s: &Session) -> Result<()> {
        let amr = serde_json::to_string(&s.amr).map_err(corrupt)?;
        let args = [
            Arg::Text(&s.digest),
            Arg::Text(&s.id),
            Arg::Text(s.user.as_str()),
            Arg::Text(&s.csrf),
            Arg::Text(&amr),
            Arg::Int(s.auth_time),
            Arg::Int(s.created_at),
            Arg::Int(s.last_seen_at),
            Arg::OptText(s.user_agent.as_deref()),
            Arg::OptInt(s.revoked_at),
        ];
        let sql = "INSERT INTO sessions (digest, id, user_id, csrf, amr, auth_time, created_at, \
             last_seen_at, user_agent, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        B::Db::execute(&mut *conn(self).await?, sql, &args)
            .await
            .map_err(apply::conflict("session"))?;
        Ok(())
    }

    async fn session(&self, digest: &str) -> Result<Option<Session>> {
        let sql = "SELECT * FROM sessions WHERE digest = $1";
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &[Arg::Text(digest)]).await?;
        row.as_ref().map(session_from_row::<B::Db>).transpose()
    }

    async fn touch_session(&self, digest: &str, now: i64) -> Result<()> {
        let sql = "UPDATE sessions SET last_seen_at = $1 WHERE digest = $2 AND last_seen_at < $1";
        B::Db::execute(
            &mut *conn(self).await?,
            sql,
            &[Arg::Int(now), Arg::Text(digest)],
        )
        .await?;
        Ok(())
    }

    async fn sessions_of(&self, user: &PrincipalId) -> Result<Vec<Session>> {
        let sql = "SELECT * FROM sessions WHERE user_id = $1 ORDER BY created_at, id";
        let args = [Arg::Text(user.as_str())];
        let rows = B::Db::fetch_all(&mut *conn(self).await?, sql, &args).await?;
        rows.iter().map(session_from_row::<B::Db>).collect()
    }

    async fn revoke_session(&self, user: &PrincipalId, id: &str, now: i64) -> Result<bool> {
        let sql = "UPDATE sessions SET revoked_at = $1 \
             WHERE user_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING id";
        let args = [Arg::Int(now), Arg::Text(user.as_str()), Arg::Text(id)];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &args).await?;
        Ok(row.is_some())
    }
}

#[async_trait]
impl<B: Backend> CodeFlowStore for B {
    async fn insert_code(&self, c: &StoredCode) -> Result<()> {
        let scopes = c.scopes.to_string();
        let args = [
            Arg::Text(&c.digest),
            Arg::Text(c.client_id.as_str()),
            Arg::Text(c.user.as_str()),
            Arg::Text(&c.redirect_uri),
            Arg::Text(&c.code_challenge),
            Arg::Text(&scopes),
            Arg::OptText(c.nonce.as_deref()),
            Arg::Int(c.issued_at),
            Arg::Int(c.expires_at),
            Arg::OptInt(c.used_at),
            Arg::OptText(c.family.as_deref()),
        ];
        let sql = "INSERT INTO authorization_codes (digest, client_id, user_id, redirect_uri, \
             code_challenge, scopes, nonce, issued_at, expires_at, used_at, family_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
        B::Db::execute(&mut *conn(self).await?, sql, &args)
            .await
            .map_err(apply::conflict("authorization code"))?;
        Ok(())
    }

    async fn code(&self, digest: &str) -> Result<Option<StoredCode>> {
        let sql = "SELECT * FROM authorization_codes WHERE digest = $1";
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &[Arg::Text(digest)]).await?;
        row.as_ref().map(code_from_row::<B::Db>).transpose()
    }

    async fn redeem_code(&self, digest: &str, now: i64, family: Option<&str>) -> Result<bool> {
        let sql = "UPDATE authorization_codes SET used_at = $1, family_id = $2 \
             WHERE digest = $3 AND used_at IS NULL RETURNING digest";
        let args = [Arg::Int(now), Arg::OptText(family), Arg::Text(digest)];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &args).await?;
        Ok(row.is_some())
    }

    async fn prune_codes(&self, now: i64) -> Result<u64> {
        let sql = "DELETE FROM authorization_codes WHERE expires_at < $1";
        Ok(B::Db::execute(&mut *conn(self).await?, sql, &[Arg::Int(now)]).await?)
    }

    async fn create_refresh_family(&self, f: &RefreshFamily) -> Result<()> {
        let scopes = f.scopes.to_string();
        let args = [
            Arg::Text(&f.id),
            Arg::Text(f.client_id.as_str()),
            Arg::Text(f.user.as_str()),
            Arg::Text(&scopes),
            Arg::Int(i64::from(f.generation)),
            Arg::Int(f.rotated_at),
            Arg::Int(f.created_at),
            Arg::OptInt(f.revoked_at),
        ];
        let sql = "INSERT INTO refresh_families (id, client_id, user_id, scopes, generation, \
             rotated_at, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        B::Db::execute(&mut *conn(self).await?, sql, &args)
            .await
            .map_err(apply::conflict("refresh family"))?;
        Ok(())
    }

    async fn refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>> {
        let sql = "SELECT * FROM refresh_families WHERE id = $1";
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &[Arg::Text(id)]).await?;
        row.as_ref().map(family_from_row::<B::Db>).transpose()
    }

    async fn rotate_refresh_family(&self, id: &str, from: u32, now: i64) -> Result<bool> {
        let sql = "UPDATE refresh_families SET generation = generation + 1, rotated_at = $1 \
             WHERE id = $2 AND generation = $3 AND revoked_at IS NULL RETURNING id";
        let args = [Arg::Int(now), Arg::Text(id), Arg::Int(i64::from(from))];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &args).await?;
        Ok(row.is_some())
    }

    async fn revoke_refresh_family(&self, id: &str, now: i64) -> Result<bool> {
        let sql = "UPDATE refresh_families SET revoked_at = $1 \
             WHERE id = $2 AND revoked_at IS NULL RETURNING id";
        let args = [Arg::Int(now), Arg::Text(id)];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, sql, &args).await?;
        Ok(row.is_some())
    }
}

#[async_trait]
impl<B: Backend> SigningKeyStore for B {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows = B::Db::fetch_all(&mut *conn(self).await?, SIGNING_KEYS, &[]).await?;
        rows.iter().map(key_from_row::<B::Db>).collect()
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<()> {
        let args = [
            Arg::Text(&k.kid),
            Arg::Text(&k.public_key),
            Arg::Text(&k.sealed_private),
            Arg::Text(k.state.as_str()),
            Arg::Int(k.created_at),
            Arg::OptInt(k.activated_at),
            Arg::OptInt(k.publish_until),
        ];
        B::Db::execute(
            &mut *conn(self).await?,
            "INSERT INTO signing_keys \
             (kid, public_key, sealed_private, state, created_at, activated_at, publish_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &args,
        )
        .await
        .map_err(apply::conflict("signing key"))?;
        Ok(())
    }

    async fn prune_signing_keys(&self, now: i64) -> Result<u64> {
        let sql = "DELETE FROM signing_keys WHERE state = 'retired' AND publish_until < $1";
        Ok(B::Db::execute(&mut *conn(self).await?, sql, &[Arg::Int(now)]).await?)
    }
}

#[async_trait]
impl<B: Backend> AssertionJtiStore for B {
    async fn record_assertion_jtis(&self, entries: &[AssertionJti]) -> Result<Vec<bool>> {
        let mut conn = self.jti_pool().acquire().await?;
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
            let args: Vec<Arg<'_>> = chunk
                .iter()
                .flat_map(|e| {
                    [
                        Arg::Text(&e.client_id),
                        Arg::Text(&e.jti),
                        Arg::Int(e.expires_at),
                    ]
                })
                .collect();
            let inserted: HashSet<(String, String)> = B::Db::fetch_all(&mut conn, &sql, &args)
                .await?
                .iter()
                .map(|r| Ok((B::Db::text(r, "client_id")?, B::Db::text(r, "jti")?)))
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
        let mut conn = self.jti_pool().acquire().await?;
        let sql = "DELETE FROM client_assertion_jtis WHERE expires_at < $1";
        Ok(B::Db::execute(&mut conn, sql, &[Arg::Int(now)]).await?)
    }
}

#[async_trait]
impl<B: Backend> GatewayKeyStore for B {
    async fn gateway_keys(&self, now: i64) -> Result<Vec<GatewayKeyRecord>> {
        // A key outlives neither its registration nor its owner's standing.
        let sql = "SELECT g.kid, g.public_key, g.gateway, g.principal_id, g.registered_at, \
             g.expires_at FROM gateway_keys g LEFT JOIN principals p ON p.id = g.principal_id \
             WHERE g.expires_at >= $1 AND (g.principal_id IS NULL \
             OR (p.id IS NOT NULL AND NOT p.disabled AND p.revoked_at IS NULL)) \
             ORDER BY g.registered_at, g.kid";
        let rows = B::Db::fetch_all(&mut *conn(self).await?, sql, &[Arg::Int(now)]).await?;
        rows.iter()
            .map(|r| {
                Ok(GatewayKeyRecord {
                    kid: B::Db::text(r, "kid")?,
                    public_key: B::Db::text(r, "public_key")?,
                    gateway: B::Db::text(r, "gateway")?,
                    principal: B::Db::opt_text(r, "principal_id")?
                        .map(|id| {
                            PrincipalId::parse(&id)
                                .map_err(|e| corrupt(format!("gateway key owner: {e}")))
                        })
                        .transpose()?,
                    registered_at: B::Db::int(r, "registered_at")?,
                    expires_at: B::Db::int(r, "expires_at")?,
                })
            })
            .collect()
    }

    async fn prune_gateway_keys(&self, now: i64) -> Result<u64> {
        let sql = "DELETE FROM gateway_keys WHERE expires_at < $1";
        Ok(B::Db::execute(&mut *conn(self).await?, sql, &[Arg::Int(now)]).await?)
    }
}

#[async_trait]
impl<B: Backend> IdempotencyStore for B {
    async fn idempotency_begin(
        &self,
        key: &str,
        request_hash: &str,
        now: i64,
        abandon_after: i64,
    ) -> Result<IdempotencyBegin> {
        let mut conn = conn(self).await?;
        // Insert first, read second: each statement is atomic on its own, so concurrent
        // duplicates race on the primary key rather than on a read-then-write transaction.
        let inserted = B::Db::execute(
            &mut conn,
            "INSERT INTO idempotency_keys (key, request_hash, state, created_at) \
             VALUES ($1, $2, 'pending', $3) ON CONFLICT (key) DO NOTHING",
            &[Arg::Text(key), Arg::Text(request_hash), Arg::Int(now)],
        )
        .await?;
        if inserted == 1 {
            return Ok(IdempotencyBegin::Started);
        }
        let row = B::Db::fetch_optional(
            &mut conn,
            "SELECT request_hash, state, status, response, created_at \
             FROM idempotency_keys WHERE key = $1",
            &[Arg::Text(key)],
        )
        .await?
        // Pruned between the two statements: the caller may simply retry.
        .ok_or(StoreError::Conflict("idempotency key"))?;
        let created_at = B::Db::int(&row, "created_at")?;
        if B::Db::text(&row, "request_hash")? != request_hash {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if B::Db::text(&row, "state")? == "done" {
            // `status INTEGER` is 32 bits on PostgreSQL; SQLite reads it as such too.
            let status = B::Db::opt_int32(&row, "status")?
                .ok_or_else(|| corrupt("an answered idempotency key without a status"))?;
            return Ok(IdempotencyBegin::Replay {
                status: u16::try_from(status).map_err(corrupt)?,
                body: B::Db::opt_text(&row, "response")?.unwrap_or_default(),
            });
        }
        if now - created_at <= abandon_after {
            return Ok(IdempotencyBegin::InFlight);
        }
        // The holder died mid-call; its change, if any, committed atomically or not at all,
        // so one caller may take the key over. The compare-and-set picks exactly one.
        let taken = B::Db::execute(
            &mut conn,
            "UPDATE idempotency_keys SET created_at = $1 \
             WHERE key = $2 AND state = 'pending' AND created_at = $3",
            &[Arg::Int(now), Arg::Text(key), Arg::Int(created_at)],
        )
        .await?;
        Ok(if taken == 1 {
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
        journal::complete::<B::Db>(&mut *conn(self).await?, key, reserved_at, status, body).await
    }

    async fn idempotency_release(&self, key: &str, reserved_at: i64) -> Result<bool> {
        journal::release::<B::Db>(&mut *conn(self).await?, key, reserved_at).await
    }

    async fn prune_idempotency(&self, created_before: i64) -> Result<u64> {
        let sql = "DELETE FROM idempotency_keys WHERE created_at < $1";
        let args = [Arg::Int(created_before)];
        Ok(B::Db::execute(&mut *conn(self).await?, sql, &args).await?)
    }
}

#[async_trait]
impl<B: Backend> OutboxStore for B {
    async fn audit_outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>> {
        journal::outbox_entry::<B::Db>(&mut *conn(self).await?, id).await
    }

    async fn claim_audit_outbox(
        &self,
        now: i64,
        hold_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        journal::claim_outbox::<B::Db>(&mut *conn(self).await?, now, hold_until, limit).await
    }

    async fn remove_audit_outbox(&self, id: &str) -> Result<()> {
        journal::remove_outbox::<B::Db>(&mut *conn(self).await?, id).await
    }
}

#[async_trait]
impl<B: Backend> DelegationStore for B {
    async fn delegation_grant(&self, id: &str) -> Result<Option<DelegationGrant>> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM delegation_grants WHERE id = $1");
        let row = B::Db::fetch_optional(&mut *conn(self).await?, &sql, &[Arg::Text(id)]).await?;
        row.as_ref().map(grant_from_row::<B::Db>).transpose()
    }

    async fn live_delegation_grant(
        &self,
        user: &PrincipalId,
        agent: &PrincipalId,
        now: i64,
    ) -> Result<Option<DelegationGrant>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM delegation_grants \
             WHERE user_id = $1 AND agent_id = $2 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $3)"
        );
        let args = [
            Arg::Text(user.as_str()),
            Arg::Text(agent.as_str()),
            Arg::Int(now),
        ];
        let row = B::Db::fetch_optional(&mut *conn(self).await?, &sql, &args).await?;
        row.as_ref().map(grant_from_row::<B::Db>).transpose()
    }

    async fn list_delegation_grants(&self, tenant: &TenantId) -> Result<Vec<DelegationGrant>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM delegation_grants WHERE tenant_id = $1 \
             ORDER BY created_at, id"
        );
        let args = [Arg::Text(tenant.as_str())];
        let rows = B::Db::fetch_all(&mut *conn(self).await?, &sql, &args).await?;
        rows.iter().map(grant_from_row::<B::Db>).collect()
    }
}

#[async_trait]
impl<B: Backend> RevocationStore for B {
    async fn revocations_since(&self, cursor: i64, limit: u32) -> Result<Vec<Revocation>> {
        let sql = "SELECT * FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2";
        let args = [Arg::Int(cursor), Arg::Int(i64::from(limit))];
        let rows = B::Db::fetch_all(&mut *conn(self).await?, sql, &args).await?;
        rows.iter().map(revocation_from_row::<B::Db>).collect()
    }

    async fn prune_revocations(&self, now: i64) -> Result<u64> {
        let sql = "DELETE FROM revocations WHERE horizon < $1";
        Ok(B::Db::execute(&mut *conn(self).await?, sql, &[Arg::Int(now)]).await?)
    }

    fn revocation_watch(&self) -> tokio::sync::watch::Receiver<i64> {
        Backend::revocation_watch(self)
    }
}

#[async_trait]
impl<B: Backend> ActivityStore for B {
    async fn record_activity(&self, updates: &[Activity]) -> Result<()> {
        let mut tx = begin_write::<B>(self.pool()).await?;
        for u in updates {
            let args = [
                Arg::Text(u.principal.as_str()),
                Arg::OptInt(u.last_issued_at),
                Arg::OptInt(u.last_used_at),
            ];
            B::Db::execute(&mut tx, MERGE_ACTIVITY, &args).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn activity(&self, tenant: &TenantId) -> Result<Vec<Activity>> {
        let sql = "SELECT a.principal_id, a.last_issued_at, a.last_used_at \
             FROM principal_activity a JOIN principals p ON p.id = a.principal_id \
             WHERE p.tenant_id = $1 ORDER BY a.principal_id";
        let args = [Arg::Text(tenant.as_str())];
        let rows = B::Db::fetch_all(&mut *conn(self).await?, sql, &args).await?;
        rows.iter()
            .map(|r| {
                Ok(Activity {
                    principal: PrincipalId::parse(&B::Db::text(r, "principal_id")?)
                        .map_err(corrupt)?,
                    last_issued_at: B::Db::opt_int(r, "last_issued_at")?,
                    last_used_at: B::Db::opt_int(r, "last_used_at")?,
                })
            })
            .collect()
    }
}

fn tenant_from_row<DB: SqlDb>(row: &DB::Row) -> Result<Tenant> {
    Ok(Tenant {
        id: TenantId::parse(&DB::text(row, "id")?).map_err(corrupt)?,
        name: DB::text(row, "name")?,
        max_token_ttl_secs: DB::int(row, "max_token_ttl_secs")?,
        max_client_key_age_secs: DB::opt_int(row, "max_client_key_age_secs")?,
        disabled: DB::flag(row, "disabled")?,
        created_at: DB::int(row, "created_at")?,
    })
}

fn invite_from_row<DB: SqlDb>(row: &DB::Row) -> Result<Invite> {
    Ok(Invite {
        digest: DB::text(row, "digest")?,
        user: PrincipalId::parse(&DB::text(row, "user_id")?).map_err(corrupt)?,
        created_at: DB::int(row, "created_at")?,
        expires_at: DB::int(row, "expires_at")?,
        used_at: DB::opt_int(row, "used_at")?,
        totp_pending: DB::opt_text(row, "totp_pending")?,
    })
}

fn session_from_row<DB: SqlDb>(row: &DB::Row) -> Result<Session> {
    Ok(Session {
        digest: DB::text(row, "digest")?,
        id: DB::text(row, "id")?,
        user: PrincipalId::parse(&DB::text(row, "user_id")?).map_err(corrupt)?,
        csrf: DB::text(row, "csrf")?,
        amr: serde_json::from_str(&DB::text(row, "amr")?).map_err(corrupt)?,
        auth_time: DB::int(row, "auth_time")?,
        created_at: DB::int(row, "created_at")?,
        last_seen_at: DB::int(row, "last_seen_at")?,
        user_agent: DB::opt_text(row, "user_agent")?,
        revoked_at: DB::opt_int(row, "revoked_at")?,
    })
}

fn code_from_row<DB: SqlDb>(row: &DB::Row) -> Result<StoredCode> {
    Ok(StoredCode {
        digest: DB::text(row, "digest")?,
        client_id: ClientId::parse(&DB::text(row, "client_id")?).map_err(corrupt)?,
        user: PrincipalId::parse(&DB::text(row, "user_id")?).map_err(corrupt)?,
        redirect_uri: DB::text(row, "redirect_uri")?,
        code_challenge: DB::text(row, "code_challenge")?,
        scopes: ScopeSet::parse(&DB::text(row, "scopes")?).map_err(corrupt)?,
        nonce: DB::opt_text(row, "nonce")?,
        issued_at: DB::int(row, "issued_at")?,
        expires_at: DB::int(row, "expires_at")?,
        used_at: DB::opt_int(row, "used_at")?,
        family: DB::opt_text(row, "family_id")?,
    })
}

fn family_from_row<DB: SqlDb>(row: &DB::Row) -> Result<RefreshFamily> {
    Ok(RefreshFamily {
        id: DB::text(row, "id")?,
        client_id: ClientId::parse(&DB::text(row, "client_id")?).map_err(corrupt)?,
        user: PrincipalId::parse(&DB::text(row, "user_id")?).map_err(corrupt)?,
        scopes: ScopeSet::parse(&DB::text(row, "scopes")?).map_err(corrupt)?,
        generation: u32::try_from(DB::int(row, "generation")?).map_err(corrupt)?,
        rotated_at: DB::int(row, "rotated_at")?,
        created_at: DB::int(row, "created_at")?,
        revoked_at: DB::opt_int(row, "revoked_at")?,
    })
}

fn oauth_client_from_row<DB: SqlDb>(row: &DB::Row) -> Result<OAuthClient> {
    let uris: Vec<String> =
        serde_json::from_str(&DB::text(row, "redirect_uris")?).map_err(corrupt)?;
    Ok(OAuthClient {
        id: ClientId::parse(&DB::text(row, "id")?).map_err(corrupt)?,
        tenant: TenantId::parse(&DB::text(row, "tenant_id")?).map_err(corrupt)?,
        name: DB::text(row, "name")?,
        redirect_uris: uris.into_iter().map(RedirectUri::from_registered).collect(),
        public: DB::flag(row, "public")?,
        secret_hash: DB::opt_text(row, "secret_hash")?,
        created_at: DB::int(row, "created_at")?,
    })
}

fn principal_from_row<DB: SqlDb>(row: &DB::Row) -> Result<Principal> {
    let owner = DB::opt_text(row, "owner_id")?;
    let audiences = DB::text(row, "audiences")?;
    Ok(Principal {
        id: PrincipalId::parse(&DB::text(row, "id")?).map_err(corrupt)?,
        tenant: TenantId::parse(&DB::text(row, "tenant_id")?).map_err(corrupt)?,
        kind: PrincipalKind::from_str(&DB::text(row, "kind")?).map_err(corrupt)?,
        name: DB::text(row, "name")?,
        owner: owner
            .as_deref()
            .map(PrincipalId::parse)
            .transpose()
            .map_err(corrupt)?,
        scopes: ScopeSet::parse(&DB::text(row, "scopes")?).map_err(corrupt)?,
        audiences: serde_json::from_str(&audiences).map_err(corrupt)?,
        public_jwk: DB::opt_text(row, "public_jwk")?,
        key_registered_at: DB::opt_int(row, "key_registered_at")?,
        secret_hash: DB::opt_text(row, "secret_hash")?,
        disabled: DB::flag(row, "disabled")?,
        revoked: match DB::opt_int(row, "revoked_at")? {
            Some(at) => Some(Revoked {
                at,
                reason: DB::opt_text(row, "revoked_reason")?,
            }),
            None => None,
        },
        created_at: DB::int(row, "created_at")?,
        updated_at: DB::int(row, "updated_at")?,
    })
}

pub(crate) fn key_from_row<DB: SqlDb>(row: &DB::Row) -> Result<SigningKeyRecord> {
    let state = DB::text(row, "state")?;
    Ok(SigningKeyRecord {
        kid: DB::text(row, "kid")?,
        public_key: DB::text(row, "public_key")?,
        sealed_private: DB::text(row, "sealed_private")?,
        state: KeyState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("key state `{state}`")))?,
        created_at: DB::int(row, "created_at")?,
        activated_at: DB::opt_int(row, "activated_at")?,
        publish_until: DB::opt_int(row, "publish_until")?,
    })
}

fn grant_from_row<DB: SqlDb>(row: &DB::Row) -> Result<DelegationGrant> {
    Ok(DelegationGrant {
        id: DB::text(row, "id")?,
        tenant: TenantId::parse(&DB::text(row, "tenant_id")?).map_err(corrupt)?,
        user: PrincipalId::parse(&DB::text(row, "user_id")?).map_err(corrupt)?,
        agent: PrincipalId::parse(&DB::text(row, "agent_id")?).map_err(corrupt)?,
        scopes: ScopeSet::parse(&DB::text(row, "scopes")?).map_err(corrupt)?,
        created_at: DB::int(row, "created_at")?,
        expires_at: DB::opt_int(row, "expires_at")?,
        revoked_at: DB::opt_int(row, "revoked_at")?,
    })
}

fn revocation_from_row<DB: SqlDb>(row: &DB::Row) -> Result<Revocation> {
    let user = DB::opt_text(row, "grant_user")?;
    let agent = DB::opt_text(row, "grant_agent")?;
    Ok(Revocation {
        seq: DB::int(row, "seq")?,
        event: NewRevocation {
            target: RevocationTarget::from_columns(
                &DB::text(row, "kind")?,
                &DB::text(row, "target")?,
                user.as_deref(),
                agent.as_deref(),
            )
            .map_err(corrupt)?,
            issued_before: DB::int(row, "issued_before")?,
            horizon: DB::int(row, "horizon")?,
            reason: DB::opt_text(row, "reason")?,
            created_at: DB::int(row, "created_at")?,
        },
    })
}
