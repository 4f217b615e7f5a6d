//! Client authentication at the token endpoint: `private_key_jwt` (RFC 7523 §2.2) with the
//! client's registered Ed25519 key, or `client_secret_basic` (RFC 6749 §2.3.1) for tools
//! that can do nothing else. Exactly one method per request.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use warden_core::claims::AssertionClaims;
use warden_core::crypto::verify_secret;
use warden_core::jws::UnverifiedToken;
use warden_core::token::TypeRule;
use warden_core::{PrincipalId, Validation};
use warden_store::{AssertionJti, Principal, Tenant};

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

/// The client id a request claims, before anything is verified: for spotting honeytoken
/// credentials, never for a decision.
pub fn claimed_client_id(headers: &HeaderMap, params: &HashMap<String, String>) -> Option<String> {
    if let Some(a) = params.get("client_assertion") {
        return UnverifiedToken::parse(a)
            .ok()?
            .claims_unverified::<AssertionClaims>()
            .ok()
            .map(|c| c.iss);
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    if let Some(b) = basic {
        let decoded = String::from_utf8(STANDARD.decode(b.trim()).ok()?).ok()?;
        return decoded.split_once(':').map(|(id, _)| form_decode(id));
    }
    params.get("client_id").cloned()
}

pub async fn authenticate(
    a: &Authority,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<AuthenticatedClient, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let assertion = params.get("client_assertion");
    if params.contains_key("client_secret") {
        return Err(OAuthError::invalid_client(
            "client_secret_post is not supported; use private_key_jwt or client_secret_basic",
        ));
    }
    let client = match (assertion, basic) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "more than one client authentication method",
            ))
        }
        (Some(assertion), None) => private_key_jwt(a, params, assertion).await?,
        (None, Some(credentials)) => client_secret_basic(a, params, credentials)
            .await
            .map_err(|e| e.with_challenge("Basic"))?,
        (None, None) => {
            return Err(OAuthError::invalid_client(
                "client authentication is required (private_key_jwt or client_secret_basic)",
            ))
        }
    };
    // Disabled state is only revealed to a client that proved its identity.
    if client.principal.disabled {
        return Err(OAuthError::invalid_client("client is disabled"));
    }
    if client.tenant.disabled {
        return Err(OAuthError::invalid_client("client's tenant is disabled"));
    }
    Ok(AuthenticatedClient(client))
}

async fn private_key_jwt(
    a: &Authority,
    params: &HashMap<String, String>,
    assertion: &str,
) -> Result<Arc<Client>, OAuthError> {
    if params.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER_ASSERTION) {
        return Err(OAuthError::invalid_client(format!(
            "client_assertion_type must be `{JWT_BEARER_ASSERTION}`"
        )));
    }
    let bad =
        |e: warden_core::TokenError| OAuthError::invalid_client(format!("client assertion: {e}"));
    let token = UnverifiedToken::parse(assertion).map_err(bad)?;
    // The assertion names its client; its key is looked up before anything is trusted.
    let unverified: AssertionClaims = token.claims_unverified().map_err(bad)?;
    if unverified.iss != unverified.sub {
        return Err(OAuthError::invalid_client(
            "client assertion `iss` and `sub` must both be the client id",
        ));
    }
    if params
        .get("client_id")
        .is_some_and(|id| *id != unverified.sub)
    {
        return Err(OAuthError::invalid_client(
            "client_id does not match the client assertion",
        ));
    }
    let client = find_client(a, &unverified.sub).await?;
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
        .map_err(bad)?;
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
    Ok(client)
}

async fn client_secret_basic(
    a: &Authority,
    params: &HashMap<String, String>,
    credentials: &str,
) -> Result<Arc<Client>, OAuthError> {
    let malformed = || OAuthError::invalid_client("malformed Basic credentials");
    let decoded = STANDARD
        .decode(credentials.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let id = form_decode(id);
    let secret = form_decode(secret);
    if params.get("client_id").is_some_and(|p| *p != id) {
        return Err(OAuthError::invalid_client(
            "client_id does not match the Basic credentials",
        ));
    }
    let client = find_client(a, &id).await?;
    let Some(hash) = client.principal.secret_hash.clone() else {
        return Err(OAuthError::invalid_client("client has no secret"));
    };
    // Argon2 is deliberately slow: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || verify_secret(secret.as_bytes(), &hash))
        .await
        .unwrap_or(false);
    if !ok {
        return Err(OAuthError::invalid_client("client secret is wrong"));
    }
    Ok(client)
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
