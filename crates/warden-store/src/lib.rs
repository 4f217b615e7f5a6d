//! Warden's persistent state behind one [`Store`] trait.
//!
//! The trait speaks in Warden's types and knows nothing of SQL. Two backends implement it:
//!
//! - [`sqlite::SqliteStore`], the embedded default: one process, one database file.
//! - [`postgres::PgStore`], for several authority replicas sharing one PostgreSQL database.
//!   Replicas learn of each other's revocations through `LISTEN`/`NOTIFY`, so
//!   [`Store::revocation_watch`] wakes for an append made by any of them.
//!
//! [`connect_url`] picks one from a URL. The schema in `migrations/` is written in the SQL
//! that SQLite and PostgreSQL share; the one statement they spell differently (the
//! revocation log's sequence column) has its PostgreSQL form in `migrations/postgres/`.
//! Both backends pass the same conformance suite (`tests/it`), which is what "identical
//! semantics" means here. Every method is one transaction: a failure leaves nothing half
//! applied. Lifecycle writes all go through [`Store::apply`], which commits a [`Change`]
//! together with its [`ChangeRecord`] (the idempotent answer, the audit entry). See
//! `docs/storage.md` for running on PostgreSQL.

mod apply;
pub mod change;
mod journal;
pub mod model;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use warden_core::{PrincipalId, ScopeSet, TenantId};

pub use change::*;
pub use model::*;

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

/// What [`Store::idempotency_begin`] found under a key.
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

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Makes `change` and writes `record` in one transaction: both commit, or neither does
    /// (a change that fails, a conflict say, leaves no answer and no outbox entry; an answer
    /// whose reservation is lost fails the change with [`StoreError::ReservationLost`]).
    async fn apply(&self, change: Change<'_>, record: &ChangeRecord<'_>) -> Result<Applied>;

    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.apply(Change::CreateTenant(tenant), &ChangeRecord::default())
            .await
            .map(drop)
    }
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    async fn set_tenant_disabled(&self, id: &TenantId, disabled: bool) -> Result<()> {
        let change = Change::SetTenantDisabled { id, disabled };
        self.apply(change, &ChangeRecord::default()).await.map(drop)
    }
    async fn set_tenant_max_token_ttl(&self, id: &TenantId, secs: i64) -> Result<()> {
        let change = Change::SetTenantMaxTokenTtl { id, secs };
        self.apply(change, &ChangeRecord::default()).await.map(drop)
    }

    async fn create_principal(&self, principal: &Principal) -> Result<()> {
        self.apply(Change::CreatePrincipal(principal), &ChangeRecord::default())
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
        self.apply(change, &ChangeRecord::default()).await.map(drop)
    }
    async fn set_principal_scopes(
        &self,
        id: &PrincipalId,
        scopes: &ScopeSet,
        now: i64,
    ) -> Result<()> {
        let change = Change::SetPrincipalScopes { id, scopes, now };
        self.apply(change, &ChangeRecord::default()).await.map(drop)
    }
    async fn set_principal_public_key(&self, id: &PrincipalId, jwk: &str, now: i64) -> Result<()> {
        let change = Change::SetPrincipalPublicKey { id, jwk, now };
        self.apply(change, &ChangeRecord::default()).await.map(drop)
    }
    async fn set_principal_secret_hash(
        &self,
        id: &PrincipalId,
        hash: &str,
        now: i64,
    ) -> Result<()> {
        let change = Change::SetPrincipalSecretHash { id, hash, now };
        self.apply(change, &ChangeRecord::default()).await.map(drop)
    }

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
        };
        self.apply(change, &ChangeRecord::default()).await.map(drop)
    }
    /// Removes retired keys whose publication period has ended.
    async fn prune_signing_keys(&self, now: i64) -> Result<u64>;

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

    /// Publishes a gateway's internal-token key until `expires_at`; re-registering the same
    /// key extends it. A `kid` already bound to another key is a conflict.
    async fn register_gateway_key(&self, key: &GatewayKeyRecord) -> Result<()> {
        self.apply(Change::RegisterGatewayKey(key), &ChangeRecord::default())
            .await
            .map(drop)
    }
    /// Gateway keys still registered at `now`.
    async fn gateway_keys(&self, now: i64) -> Result<Vec<GatewayKeyRecord>>;
    async fn prune_gateway_keys(&self, now: i64) -> Result<u64>;

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

    /// A pair (user, agent) has at most one live grant: a second is a conflict.
    async fn create_delegation_grant(&self, grant: &DelegationGrant) -> Result<()> {
        let change = Change::CreateDelegationGrant {
            grant,
            supersede: None,
        };
        self.apply(change, &ChangeRecord::default()).await.map(drop)
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
        appended(self.apply(change, &ChangeRecord::default()).await?)
    }

    /// Appends a revocation; it is durable when this returns. Sequence numbers are assigned in
    /// commit order, so a reader following `revocations_since` never skips an event.
    async fn append_revocation(&self, event: &NewRevocation) -> Result<Revocation> {
        let change = Change::AppendRevocation(event);
        appended(self.apply(change, &ChangeRecord::default()).await?)
    }
    /// Events with `seq > cursor`, oldest first, at most `limit`.
    async fn revocations_since(&self, cursor: i64, limit: u32) -> Result<Vec<Revocation>>;
    /// Forgets events whose horizon has passed.
    async fn prune_revocations(&self, now: i64) -> Result<u64>;
    /// Carries the newest `seq` known to have been appended, by this process or by any other
    /// process on the same database; watchers wake and read `revocations_since`.
    fn revocation_watch(&self) -> tokio::sync::watch::Receiver<i64>;

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
