//! Token-signing keys: generated on first start, sealed at rest with the master key, and
//! rotated without a gap.
//!
//! There is always a *next* key published in the JWKS before it signs anything, so every
//! verifier that refreshed its key set since the last rotation already knows the key that
//! signs after the next one. On rotation the next key becomes *active* and the old active key
//! is *retired*: it stays published until every token it signed has expired.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::OsRng;
use warden_core::crypto::{SealingKey, SigningKey, SIGNATURE_LEN};
use warden_core::id::random_token_id;
use warden_core::jwks::{Jwk, JwkSet};
use warden_core::{KeySet, PublicKey};
use warden_store::{GatewayKeyRecord, KeyState, SigningKeyRecord, Store, StoreError};

use crate::signer::{SignError, Signer};

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("signing key `{0}` does not open with the master key (is WARDEN_MASTER_KEY right?)")]
    Unseal(String),
    #[error("stored signing key `{0}` is corrupt")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the authority signs with and publishes, swapped whole on every change.
pub struct KeyringState {
    pub active_kid: String,
    pub active: SigningKey,
    pub published: KeySet,
    /// The authority's own signing keys, without gateway keys: what a token presented back to
    /// the authority (exchange, introspection, revocation) must be signed with.
    pub signing: KeySet,
    /// The serialized JWKS document, built once per change rather than per request.
    pub jwks_json: Arc<[u8]>,
    pub records: Vec<SigningKeyRecord>,
}

/// The active key signs.
#[async_trait]
impl Signer for KeyringState {
    fn kid(&self) -> &str {
        &self.active_kid
    }

    async fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
        Ok(self.active.sign(message))
    }
}

pub struct Keyring {
    master: SealingKey,
    state: RwLock<Arc<KeyringState>>,
}

impl Keyring {
    /// Loads the keys, creating an active and a next key on first start.
    pub async fn load_or_init(
        store: &dyn Store,
        master: SealingKey,
        now: i64,
    ) -> Result<Self, KeyringError> {
        let mut records = store.signing_keys().await?;
        if !records.iter().any(|r| r.state == KeyState::Active) {
            if records.iter().any(|r| r.state == KeyState::Next) {
                let next = new_record(&master, now);
                store.rotate_signing_keys(&next, now, now).await?;
            } else {
                let mut active = new_record(&master, now);
                active.state = KeyState::Active;
                active.activated_at = Some(now);
                store.insert_signing_key(&active).await?;
                store.insert_signing_key(&new_record(&master, now)).await?;
            }
            records = store.signing_keys().await?;
        }
        let gateways = store.gateway_keys(now).await?;
        let state = build_state(&master, records, &gateways)?;
        Ok(Self {
            master,
            state: RwLock::new(Arc::new(state)),
        })
    }

    pub fn current(&self) -> Arc<KeyringState> {
        match self.state.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// What signs tokens now: the active key, taken whole so that a rotation in between
    /// never pairs one key's `kid` with another's signature.
    pub fn signer(&self) -> Arc<dyn Signer> {
        self.current()
    }

    /// Promotes the next key, retires the active one until `now + retire_publish_secs`, and
    /// publishes a fresh next key. With `next_created_by`, only if the next key was created
    /// by then (published long enough for verifiers to have fetched it); a next key younger
    /// than that is [`warden_store::StoreError::Conflict`], which is also what a second
    /// replica rotating at the same moment gets.
    pub async fn rotate(
        &self,
        store: &dyn Store,
        now: i64,
        retire_publish_secs: i64,
        next_created_by: Option<i64>,
    ) -> Result<Arc<KeyringState>, KeyringError> {
        let change = warden_store::Change::RotateSigningKeys {
            new_next: &new_record(&self.master, now),
            now,
            publish_until: now.saturating_add(retire_publish_secs),
            next_created_by,
        };
        store
            .apply(change, &warden_store::ChangeRecord::default())
            .await?;
        self.reload(store, now).await
    }

    /// A fresh key, sealed, to be published as the next key by a rotation
    /// ([`warden_store::Change::RotateSigningKeys`]) that a caller makes itself, with its
    /// change record; then [`Keyring::reload`].
    pub fn new_next_key(&self, now: i64) -> SigningKeyRecord {
        new_record(&self.master, now)
    }

    /// Drops retired keys past their publication period and expired gateway keys.
    pub async fn prune(&self, store: &dyn Store, now: i64) -> Result<(), KeyringError> {
        let pruned = store.prune_signing_keys(now).await? + store.prune_gateway_keys(now).await?;
        if pruned > 0 {
            self.reload(store, now).await?;
        }
        Ok(())
    }

    pub async fn reload(
        &self,
        store: &dyn Store,
        now: i64,
    ) -> Result<Arc<KeyringState>, KeyringError> {
        let gateways = store.gateway_keys(now).await?;
        let state = Arc::new(build_state(
            &self.master,
            store.signing_keys().await?,
            &gateways,
        )?);
        match self.state.write() {
            Ok(mut g) => *g = Arc::clone(&state),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&state),
        }
        Ok(state)
    }
}

fn new_record(master: &SealingKey, now: i64) -> SigningKeyRecord {
    let key = SigningKey::generate(&mut OsRng);
    let kid = random_token_id(&mut OsRng);
    let sealed = master.seal(&mut OsRng, key.to_bytes().as_ref(), kid.as_bytes());
    SigningKeyRecord {
        public_key: URL_SAFE_NO_PAD.encode(key.public_key().to_bytes()),
        sealed_private: URL_SAFE_NO_PAD.encode(sealed),
        kid,
        state: KeyState::Next,
        created_at: now,
        activated_at: None,
        publish_until: None,
    }
}

fn build_state(
    master: &SealingKey,
    records: Vec<SigningKeyRecord>,
    gateways: &[GatewayKeyRecord],
) -> Result<KeyringState, KeyringError> {
    let mut published = KeySet::new();
    let mut jwks = JwkSet::default();
    let mut active = None;
    for r in &records {
        let corrupt = || KeyringError::Corrupt(r.kid.clone());
        let public = URL_SAFE_NO_PAD
            .decode(&r.public_key)
            .ok()
            .and_then(|b| PublicKey::from_bytes(&b).ok())
            .ok_or_else(corrupt)?;
        published.insert(r.kid.clone(), public);
        jwks.keys
            .push(Jwk::from_public_key(&public, Some(r.kid.clone())));
        if r.state == KeyState::Active {
            let sealed = URL_SAFE_NO_PAD
                .decode(&r.sealed_private)
                .map_err(|_| corrupt())?;
            let secret = master
                .open(&sealed, r.kid.as_bytes())
                .map_err(|_| KeyringError::Unseal(r.kid.clone()))?;
            let key = SigningKey::from_bytes(&secret).map_err(|_| corrupt())?;
            if key.public_key() != public {
                return Err(corrupt());
            }
            active = Some((r.kid.clone(), key));
        }
    }
    let signing = published.clone();
    for g in gateways {
        // A gateway key never shadows a signing key. One that does not decode is skipped,
        // not fatal: registration validated it.
        if published.get(&g.kid).is_some() {
            continue;
        }
        if let Some(public) = URL_SAFE_NO_PAD
            .decode(&g.public_key)
            .ok()
            .and_then(|b| PublicKey::from_bytes(&b).ok())
        {
            published.insert(g.kid.clone(), public);
            jwks.keys
                .push(Jwk::from_public_key(&public, Some(g.kid.clone())));
        }
    }
    let (active_kid, active) = active.ok_or(KeyringError::Store(StoreError::NotFound(
        "active signing key",
    )))?;
    let jwks_json = serde_json::to_vec(&jwks)
        .map_err(|_| KeyringError::Corrupt("jwks".into()))?
        .into();
    Ok(KeyringState {
        active_kid,
        active,
        published,
        signing,
        jwks_json,
        records,
    })
}
