//! Lifecycle changes as values, and the record each one leaves in its own transaction.
//!
//! [`ChangeStore::apply`](crate::ChangeStore::apply) makes a [`Change`] and writes its
//! [`ChangeRecord`] in one transaction: the answer an `Idempotency-Key` retry must replay,
//! and the audit entry that the audit log has yet to take from the outbox. Either both the
//! change and its record commit, or neither does, so a process killed between the commit and
//! the answer leaves a change that a retry replays rather than applies again, and that the
//! audit log still learns of. This module knows nothing of HTTP or of the audit log's
//! format: answers and entries are text the caller renders.

use warden_core::{ClientId, PrincipalId, ScopeSet, TenantId};

use crate::model::{
    DelegationGrant, GatewayKeyRecord, Invite, NewRevocation, OAuthClient, Principal, Revocation,
    SigningKeyRecord, Tenant, TotpCredential,
};

/// One lifecycle write. Each variant is made in one transaction by
/// [`ChangeStore::apply`](crate::ChangeStore::apply).
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    CreateTenant(&'a Tenant),
    /// `None` returns the tenant to the authority's default.
    SetTenantMaxClientKeyAge {
        id: &'a TenantId,
        secs: Option<i64>,
    },
    SetTenantDisabled {
        id: &'a TenantId,
        disabled: bool,
    },
    /// Disables the tenant and appends `event`, which ends every token of the tenant already
    /// out: a disabled tenant whose tokens still pass would be half disabled.
    DisableTenant {
        id: &'a TenantId,
        event: &'a NewRevocation,
    },
    SetTenantMaxTokenTtl {
        id: &'a TenantId,
        secs: i64,
    },
    CreatePrincipal(&'a Principal),
    /// Creates the principal and appends `flag` (a honeytoken event naming it), so that it
    /// never exists unflagged.
    CreateHoneytoken {
        principal: &'a Principal,
        flag: &'a NewRevocation,
    },
    SetPrincipalDisabled {
        id: &'a PrincipalId,
        disabled: bool,
        now: i64,
    },
    /// Disables the principal and appends `event`, which ends the tokens already out: a
    /// disabled principal whose tokens still work would be half disabled.
    DisablePrincipal {
        id: &'a PrincipalId,
        now: i64,
        event: &'a NewRevocation,
    },
    /// Marks the principal revoked (refused new tokens and exchanges until reinstated) and
    /// appends `event`, which ends the tokens already out, in one transaction.
    RevokePrincipal {
        id: &'a PrincipalId,
        now: i64,
        reason: Option<&'a str>,
        event: &'a NewRevocation,
    },
    /// Lifts a revocation of the principal; with `jwk`, its key is replaced in the same
    /// transaction, so a principal revoked for a leaked key never comes back with it.
    ReinstatePrincipal {
        id: &'a PrincipalId,
        jwk: Option<&'a str>,
        now: i64,
    },
    SetPrincipalScopes {
        id: &'a PrincipalId,
        scopes: &'a ScopeSet,
        now: i64,
    },
    SetPrincipalPublicKey {
        id: &'a PrincipalId,
        jwk: &'a str,
        now: i64,
    },
    SetPrincipalSecretHash {
        id: &'a PrincipalId,
        hash: &'a str,
        now: i64,
    },
    /// Replaces the stored form of the same secret (a legacy hash by a digest), only if the
    /// stored value is still `from`: a secret replaced meanwhile stays replaced, and the old
    /// secret is not brought back. Leaves `updated_at` alone, since the credential is the
    /// same; a value no longer `from` is left as it is, without an error.
    UpgradePrincipalSecretHash {
        id: &'a PrincipalId,
        from: &'a str,
        to: &'a str,
    },
    /// The active key retires (published until `publish_until`), the next key becomes
    /// active, and `new_next` is added as the next key.
    RotateSigningKeys {
        new_next: &'a SigningKeyRecord,
        now: i64,
        publish_until: i64,
        /// When given, the next key must have been created at or before this time, else
        /// nothing changes ([`crate::StoreError::Conflict`]): a scheduled rotation never
        /// promotes a key verifiers may not have fetched yet, even when two replicas
        /// decide to rotate at once.
        next_created_by: Option<i64>,
    },
    /// Publishes a gateway's internal-token key until `expires_at`; re-registering the same
    /// key extends it. A `kid` already bound to another key is a conflict.
    RegisterGatewayKey(&'a GatewayKeyRecord),
    /// Creates the grant; a pair (user, agent) has at most one unrevoked grant, so a second
    /// is a conflict, unless `supersede` retires the pair's old one in the same transaction.
    CreateDelegationGrant {
        grant: &'a DelegationGrant,
        supersede: Option<Supersede<'a>>,
    },
    /// Marks the grant revoked at `event.created_at` and appends `event`. A grant already
    /// revoked is `NotFound`.
    RevokeDelegationGrant {
        id: &'a str,
        event: &'a NewRevocation,
    },
    AppendRevocation(&'a NewRevocation),
    /// A name already taken in the tenant is a conflict.
    CreateOAuthClient(&'a OAuthClient),
    DeleteOAuthClient(&'a ClientId),
    /// Creates the user and the invitation that enrolls them, together.
    CreateInvite {
        user: &'a Principal,
        invite: &'a Invite,
    },
    /// Marks the invitation used and stores the user's TOTP credential (replacing one they
    /// had), only if the invitation is unused and unexpired at `now`; else `NotFound`.
    CompleteEnrollment {
        invite: &'a str,
        totp: &'a TotpCredential,
        now: i64,
    },
}

/// A grant to retire before another is created for the same pair (one that expired without
/// being revoked still holds the pair's place).
#[derive(Debug, Clone, Copy)]
pub struct Supersede<'a> {
    pub grant: &'a str,
    pub event: &'a NewRevocation,
}

impl Change<'_> {
    /// Whether the change may append to the revocation log (a backend that orders appends
    /// must take its lock before anything else).
    pub fn appends_revocation(&self) -> bool {
        match self {
            Self::CreateHoneytoken { .. }
            | Self::DisablePrincipal { .. }
            | Self::DisableTenant { .. }
            | Self::RevokeDelegationGrant { .. }
            | Self::AppendRevocation(_) => true,
            Self::CreateDelegationGrant { supersede, .. } => supersede.is_some(),
            _ => false,
        }
    }
}

/// What a change produced that its caller could not know beforehand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The revocation the change appended, with the `seq` drawn inside its transaction.
    pub revocation: Option<Revocation>,
    /// After a key rotation, every signing key as the rotation left them.
    pub signing_keys: Vec<SigningKeyRecord>,
}

/// Renders an answer from what the change produced, inside the change's transaction.
pub type RenderAnswer<'a> =
    &'a (dyn Fn(&Applied) -> Result<String, serde_json::Error> + Send + Sync);

/// What a change leaves on record in its own transaction; the default records nothing.
#[derive(Default)]
pub struct ChangeRecord<'a> {
    /// Completes the caller's `Idempotency-Key` reservation with the call's answer.
    pub answer: Option<IdempotentAnswer<'a>>,
    /// The change's audit entry, kept in the outbox until the audit log has it.
    pub audit: Option<OutboxEntry>,
}

/// The answer to replay for a reserved `Idempotency-Key`.
pub struct IdempotentAnswer<'a> {
    pub key: &'a str,
    /// The `now` with which
    /// [`idempotency_begin`](crate::IdempotencyStore::idempotency_begin) reserved the key. A
    /// caller that took an abandoned reservation over reset it, so a holder presumed dead that
    /// commits after all finds the key no longer its own, and its change is refused rather
    /// than applied twice.
    pub reserved_at: i64,
    pub status: u16,
    /// The body, rendered once the change has been made (a revocation's `seq` is known only
    /// then).
    pub body: RenderAnswer<'a>,
}

/// An audit entry waiting to be appended to the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Unique per change; the caller chooses it, so it can find the row again.
    pub id: String,
    /// The entry as the audit log's JSON.
    pub entry: String,
    /// From this instant a drainer may take the entry, presuming that the call which wrote it
    /// will not append it itself; until then it is that call's to append.
    pub due_at: i64,
}
