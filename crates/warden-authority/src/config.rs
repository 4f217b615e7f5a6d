//! The authority's settings, with the defaults a deployment starts from.

use std::time::Duration;

/// Settings of one authority; validated by [`AuthorityConfig::validate`].
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// The `iss` of every token, and the base of every endpoint URL.
    pub issuer: String,
    /// `aud` of tokens requested without `resource`; the deployment's own gateway accepts it.
    pub default_audience: String,
    /// Lifetime of issued access tokens unless the tenant's ceiling is lower.
    pub token_ttl_secs: i64,
    /// No tenant may set a longer token lifetime; also how long a retired signing key stays
    /// published.
    pub max_token_ttl_secs: i64,
    /// Client assertions may not expire further ahead than this.
    pub assertion_max_lifetime_secs: i64,
    /// Clock skew tolerated on every time claim.
    pub leeway_secs: i64,
    /// How long the active signing key signs before the next one takes over (default 30
    /// days).
    pub signing_key_rotation_secs: i64,
    /// How long the next key is published before a scheduled rotation lets it sign (default
    /// an hour: far more than the JWKS's `max-age` or a gateway's refresh interval).
    pub signing_key_publish_lead_secs: i64,
    /// How old a client's registered key may get before it is refused, unless its tenant
    /// says otherwise (default 90 days).
    pub max_client_key_age_secs: i64,
    pub limits: Limits,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl_secs: i64,
    /// A reservation older than this with no answer is considered abandoned.
    pub idempotency_abandon_secs: i64,
    /// How long the token endpoint may reuse a client's record. Changes made through this
    /// authority take effect at once regardless; this bounds the staleness of changes made
    /// elsewhere.
    pub client_cache_ttl: Duration,
    pub client_cache_entries: usize,
    /// Longest `act` chain a token exchange may produce.
    pub max_delegation_depth: usize,
    /// How far a DPoP proof's `iat` may lie from now, either way.
    pub dpop_max_skew_secs: i64,
    /// DPoP proof `jti`s remembered at once; when full of live ones, proofs are refused.
    pub dpop_replay_capacity: usize,
    /// A revocation stream subscriber hears at least this often, events or not.
    pub revocation_heartbeat: Duration,
    /// Where security alerts (honeytoken use) are POSTed as signed Security Event Tokens.
    pub alert_webhook: Option<String>,
    /// How long a change's audit entry stays its own call's to append before a drainer
    /// presumes the call dead and appends it (see `journal`).
    pub audit_outbox_grace_secs: i64,
    /// How many failed client authentications the token endpoint takes before it answers
    /// `429` without checking the credentials.
    pub client_auth_budgets: ClientAuthBudgets,
    /// How many failed sign-ins a person's name, and an address, take before sign-in is
    /// locked out for them.
    pub sign_in_budgets: SignInBudgets,
    /// Idle and absolute timeouts of people's sessions.
    pub sessions: crate::people::SessionPolicy,
    /// How long an invitation to enroll stays usable (default 7 days).
    pub invite_ttl_secs: i64,
    /// A fault to inject, for tests of what a crash leaves behind; `None` in any deployment.
    pub fault: Option<Fault>,
}

/// Budgets of failed sign-ins, per person named and per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInBudgets {
    pub per_person: FailureBudget,
    pub per_address: FailureBudget,
    pub max_tracked: usize,
}

impl Default for SignInBudgets {
    fn default() -> Self {
        Self {
            // A person mistyping a few times; not a search of the million codes.
            per_person: FailureBudget {
                burst: 5,
                per_minute: 1,
            },
            per_address: FailureBudget {
                burst: 20,
                per_minute: 10,
            },
            max_tracked: 100_000,
        }
    }
}

/// Budgets of failed client authentication at the token endpoint, one per client id (only
/// of clients that exist) and one per client address (an IPv6 address counts by its /64).
/// Successful authentications spend nothing.
#[derive(Debug, Clone)]
pub struct ClientAuthBudgets {
    pub per_client: FailureBudget,
    pub per_address: FailureBudget,
    /// Most client ids, and most addresses, tracked at once; past it the idle ones are
    /// forgotten, and if all are busy the budgets of that kind start afresh.
    pub max_tracked: usize,
}

/// `burst` failures at once, then `per_minute` more a minute (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureBudget {
    pub burst: u32,
    pub per_minute: u32,
}

impl Default for ClientAuthBudgets {
    fn default() -> Self {
        Self {
            // One machine's worth of a misconfigured tool, not a search.
            per_address: FailureBudget {
                burst: 20,
                per_minute: 60,
            },
            // Many addresses at once against one client: higher, since every address may
            // also be spending its own budget, and reaching it locks the client out too.
            per_client: FailureBudget {
                burst: 50,
                per_minute: 300,
            },
            max_tracked: 100_000,
        }
    }
}

/// A fault the authority injects on purpose, so that a test can produce a crash at an exact
/// point of a real process. Armed only from the `WARDEN_FAULT` environment variable of
/// `warden serve`, in the form that [`Fault::from_str`](std::str::FromStr) reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `hold-answer-after-commit:PREFIX`: once a change made under an `Idempotency-Key`
    /// starting with `PREFIX` has committed, its answer is held (until the request timeout
    /// answers `503`), so the test can kill the process between the commit and the answer.
    HoldAnswerAfterCommit { key_prefix: String },
    /// `hold-after-publish:MS`: `warden serve` waits MS milliseconds after it has published
    /// its address (`server.json`) before it runs, so a test can signal it in that moment.
    HoldAfterPublish { ms: u64 },
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("hold-answer-after-commit", prefix)) if !prefix.is_empty() => {
                Ok(Self::HoldAnswerAfterCommit {
                    key_prefix: prefix.to_owned(),
                })
            }
            Some(("hold-after-publish", ms)) => ms
                .parse()
                .map(|ms| Self::HoldAfterPublish { ms })
                .map_err(|_| format!("fault `{s}`: milliseconds expected")),
            _ => Err(format!(
                "unknown fault `{s}`: the faults are `hold-answer-after-commit:KEY_PREFIX` and \
                 `hold-after-publish:MS`"
            )),
        }
    }
}

/// Explicit bounds on what a client can make the authority read.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// hyper's read buffer, which bounds the request line plus headers.
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// How long a connection may take to send a request's headers; it also bounds how long
    /// a connection may sit idle, before its first request or between two.
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    /// Connections held open at once; one more is answered 503 and closed.
    pub max_connections: usize,
}

impl Limits {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: Limits::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl AuthorityConfig {
    pub const DEFAULT_TOKEN_TTL_SECS: i64 = 900;

    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            default_audience: "warden".into(),
            token_ttl_secs: Self::DEFAULT_TOKEN_TTL_SECS,
            max_token_ttl_secs: Self::DEFAULT_TOKEN_TTL_SECS,
            assertion_max_lifetime_secs: 300,
            leeway_secs: 30,
            signing_key_rotation_secs: 30 * 24 * 3600,
            signing_key_publish_lead_secs: 3600,
            max_client_key_age_secs: 90 * 24 * 3600,
            limits: Limits::default(),
            idempotency_ttl_secs: 24 * 3600,
            idempotency_abandon_secs: 60,
            client_cache_ttl: Duration::from_secs(10),
            client_cache_entries: 100_000,
            max_delegation_depth: 4,
            dpop_max_skew_secs: 60,
            dpop_replay_capacity: 1_000_000,
            revocation_heartbeat: Duration::from_secs(1),
            alert_webhook: None,
            audit_outbox_grace_secs: 60,
            client_auth_budgets: ClientAuthBudgets::default(),
            sign_in_budgets: SignInBudgets::default(),
            sessions: crate::people::SessionPolicy::default(),
            invite_ttl_secs: 7 * 24 * 3600,
            fault: None,
        }
    }

    /// The issuer's origin (`scheme://host[:port]`), which browsers name in `Origin`.
    pub fn issuer_origin(&self) -> String {
        url::Url::parse(&self.issuer)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| self.issuer.clone())
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.issuer)
    }

    pub fn introspection_endpoint(&self) -> String {
        format!("{}/oauth2/introspect", self.issuer)
    }

    pub fn revocation_endpoint(&self) -> String {
        format!("{}/oauth2/revoke", self.issuer)
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://"))
            || self.issuer.ends_with('/')
        {
            return Err(format!(
                "issuer `{}` must be an http(s) URL without a trailing slash",
                self.issuer
            ));
        }
        if self.token_ttl_secs <= 0 || self.token_ttl_secs > self.max_token_ttl_secs {
            return Err(format!(
                "token lifetime {} s must be positive and at most the ceiling {} s",
                self.token_ttl_secs, self.max_token_ttl_secs
            ));
        }
        if self.signing_key_rotation_secs < 60 || self.signing_key_publish_lead_secs < 0 {
            return Err(
                "signing key rotation must be at least 60 s and its publish lead not negative"
                    .into(),
            );
        }
        if self.default_audience.is_empty() {
            return Err("default audience is empty".into());
        }
        if self.max_delegation_depth == 0 {
            return Err("max delegation depth must be at least 1".into());
        }
        if self.revocation_heartbeat.is_zero() {
            return Err("revocation heartbeat must be positive".into());
        }
        if self.audit_outbox_grace_secs < 1 {
            return Err("the audit outbox grace period must be at least 1 s".into());
        }
        if self.limits.max_header_bytes < 8192 {
            return Err("max header bytes must be at least 8192".into());
        }
        let budgets = &self.client_auth_budgets;
        for (what, b) in [
            ("per client", budgets.per_client),
            ("per address", budgets.per_address),
        ] {
            if b.burst == 0 || b.per_minute == 0 {
                return Err(format!(
                    "the failed client authentication budget {what} needs a burst and a rate of at least 1"
                ));
            }
        }
        if budgets.max_tracked == 0 {
            return Err("failed client authentications must be tracked for at least 1 key".into());
        }
        if self.limits.max_connections == 0 {
            return Err("max connections must be at least 1".into());
        }
        Ok(())
    }
}
