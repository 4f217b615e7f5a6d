//! Warden's authority: the OAuth 2.0 token endpoint (client credentials with
//! `private_key_jwt` or `client_secret_basic`), RFC 8414 metadata, the JWKS, and the lifecycle
//! API for tenants, principals and signing keys.
//!
//! The authority is the only writer of identity state; it never verifies requests for
//! upstreams (that is the gateway's job).

mod activity;
pub mod admin;
pub mod admin_auth;
mod admin_client;
mod admin_gateway;
mod admin_honeytoken;
mod admin_invite;
mod admin_report;
mod admin_revocation;
pub mod alerts;
mod auth_throttle;
pub mod checkpoint_relay;
mod client_auth;
mod client_cache;
mod client_credentials;
pub mod config;
pub mod data_dir;
mod dpop;
pub mod error;
mod exchange;
mod grant;
mod http;
mod idempotency;
mod introspection;
mod issue;
pub mod journal;
mod jti;
pub mod keys;
mod metadata;
pub mod metrics;
mod oauth;
pub mod people;
pub mod readiness;
pub mod revocation;
pub mod server;
pub mod signer;
mod token_request;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use warden_core::crypto::{constant_time_eq, sha256, ClientSecretKey, SealingKey};
use warden_core::time::Clock;
use warden_store::Store;

pub use config::{AuthorityConfig, Limits};
pub use keys::{Keyring, KeyringError};
pub use signer::{SignError, Signer};

/// One authority: configuration, state and keys, shared by every request.
pub struct Authority {
    pub config: AuthorityConfig,
    pub store: Arc<dyn Store>,
    pub keys: Arc<Keyring>,
    pub alerts: alerts::Alerts,
    activity: activity::ActivityRecorder,
    /// Where every issuance, refusal and change is recorded; the authority has no other way
    /// to run.
    audit: warden_audit::AuditLog,
    /// The audit log's checkpoints, out to every gateway on the revocation stream.
    pub checkpoints: Arc<checkpoint_relay::CheckpointRelay>,
    pub clock: Arc<dyn Clock>,
    pub revocations: Arc<revocation::RevocationHub>,
    /// What `/metrics` on the ops listener reports.
    pub metrics: metrics::Metrics,
    clients: client_cache::ClientCache,
    jtis: jti::JtiRecorder,
    dpop_replay: std::sync::Mutex<warden_core::replay::ReplayCache>,
    admin_token_hash: [u8; 32],
    /// Client-secret digests are made with it, derived from the master key.
    secret_key: ClientSecretKey,
    auth_throttle: auth_throttle::AuthThrottle,
    /// Seals people's TOTP secrets, under a key derived from the master key.
    totp: people::TotpSealer,
    sign_in_throttle: people::SignInThrottle,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error("loading revocations: {0}")]
    Revocations(#[from] warden_store::StoreError),
}

impl Authority {
    /// Validates the configuration and loads (on first start, creates) the signing keys.
    /// Every event from the first request on is recorded in `audit`.
    pub async fn start(
        config: AuthorityConfig,
        store: Arc<dyn Store>,
        master_key: SealingKey,
        admin_token: &str,
        clock: Arc<dyn Clock>,
        audit: warden_audit::AuditLog,
    ) -> Result<Arc<Self>, StartError> {
        config.validate().map_err(StartError::Config)?;
        let secret_key = ClientSecretKey::derive(&master_key);
        let totp = people::TotpSealer::derive(&master_key);
        let sign_in_throttle = people::SignInThrottle::new(&config.sign_in_budgets);
        let auth_throttle = auth_throttle::AuthThrottle::new(&config.client_auth_budgets);
        let keys = Arc::new(Keyring::load_or_init(store.as_ref(), master_key, clock.now()).await?);
        let alerts = alerts::Alerts::start(
            config.alert_webhook.clone(),
            config.issuer.clone(),
            Arc::clone(&keys),
        );
        let metrics = metrics::Metrics::default();
        let clients = client_cache::ClientCache::new(
            config.client_cache_ttl,
            config.client_cache_entries,
            metrics.store_histogram(metrics::StoreOp::ClientLookup),
        );
        let revocations = Arc::new(revocation::RevocationHub::load(store.as_ref()).await?);
        revocations.spawn_follower(Arc::clone(&store));
        let authority = Arc::new(Self {
            activity: activity::ActivityRecorder::default(),
            checkpoints: Arc::new(checkpoint_relay::CheckpointRelay::new(audit.checkpoints())),
            audit,
            alerts,
            revocations,
            dpop_replay: std::sync::Mutex::new(warden_core::replay::ReplayCache::new(
                config.dpop_replay_capacity,
            )),
            clients,
            jtis: jti::JtiRecorder::spawn(
                Arc::clone(&store),
                metrics.store_histogram(metrics::StoreOp::RecordJtis),
            ),
            metrics,
            config,
            store,
            keys,
            clock,
            admin_token_hash: sha256(admin_token.as_bytes()),
            secret_key,
            auth_throttle,
            totp,
            sign_in_throttle,
        });
        authority.forget_clients_on_revocation();
        Ok(authority)
    }

    /// A revocation made anywhere (this replica or another, heard through the store) drops
    /// the client cache, so a principal another replica revoked is refused here as soon as
    /// its event arrives, not only once the cache entry ages out. Revocations are rare; the
    /// cache refills at one lookup per client.
    fn forget_clients_on_revocation(self: &Arc<Self>) {
        let mut head = self.revocations.subscribe();
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            while head.changed().await.is_ok() {
                match this.upgrade() {
                    Some(a) => a.clients.invalidate(),
                    None => break,
                }
            }
        });
    }

    /// Signs a checkpoint over everything logged so far and waits, at most `limit`, until
    /// every gateway on the stream has been sent it: a clean stop calls it before it closes
    /// the streams, so each gateway witnesses the log as it was at the stop. False if the
    /// log could not sign or some gateway was not reached in time (it is logged).
    pub async fn checkpoint_to_gateways(&self, limit: std::time::Duration) -> bool {
        if let Err(e) = self.audit.checkpoint().await {
            tracing::warn!(error = %e, "no checkpoint for the gateways at the stop");
            return false;
        }
        let all = self.checkpoints.all_delivered(limit).await;
        if !all {
            tracing::warn!(
                waited_ms = limit.as_millis(),
                "some gateway on the revocation stream was not sent the last checkpoint"
            );
        }
        all
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Verifies a token this authority issued (never a gateway's internal token), for any
    /// audience: exchange, introspection and revocation take tokens meant for elsewhere.
    /// What it grants is read from the result ([`warden_core::VerifiedToken::access`]).
    pub fn verify_own_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<warden_core::VerifiedToken<warden_core::AccessClaims>, warden_core::TokenError>
    {
        let parsed = warden_core::jws::UnverifiedToken::parse(token)?;
        let audiences = parsed
            .claims_unverified::<warden_core::AccessClaims>()?
            .aud
            .iter()
            .map(str::to_owned)
            .collect();
        let validation = warden_core::Validation {
            leeway: self.config.leeway_secs,
            ..warden_core::Validation::access_token(&self.config.issuer, audiences)
        };
        parsed.verify_with(&self.keys.current().signing, &validation, now)
    }

    /// Reports a honeytoken's use; the caller then refuses as it would any bad credential.
    pub fn honeytoken_used(
        &self,
        principal: &str,
        at: &'static str,
        client: Option<std::net::IpAddr>,
    ) {
        self.alerts.raise(alerts::Alert {
            severity: "high",
            kind: "honeytoken_used",
            principal: principal.to_owned(),
            at,
            client_ip: client.map(|ip| ip.to_string()),
            time: self.now(),
        });
    }

    /// The audience (RFC 8707 resource) of tokens for the admin API: `<issuer>/admin/v1`.
    pub fn admin_audience(&self) -> String {
        format!(
            "{}{}",
            self.config.issuer.trim_end_matches('/'),
            admin_auth::ADMIN_PATH
        )
    }

    /// Verifies a token this authority issued for its own admin API, and for nothing else.
    pub(crate) fn verify_admin_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<warden_core::VerifiedToken<warden_core::AccessClaims>, warden_core::TokenError>
    {
        let validation = warden_core::Validation {
            leeway: self.config.leeway_secs,
            ..warden_core::Validation::access_token(
                &self.config.issuer,
                vec![self.admin_audience()],
            )
        };
        warden_core::jws::UnverifiedToken::parse(token)?.verify_with(
            &self.keys.current().signing,
            &validation,
            now,
        )
    }

    fn is_admin_token(&self, presented: &str) -> bool {
        constant_time_eq(&sha256(presented.as_bytes()), &self.admin_token_hash)
    }

    /// How long a retired signing key stays in the JWKS: the longest token it can have
    /// signed, plus the leeway verifiers grant.
    pub fn retired_key_publish_secs(&self) -> i64 {
        self.config.max_token_ttl_secs + self.config.leeway_secs
    }

    /// Rotates the signing keys (see [`keys`]).
    pub async fn rotate_keys(&self) -> Result<Arc<keys::KeyringState>, KeyringError> {
        self.keys
            .rotate(
                self.store.as_ref(),
                self.now(),
                self.retired_key_publish_secs(),
                None,
            )
            .await
    }

    /// Rotates the signing keys once the active one has signed for
    /// `signing_key_rotation_secs`, provided the next key has been published for
    /// `signing_key_publish_lead_secs` (else it waits for that). Two replicas deciding at
    /// once rotate once: the store refuses a second rotation whose next key is brand new.
    async fn rotate_keys_if_due(&self, now: i64) -> Result<(), KeyringError> {
        let state = self.keys.current();
        let of = |s: warden_store::KeyState| state.records.iter().find(|r| r.state == s);
        let (Some(active), Some(next)) = (
            of(warden_store::KeyState::Active),
            of(warden_store::KeyState::Next),
        ) else {
            return Ok(());
        };
        let since = active.activated_at.unwrap_or(active.created_at);
        let next_created_by = now - self.config.signing_key_publish_lead_secs;
        if now < since.saturating_add(self.config.signing_key_rotation_secs)
            || next.created_at > next_created_by
        {
            return Ok(());
        }
        let retired = active.kid.clone();
        let rotated = self
            .keys
            .rotate(
                self.store.as_ref(),
                now,
                self.retired_key_publish_secs(),
                Some(next_created_by),
            )
            .await;
        let state = match rotated {
            Ok(state) => state,
            // Another replica rotated first.
            Err(KeyringError::Store(warden_store::StoreError::Conflict(_))) => return Ok(()),
            Err(e) => return Err(e),
        };
        tracing::info!(retired = %retired, active = %state.active_kid, "signing keys rotated on schedule");
        let mut entry = warden_audit::Entry::new(
            now * 1000,
            warden_audit::Kind::Lifecycle,
            "signing keys rotated on schedule",
        );
        entry.actor = Some("warden".into());
        entry.resource = Some(state.active_kid.clone());
        entry.decision = warden_audit::Decision::Allow;
        if let Err(e) = self.audit(entry).await {
            tracing::warn!(error = %e, "the scheduled rotation is not on record");
        }
        Ok(())
    }

    /// Records `entry` and returns once it is durable.
    pub async fn audit(&self, entry: warden_audit::Entry) -> Result<(), warden_audit::AppendError> {
        self.audit.append(&entry).await.map(|_| ())
    }

    /// Records a person's sign-in, sign-out or failed attempt, without waiting.
    pub(crate) fn audit_sign_in(
        &self,
        user: &warden_store::Principal,
        peer: Option<std::net::IpAddr>,
        allowed: bool,
        what: &str,
    ) {
        let mut entry =
            warden_audit::Entry::new(self.now() * 1000, warden_audit::Kind::Decision, "sign-in");
        entry.actor = Some(user.id.to_string());
        entry.subject = Some(user.id.to_string());
        entry.client_ip = peer;
        entry.decision = if allowed {
            warden_audit::Decision::Allow
        } else {
            warden_audit::Decision::Deny
        };
        entry.reasons = vec![what.to_owned()];
        self.audit_nowait(entry);
    }

    /// Records `entry` without waiting; a full queue is logged, never waited on (for refusals
    /// and alerts, which an attacker can multiply). During an outage the log has said so
    /// once and counts what it refuses, so refusals are not logged one by one.
    pub fn audit_nowait(&self, entry: warden_audit::Entry) {
        match self.audit.try_append(&entry) {
            Ok(())
            | Err(warden_audit::TryAppendError::Append(warden_audit::AppendError::Unavailable(
                _,
            ))) => {}
            Err(e) => {
                tracing::warn!(error = %e, action = %entry.action, "audit entry not recorded");
            }
        }
    }

    /// The audit log.
    pub fn audit_log(&self) -> &warden_audit::AuditLog {
        &self.audit
    }

    /// Whether the audit log can write.
    pub fn audit_status(&self) -> warden_audit::LogStatus {
        self.audit.status()
    }

    /// Merges the activity gathered since the last flush into the store.
    pub async fn flush_activity(&self) -> Result<(), warden_store::StoreError> {
        let pending = self.activity.drain();
        if pending.is_empty() {
            return Ok(());
        }
        self.store.record_activity(&pending).await
    }

    /// Latest time at which a token issued now can still be accepted anywhere.
    pub fn token_horizon(&self, now: i64) -> i64 {
        now + self.config.max_token_ttl_secs + self.config.leeway_secs
    }

    /// Expired assertion `jti`s, old idempotency keys, retired signing keys and revocations
    /// past their horizon go away; keys registered by other replicas come in.
    pub async fn maintain(&self) {
        let now = self.now();
        let results = [
            self.store
                .prune_assertion_jtis(now - self.config.leeway_secs)
                .await
                .err()
                .map(|e| e.to_string()),
            self.store
                .prune_idempotency(now - self.config.idempotency_ttl_secs)
                .await
                .err()
                .map(|e| e.to_string()),
            self.keys
                .prune(self.store.as_ref(), now)
                .await
                .err()
                .map(|e| e.to_string()),
            self.rotate_keys_if_due(now)
                .await
                .err()
                .map(|e| e.to_string()),
            // Other replicas rotate keys and register gateways too.
            self.keys
                .reload(self.store.as_ref(), now)
                .await
                .err()
                .map(|e| e.to_string()),
            self.store
                .prune_revocations(now)
                .await
                .err()
                .map(|e| e.to_string()),
        ];
        self.revocations.prune(now);
        crate::dpop::prune(self, now);
        self.auth_throttle.prune();
        self.sign_in_throttle.prune();
        if let Err(e) = self.flush_activity().await {
            tracing::warn!(error = %e, "recording activity failed; those times are lost");
        }
        // Entries of changes whose call died, or whose append failed, reach the log late
        // rather than never.
        if let Err(e) = self.drain_audit_outbox(journal::OutboxDrain::Due).await {
            tracing::warn!(error = %e, "draining the audit outbox failed; it will be retried");
        }
        for e in results.into_iter().flatten() {
            tracing::warn!(error = %e, "maintenance step failed; it will be retried");
        }
    }

    /// Runs [`Authority::maintain`] every `every` until the process ends.
    pub fn spawn_maintenance(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                me.maintain().await;
            }
        })
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The authority's public HTTP surface. Of the ops endpoints only the plain liveness
/// `/healthz` is here (for load balancers); `/readyz` and `/metrics` are on
/// [`readiness::ops_router`], served on a listener of its own.
pub fn router(authority: Arc<Authority>) -> Router {
    Router::new()
        .merge(metadata::routes())
        .merge(oauth::routes())
        .merge(readiness::routes())
        .merge(people::routes())
        .route(
            "/revocations/stream",
            axum::routing::get(revocation::stream),
        )
        .nest("/admin/v1", admin::routes(Arc::clone(&authority)))
        .fallback(http::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&authority),
            http::request_timeout,
        ))
        .with_state(authority)
}
