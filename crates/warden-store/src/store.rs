//! The store's interface, one trait per area, and [`Store`], which bundles them.
//!
//! A feature depends on the area it uses (`&dyn RevocationStore`, `S: IdempotencyStore`);
//! whatever holds the whole store holds an `Arc<dyn Store>`, on which every area's methods
//! can be called. Lifecycle writes of every area are made by [`ChangeStore::apply`]; the
//! per-change methods an area offers (`create_tenant`, `append_revocation`, …) are provided
//! methods that apply their change with an empty record. The traits speak in Warden's types
//! and know nothing of SQL; both backends implement each of them once, in `crate::shared`.

use async_trait::async_trait;
use warden_core::{ClientId, PrincipalId, ScopeSet, TenantId};

use crate::change::{Applied, Change, ChangeRecord, OutboxEntry};
use crate::model::{
    Activity, AssertionJti, DelegationGrant, GatewayKeyRecord, Invite, NewRevocation, OAuthClient,
    Principal, RefreshFamily, Revocation, Session, SigningKeyRecord, StoredCode, Tenant,
    TotpCredential,
};
use crate::{Result, StoreError};

/// Every area of the store, as one object.
pub trait Store:
    ChangeStore
    + TenantStore
    + SigningKeyStore
    + AssertionJtiStore
    + GatewayKeyStore
    + IdempotencyStore
    + OutboxStore
    + DelegationStore
    + RevocationStore
    + ActivityStore
    + OAuthClientStore
    + CodeFlowStore
    + PeopleStore
{
}

impl<T> Store for T where
    T: ChangeStore
        + TenantStore
        + SigningKeyStore
        + AssertionJtiStore
        + GatewayKeyStore
        + IdempotencyStore
        + OutboxStore
        + DelegationStore
        + RevocationStore
        + ActivityStore
        + OAuthClientStore
        + CodeFlowStore
        + PeopleStore
{
}

/// Lifecycle writes, each a [`Change`] with the record it leaves.
#[async_trait]
pub trait ChangeStore: Send + Sync + 'static {
    /// Makes `change` and writes `record` in one transaction: both commit, or neither does
    /// (a change that fails, a conflict say, leaves no answer and no outbox entry; an answer
    /// whose reservation is lost fails the change with [`StoreError::ReservationLost`]).
    async fn apply(&self, change: Change<'_>, record: &ChangeRecord<'_>) -> Result<Applied>;
}

/// Applies `change` with an empty record.
async fn apply_bare<S: ChangeStore + ?Sized>(store: &S, change: Change<'_>) -> Result<Applied> {
    store.apply(change, &ChangeRecord::default()).await
}

/// The OAuth clients people sign in through, per tenant.
#[async_trait]
pub trait OAuthClientStore: ChangeStore {
    async fn create_oauth_client(&self, client: &OAuthClient) -> Result<()> {
        apply_bare(self, Change::CreateOAuthClient(client))
            .await
            .map(drop)
    }
    async fn oauth_client(&self, id: &ClientId) -> Result<Option<OAuthClient>>;
    /// Oldest first.
    async fn list_oauth_clients(&self, tenant: &TenantId) -> Result<Vec<OAuthClient>>;
    async fn delete_oauth_client(&self, id: &ClientId) -> Result<()> {
        apply_bare(self, Change::DeleteOAuthClient(id))
            .await
            .map(drop)
    }
}

/// The code flow's short-lived state: authorization codes and refresh families. Each write
/// that decides something (a code's one redemption, a family's rotation) is a compare and
/// set, so that of two racing callers exactly one wins, on every replica.
#[async_trait]
pub trait CodeFlowStore: Send + Sync + 'static {
    async fn insert_code(&self, code: &StoredCode) -> Result<()>;
    async fn code(&self, digest: &str) -> Result<Option<StoredCode>>;
    /// Marks the code redeemed at `now`, recording the family its redemption starts; `false`
    /// when it was redeemed already (or does not exist): the caller has a replay.
    async fn redeem_code(&self, digest: &str, now: i64, family: Option<&str>) -> Result<bool>;
    /// Deletes codes that expired before `now`; how many.
    async fn prune_codes(&self, now: i64) -> Result<u64>;

    async fn create_refresh_family(&self, family: &RefreshFamily) -> Result<()>;
    async fn refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>>;
    /// Moves the family from generation `from` to `from + 1` at `now`, if it is still at
    /// `from` and not revoked; `false` otherwise (another use got there first).
    async fn rotate_refresh_family(&self, id: &str, from: u32, now: i64) -> Result<bool>;
    /// Revokes the family at `now`; `false` if it was revoked already or does not exist.
    async fn revoke_refresh_family(&self, id: &str, now: i64) -> Result<bool>;
}

/// People: their invitations, TOTP credentials and sessions.
#[async_trait]
pub trait PeopleStore: ChangeStore {
    async fn invite(&self, digest: &str) -> Result<Option<Invite>>;
    /// Keeps `sealed` as the invitation's pending TOTP secret unless it has one already;
    /// the invitation as it then is.
    async fn pend_invite_totp(&self, digest: &str, sealed: &str) -> Result<Option<Invite>>;
    async fn totp(&self, user: &PrincipalId) -> Result<Option<TotpCredential>>;
    /// Records `step` as the last accepted, if it is later than the one recorded; `false`
    /// when it is not (the code was used already).
    async fn accept_totp_step(&self, user: &PrincipalId, step: i64) -> Result<bool>;
    async fn create_session(&self, session: &Session) -> Result<()>;
    async fn session(&self, digest: &str) -> Result<Option<Session>>;
    async fn touch_session(&self, digest: &str, now: i64) -> Result<()>;
    /// A user's sessions, oldest first, revoked ones included.
    async fn sessions_of(&self, user: &PrincipalId) -> Result<Vec<Session>>;
    /// Revokes the user's session `id` at `now`; `false` if there was no such live session.
    async fn revoke_session(&self, user: &PrincipalId, id: &str, now: i64) -> Result<bool>;
}

/// Tenants and their principals.
#[async_trait]
pub trait TenantStore: ChangeStore {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        apply_bare(self, Change::CreateTenant(tenant))
            .await
            .map(drop)
    }
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    /// The principal of `tenant` named `name` (names are unique in a tenant).
    async fn principal_by_name(&self, tenant: &TenantId, name: &str) -> Result<Option<Principal>>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    async fn set_tenant_disabled(&self, id: &TenantId, disabled: bool) -> Result<()> {
        let change = Change::SetTenantDisabled { id, disabled };
        apply_bare(self, change).await.map(drop)
    }
    async fn set_tenant_max_token_ttl(&self, id: &TenantId, secs: i64) -> Result<()> {
        let change = Change::SetTenantMaxTokenTtl { id, secs };
        apply_bare(self, change).await.map(drop)
    }

    async fn create_principal(&self, principal: &Principal) -> Result<()> {
        apply_bare(self, Change::CreatePrincipal(principal))
            .await
            .map(drop)
    }
    async fn principal(&self, id: &PrincipalId) -> Result<Option<Principal>>;
    async fn list_principals(&self, tenant: &TenantId) -> Result<Vec<Principal>>;
    async fn set_principal_disabled(
        &self,
        id: &PrincipalId,
        disabled: bool,
        now: i64,
    ) -> Result<()> {
        let change = Change::SetPrincipalDisabled { id, disabled, now };
        apply_bare(self, change).await.map(drop)
    }
    async fn set_principal_scopes(
        &self,
        id: &PrincipalId,
        scopes: &ScopeSet,
        now: i64,
    ) -> Result<()> {
        let change = Change::SetPrincipalScopes { id, scopes, now };
        apply_bare(self, change).await.map(drop)
    }
    async fn set_principal_public_key(&self, id: &PrincipalId, jwk: &str, now: i64) -> Result<()> {
        let change = Change::SetPrincipalPublicKey { id, jwk, now };
        apply_bare(self, change).await.map(drop)
    }
    async fn set_principal_secret_hash(
        &self,
        id: &PrincipalId,
        hash: &str,
        now: i64,
    ) -> Result<()> {
        let change = Change::SetPrincipalSecretHash { id, hash, now };
        apply_bare(self, change).await.map(drop)
    }
    /// Replaces the stored secret `from` by `to`, if it is still `from` (see
    /// [`Change::UpgradePrincipalSecretHash`]).
    async fn upgrade_principal_secret_hash(
        &self,
        id: &PrincipalId,
        from: &str,
        to: &str,
    ) -> Result<()> {
        let change = Change::UpgradePrincipalSecretHash { id, from, to };
        apply_bare(self, change).await.map(drop)
    }
}

/// The authority's token-signing keys.
#[async_trait]
pub trait SigningKeyStore: ChangeStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<()>;
    /// In one transaction: the active key retires (published until `publish_until`), the next
    /// key becomes active, and `new_next` is added as the next key.
    async fn rotate_signing_keys(
        &self,
        new_next: &SigningKeyRecord,
        now: i64,
        publish_until: i64,
    ) -> Result<()> {
        let change = Change::RotateSigningKeys {
            new_next,
            now,
            publish_until,
            next_created_by: None,
        };
        apply_bare(self, change).await.map(drop)
    }
    /// Removes retired keys whose publication period has ended.
    async fn prune_signing_keys(&self, now: i64) -> Result<u64>;
}

/// Client assertions' `jti`s, each accepted once.
#[async_trait]
pub trait AssertionJtiStore: Send + Sync + 'static {
    /// Records client assertions' `jti`s in one statement; for each entry, in order, false
    /// when that client already used that `jti` (earlier, or earlier in the same batch).
    async fn record_assertion_jtis(&self, entries: &[AssertionJti]) -> Result<Vec<bool>>;

    /// Records one `jti`; false when the client already used it.
    async fn record_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool> {
        let entry = AssertionJti {
            client_id: client_id.to_owned(),
            jti: jti.to_owned(),
            expires_at,
        };
        Ok(self
            .record_assertion_jtis(std::slice::from_ref(&entry))
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }
    async fn prune_assertion_jtis(&self, now: i64) -> Result<u64>;
}

/// Gateways' published internal-token keys.
#[async_trait]
pub trait GatewayKeyStore: ChangeStore {
    /// Publishes a gateway's internal-token key until `expires_at`; re-registering the same
    /// key extends it. A `kid` already bound to another key is a conflict.
    async fn register_gateway_key(&self, key: &GatewayKeyRecord) -> Result<()> {
        apply_bare(self, Change::RegisterGatewayKey(key))
            .await
            .map(drop)
    }
    /// Gateway keys still registered at `now`.
    async fn gateway_keys(&self, now: i64) -> Result<Vec<GatewayKeyRecord>>;
    async fn prune_gateway_keys(&self, now: i64) -> Result<u64>;
}

/// What [`IdempotencyStore::idempotency_begin`] found under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// The key is new and now reserved, with the `now` given: perform the call, recording
    /// its answer in the change's own transaction ([`ChangeRecord::answer`]), or with
    /// `idempotency_complete` when the call changed nothing.
    Started,
    /// Same key, same request, already answered: replay this.
    Replay { status: u16, body: String },
    /// Same key, another request body.
    Mismatch,
    /// Same key, same request, still being processed.
    InFlight,
}

/// `Idempotency-Key` reservations and the answers they replay.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    async fn idempotency_begin(
        &self,
        key: &str,
        request_hash: &str,
        now: i64,
        abandon_after: i64,
    ) -> Result<IdempotencyBegin>;
    /// Records the answer of a call that changed nothing in the store (a refusal, say; a
    /// change records its answer in its own transaction instead). False when the key is not
    /// pending under the reservation made at `reserved_at`: completed already, or taken over.
    async fn idempotency_complete(
        &self,
        key: &str,
        reserved_at: i64,
        status: u16,
        body: &str,
    ) -> Result<bool>;
    /// Forgets a reservation whose call failed without a result worth replaying; false when
    /// it is not pending under the reservation made at `reserved_at`.
    async fn idempotency_release(&self, key: &str, reserved_at: i64) -> Result<bool>;
    async fn prune_idempotency(&self, created_before: i64) -> Result<u64>;
}

/// Audit entries that changes wrote, waiting for the audit log to take them.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// The outbox entry `id`, if it is still there.
    async fn audit_outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>>;
    /// Takes up to `limit` outbox entries due at `now`, oldest first, and holds each until
    /// `hold_until`: a concurrent drainer does not get the same entry, and one whose taker
    /// dies before removing it is due again then. `now = i64::MAX` takes every entry, for a
    /// process that knows no other writes to the store.
    async fn claim_audit_outbox(
        &self,
        now: i64,
        hold_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>>;
    /// Forgets an outbox entry once the audit log has it.
    async fn remove_audit_outbox(&self, id: &str) -> Result<()>;
}

/// Users' consents that agents act for them.
#[async_trait]
pub trait DelegationStore: ChangeStore {
    /// A pair (user, agent) has at most one live grant: a second is a conflict.
    async fn create_delegation_grant(&self, grant: &DelegationGrant) -> Result<()> {
        let change = Change::CreateDelegationGrant {
            grant,
            supersede: None,
        };
        apply_bare(self, change).await.map(drop)
    }
    async fn delegation_grant(&self, id: &str) -> Result<Option<DelegationGrant>>;
    /// The pair's live grant: not revoked and not expired at `now`.
    async fn live_delegation_grant(
        &self,
        user: &PrincipalId,
        agent: &PrincipalId,
        now: i64,
    ) -> Result<Option<DelegationGrant>>;
    async fn list_delegation_grants(&self, tenant: &TenantId) -> Result<Vec<DelegationGrant>>;
    /// In one transaction: marks the grant revoked at `event.created_at` and appends `event`.
    /// A grant already revoked is `NotFound`.
    async fn revoke_delegation_grant(&self, id: &str, event: &NewRevocation) -> Result<Revocation> {
        let change = Change::RevokeDelegationGrant { id, event };
        appended(apply_bare(self, change).await?)
    }
}

/// The revocation log that gateways follow.
#[async_trait]
pub trait RevocationStore: ChangeStore {
    /// Appends a revocation; it is durable when this returns. Sequence numbers are assigned in
    /// commit order, so a reader following `revocations_since` never skips an event.
    async fn append_revocation(&self, event: &NewRevocation) -> Result<Revocation> {
        appended(apply_bare(self, Change::AppendRevocation(event)).await?)
    }
    /// Events with `seq > cursor`, oldest first, at most `limit`.
    async fn revocations_since(&self, cursor: i64, limit: u32) -> Result<Vec<Revocation>>;
    /// Forgets events whose horizon has passed.
    async fn prune_revocations(&self, now: i64) -> Result<u64>;
    /// Carries the newest `seq` known to have been appended, by this process or by any other
    /// process on the same database; watchers wake and read `revocations_since`.
    fn revocation_watch(&self) -> tokio::sync::watch::Receiver<i64>;
}

/// When principals last obtained and used tokens.
#[async_trait]
pub trait ActivityStore: Send + Sync + 'static {
    /// Merges activity: each time only ever moves forward.
    async fn record_activity(&self, updates: &[Activity]) -> Result<()>;
    /// Activity of the tenant's principals (those with any recorded).
    async fn activity(&self, tenant: &TenantId) -> Result<Vec<Activity>>;
}

/// The revocation a change that always appends one produced.
fn appended(applied: Applied) -> Result<Revocation> {
    applied
        .revocation
        .ok_or_else(|| StoreError::Corrupt("a revocation was appended without a seq".into()))
}
