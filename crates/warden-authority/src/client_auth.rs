//! Client authentication at the token endpoint: `private_key_jwt` (RFC 7523 §2.2) with the
//! client's registered Ed25519 key, or `client_secret_basic` (RFC 6749 §2.3.1) for tools
//! that can do nothing else. Exactly one method per request.
//!
//! The credentials are parsed once per request ([`ClientAuthentication::parse`]): the same
//! parse serves the honeytoken check before authentication and the authentication itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use warden_core::claims::AssertionClaims;
use warden_core::crypto::client_secret::is_minted;
use warden_core::crypto::{verify_legacy_secret, StoredSecret};
use warden_core::jws::UnverifiedToken;
use warden_core::token::TypeRule;
use warden_core::{PrincipalId, TokenError, Validation};
use warden_store::{AssertionJti, Principal, Tenant};
use zeroize::Zeroizing;

use crate::client_cache::Client;
use crate::error::OAuthError;
use crate::Authority;

pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client that proved who it is; it and its tenant are enabled.
pub struct AuthenticatedClient(Arc<Client>);

impl AuthenticatedClient {
    pub fn principal(&self) -> &Principal {
        &self.0.principal
    }

    pub fn tenant(&self) -> &Tenant {
        &self.0.tenant
    }
}

/// How the client proves who it is, parsed once from a request: the assertion it sent
/// (`private_key_jwt`), its Basic credentials, or neither. Parsing refuses nothing; what is
/// wrong is refused by [`authenticate`], in its order.
pub struct ClientAuthentication<'r> {
    /// `client_assertion`, parsed unverified (or why it does not parse).
    assertion: Option<Result<Assertion<'r>, TokenError>>,
    /// `client_assertion_type`.
    assertion_type: Option<&'r str>,
    /// The `Authorization: Basic` credentials (`None` inside: malformed).
    basic: Option<Option<Basic>>,
    /// The `client_id` parameter.
    client_id: Option<&'r str>,
    /// Whether a `client_secret` parameter was sent (`client_secret_post`, refused).
    secret_post: bool,
}

/// A client assertion that parses, not yet verified.
struct Assertion<'r> {
    token: UnverifiedToken<'r>,
    claims: AssertionClaims,
}

/// RFC 6749 §2.3.1 credentials, form-decoded.
struct Basic {
    id: String,
    secret: Zeroizing<String>,
}

impl<'r> ClientAuthentication<'r> {
    pub fn parse(headers: &HeaderMap, params: &'r HashMap<String, String>) -> Self {
        let assertion = params.get("client_assertion").map(|a| {
            let token = UnverifiedToken::parse(a)?;
            let claims = token.claims_unverified::<AssertionClaims>()?;
            Ok(Assertion { token, claims })
        });
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .map(Basic::parse);
        Self {
            assertion,
            assertion_type: params.get("client_assertion_type").map(String::as_str),
            basic,
            client_id: params.get("client_id").map(String::as_str),
            secret_post: params.contains_key("client_secret"),
        }
    }

    /// The client id the request claims, before anything is verified: for spotting
    /// honeytoken credentials, never for a decision.
    pub fn claimed_id(&self) -> Option<&str> {
        if let Some(a) = &self.assertion {
            return a.as_ref().ok().map(|a| a.claims.iss.as_str());
        }
        if let Some(b) = &self.basic {
            return b.as_ref().map(|b| b.id.as_str());
        }
        self.client_id
    }
}

impl Basic {
    fn parse(credentials: &str) -> Option<Self> {
        let decoded = STANDARD.decode(credentials.trim()).ok()?;
        let decoded = Zeroizing::new(String::from_utf8(decoded).ok()?);
        let (id, secret) = decoded.split_once(':')?;
        Some(Self {
            id: form_decode(id),
            secret: Zeroizing::new(form_decode(secret)),
        })
    }
}

/// Authenticates the client of a request from `peer`. A client or address that has spent
/// its budget of failures is refused `429` before its credentials are looked at; a failure
/// spends from both budgets (the client's only if it exists).
pub async fn authenticate(
    a: &Authority,
    credentials: ClientAuthentication<'_>,
    peer: Option<IpAddr>,
) -> Result<AuthenticatedClient, OAuthError> {
    if credentials.secret_post {
        return Err(OAuthError::invalid_client(
            "client_secret_post is not supported; use private_key_jwt or client_secret_basic",
        ));
    }
    a.auth_throttle.check(credentials.claimed_id(), peer)?;
    let client_id = credentials.client_id;
    let proved = match (credentials.assertion, credentials.basic) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "more than one client authentication method",
            ))
        }
        (Some(assertion), None) => {
            private_key_jwt(a, client_id, credentials.assertion_type, assertion).await
        }
        (None, Some(basic)) => client_secret_basic(a, client_id, basic)
            .await
            .map_err(|f| Failed {
                error: f.error.with_challenge("Basic"),
                ..f
            }),
        (None, None) => {
            return Err(OAuthError::invalid_client(
                "client authentication is required (private_key_jwt or client_secret_basic)",
            ))
        }
    };
    let client = match proved {
        Ok(client) => client,
        Err(Failed { error, client }) => {
            // Only a credential that did not prove its client spends a budget: a store
            // outage is nobody's failed attempt.
            if error.code == "invalid_client" {
                a.auth_throttle.failed(client.as_ref(), peer)?;
            }
            return Err(error);
        }
    };
    // Disabled state is only revealed to a client that proved its identity.
    if client.principal.disabled {
        return Err(OAuthError::invalid_client("client is disabled"));
    }
    if client.principal.revoked.is_some() {
        return Err(OAuthError::invalid_client(
            "client is revoked; it gets no token until it is reinstated",
        ));
    }
    if client.tenant.disabled {
        return Err(OAuthError::invalid_client("client's tenant is disabled"));
    }
    Ok(AuthenticatedClient(client))
}

/// Credentials that did not prove their client: why, and the client they named if it
/// exists (whose budget the failure spends).
struct Failed {
    error: OAuthError,
    client: Option<PrincipalId>,
}

impl From<OAuthError> for Failed {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            client: None,
        }
    }
}

impl Failed {
    fn against(client: &Client) -> impl FnOnce(OAuthError) -> Self + '_ {
        |error| Self {
            error,
            client: Some(client.principal.id.clone()),
        }
    }
}

async fn private_key_jwt(
    a: &Authority,
    client_id: Option<&str>,
    assertion_type: Option<&str>,
    assertion: Result<Assertion<'_>, TokenError>,
) -> Result<Arc<Client>, Failed> {
    if assertion_type != Some(JWT_BEARER_ASSERTION) {
        return Err(OAuthError::invalid_client(format!(
            "client_assertion_type must be `{JWT_BEARER_ASSERTION}`"
        ))
        .into());
    }
    // The assertion names its client; its key is looked up before anything is trusted.
    let assertion = assertion.map_err(bad_assertion)?;
    let unverified = &assertion.claims;
    if unverified.iss != unverified.sub {
        return Err(OAuthError::invalid_client(
            "client assertion `iss` and `sub` must both be the client id",
        )
        .into());
    }
    if client_id.is_some_and(|id| id != unverified.sub) {
        return Err(
            OAuthError::invalid_client("client_id does not match the client assertion").into(),
        );
    }
    let client = find_client(a, &unverified.sub).await?;
    verify_assertion(a, &client, assertion.token)
        .await
        .map_err(Failed::against(&client))?;
    key_in_date(a, &client)?;
    Ok(client)
}

/// A key past its tenant's `max_client_key_age` is refused, said only to a client that
/// proved it holds the key (and not counted as a failed authentication).
fn key_in_date(a: &Authority, client: &Client) -> Result<(), OAuthError> {
    let max_age = client
        .tenant
        .max_client_key_age_secs
        .unwrap_or(a.config.max_client_key_age_secs);
    let now = a.now();
    match client.principal.key_registered_at {
        Some(registered) if now > registered.saturating_add(max_age) => {
            Err(OAuthError::invalid_client(format!(
                "the client's key was registered {} days ago, beyond its tenant's \
                 max_client_key_age of {} days; register a new one \
                 (warden principal rotate-key)",
                (now - registered) / 86_400,
                max_age / 86_400
            )))
        }
        _ => Ok(()),
    }
}

fn bad_assertion(e: TokenError) -> OAuthError {
    OAuthError::invalid_client(format!("client assertion: {e}"))
}

/// Checks the assertion's signature with `client`'s key, its claims, and that its `jti` is
/// new.
async fn verify_assertion(
    a: &Authority,
    client: &Client,
    token: UnverifiedToken<'_>,
) -> Result<(), OAuthError> {
    let principal = &client.principal;
    let Some((registered_kid, key)) = &client.key else {
        return Err(OAuthError::invalid_client(
            "client has no registered public key",
        ));
    };
    if let (Some(want), Some(got)) = (registered_kid.as_deref(), token.header().kid.as_deref()) {
        if want != got {
            return Err(OAuthError::invalid_client(format!(
                "client assertion `kid` `{got}` is not the client's registered key"
            )));
        }
    }
    let now = a.now();
    let validation = Validation {
        issuers: vec![principal.id.to_string()],
        // Both audiences occur in the wild: Authlib and PyJWT use the token endpoint,
        // openid-client the issuer.
        audiences: vec![a.config.token_endpoint(), a.config.issuer.clone()],
        typ: TypeRule::PlainJwt,
        leeway: a.config.leeway_secs,
        max_lifetime: Some(a.config.assertion_max_lifetime_secs),
    };
    let verified = token
        .verify::<AssertionClaims>(key, &validation, now)
        .map_err(bad_assertion)?;
    let claims = verified.claims();
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(OAuthError::invalid_client(
            "client assertion `jti` must be 1 to 256 characters",
        ));
    }
    // Kept until the assertion could no longer pass the expiry check.
    let fresh = a
        .jtis
        .record(AssertionJti {
            client_id: principal.id.to_string(),
            jti: claims.jti.clone(),
            expires_at: claims.exp + a.config.leeway_secs,
        })
        .await?;
    if !fresh {
        return Err(OAuthError::invalid_client(
            "client assertion `jti` was already used",
        ));
    }
    Ok(())
}

async fn client_secret_basic(
    a: &Authority,
    client_id: Option<&str>,
    basic: Option<Basic>,
) -> Result<Arc<Client>, Failed> {
    let Basic { id, secret } =
        basic.ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
    if client_id.is_some_and(|p| p != id) {
        return Err(
            OAuthError::invalid_client("client_id does not match the Basic credentials").into(),
        );
    }
    let client = find_client(a, &id).await?;
    check_secret(a, &client, secret)
        .await
        .map_err(Failed::against(&client))?;
    Ok(client)
}

/// Checks `secret` against what the store keeps of `client`'s: a digest with one HMAC, a
/// legacy Argon2id hash the slow way, which a match then replaces by a digest.
async fn check_secret(
    a: &Authority,
    client: &Client,
    secret: Zeroizing<String>,
) -> Result<(), OAuthError> {
    let wrong = || OAuthError::invalid_client("client secret is wrong");
    let Some(stored) = client.principal.secret_hash.as_deref() else {
        return Err(OAuthError::invalid_client("client has no secret"));
    };
    match StoredSecret::parse(stored) {
        Ok(StoredSecret::Digest(digest)) => {
            if a.secret_key.verify(secret.as_bytes(), &digest) {
                Ok(())
            } else {
                Err(wrong())
            }
        }
        Ok(StoredSecret::Argon2id(phc)) => {
            let phc_owned = phc.to_owned();
            // Argon2 is deliberately slow: keep it off the async workers.
            let checked = tokio::task::spawn_blocking(move || {
                let ok = verify_legacy_secret(secret.as_bytes(), &phc_owned);
                (ok, secret)
            })
            .await;
            let Ok((true, secret)) = checked else {
                return Err(wrong());
            };
            upgrade_legacy(a, client, phc, &secret).await;
            Ok(())
        }
        Err(e) => {
            tracing::error!(principal = %client.principal.id, error = %e, "client secret cannot be checked");
            Err(wrong())
        }
    }
}

/// Replaces a legacy hash that `secret` just matched by its digest, so that no later check
/// of it costs an Argon2id run. A secret of a form Warden never minted keeps its slow hash;
/// a failed write is only logged (the next success tries again).
async fn upgrade_legacy(a: &Authority, client: &Client, phc: &str, secret: &str) {
    if !is_minted(secret) {
        return;
    }
    let id = &client.principal.id;
    let digest = a.secret_key.digest(secret.as_bytes());
    match a
        .store
        .upgrade_principal_secret_hash(id, phc, &digest)
        .await
    {
        Ok(()) => {
            a.clients.forget(id);
            tracing::info!(principal = %id, "legacy client secret hash replaced by a digest");
        }
        Err(e) => {
            tracing::warn!(principal = %id, error = %e, "replacing a legacy client secret hash failed")
        }
    }
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
fn form_decode(s: &str) -> String {
    form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn find_client(a: &Authority, id: &str) -> Result<Arc<Client>, OAuthError> {
    let unknown = || OAuthError::invalid_client("unknown client");
    let id = PrincipalId::parse(id).map_err(|_| unknown())?;
    a.clients
        .get(a.store.as_ref(), &id)
        .await?
        .ok_or_else(unknown)
}
