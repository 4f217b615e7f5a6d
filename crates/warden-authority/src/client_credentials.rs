//! The client credentials grant (RFC 6749 §4.4): a token for the authenticated client
//! itself, with scopes within its ceiling and the audience from RFC 8707 `resource`.

use rand_core::OsRng;
use warden_core::claims::{AccessClaims, Audience, Confirmation};
use warden_core::id::random_token_id;

use crate::admin_auth::Powers;
use crate::client_auth::AuthenticatedClient;
use crate::error::OAuthError;
use crate::grant::{GrantType, Issue};
use crate::token_request::{truncate, within, ClientCredentialsRequest};
use crate::Authority;

pub fn grant(
    a: &Authority,
    client: &AuthenticatedClient,
    request: ClientCredentialsRequest<'_>,
    jkt: Option<String>,
) -> Result<Issue, OAuthError> {
    let p = client.principal();
    let scopes = within(request.scope?, &p.scopes, "the client's ceiling")?;
    let audience = match request.resource {
        None => a.config.default_audience.clone(),
        Some(r) if r == a.config.default_audience || p.audiences.iter().any(|x| x == r) => {
            r.to_owned()
        }
        // The admin API is an audience of every principal that holds a power there.
        Some(r) if r == a.admin_audience() && Powers::of(&p.scopes).any() => r.to_owned(),
        Some(r) => {
            return Err(OAuthError::invalid_target(format!(
                "resource `{}` is not allowed for this client",
                truncate(r)
            )))
        }
    };
    let ttl = a
        .config
        .token_ttl_secs
        .min(client.tenant().max_token_ttl_secs)
        .min(a.config.max_token_ttl_secs);
    let now = a.now();
    let claims = AccessClaims {
        iss: a.config.issuer.clone(),
        sub: p.id.to_string(),
        aud: Audience::One(audience),
        exp: now + ttl,
        iat: now,
        nbf: now,
        jti: random_token_id(&mut OsRng),
        client_id: p.id.to_string(),
        tenant: p.tenant.to_string(),
        scope: scopes.to_string(),
        act: None,
        cnf: jkt.map(|jkt| Confirmation { jkt }),
        allowed_ips: None,
        max_uses: None,
    };
    Ok(Issue {
        claims,
        by: GrantType::ClientCredentials,
    })
}
