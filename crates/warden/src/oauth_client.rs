//! The client side of client credentials with `private_key_jwt`, as an agent performs it.

use anyhow::{bail, Context as _};
use rand_core::OsRng;
use serde::Deserialize;
use warden_core::claims::{AssertionClaims, Audience};
use warden_core::id::random_token_id;
use warden_core::{jws, SigningKey};

/// Signs an RFC 7523 client assertion for `client_id`, addressed to `audience`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn client_assertion(
    client_id: &str,
    audience: &str,
    key: &SigningKey,
    now: i64,
) -> anyhow::Result<String> {
    let claims = AssertionClaims {
        iss: client_id.to_owned(),
        sub: client_id.to_owned(),
        aud: Audience::One(audience.to_owned()),
        exp: now + 60,
        iat: Some(now),
        nbf: None,
        jti: random_token_id(&mut OsRng),
    };
    Ok(jws::encode("JWT", None, &claims, key)?)
}

#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a token bound to a key.
    pub token_type: String,
    pub expires_in: i64,
    pub scope: String,
}

/// The token endpoint's answer: a token, or the OAuth error code and description.
pub enum TokenOutcome {
    Issued(TokenResponse),
    Refused {
        status: u16,
        error: String,
        description: String,
    },
}

pub async fn request_token(
    http: &reqwest::Client,
    token_endpoint: &str,
    assertion: &str,
    scope: Option<&str>,
    resource: Option<&str>,
    dpop_proof: Option<&str>,
) -> anyhow::Result<TokenOutcome> {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    if let Some(r) = resource {
        form.push(("resource", r));
    }
    let body = serde_urlencoded_form(&form);
    let mut req = http
        .post(token_endpoint)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(p) = dpop_proof {
        req = req.header("dpop", p);
    }
    let res = req
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach `{token_endpoint}`"))?;
    let status = res.status().as_u16();
    let value: serde_json::Value = res
        .json()
        .await
        .context("token endpoint answered non-JSON")?;
    if status == 200 {
        return Ok(TokenOutcome::Issued(serde_json::from_value(value)?));
    }
    let field = |k: &str| {
        value
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    if field("error").is_empty() {
        bail!("token endpoint answered {status} without an OAuth error");
    }
    Ok(TokenOutcome::Refused {
        status,
        error: field("error"),
        description: field("error_description"),
    })
}

/// The token endpoint, from the authority's RFC 8414 metadata.
pub async fn discover_token_endpoint(
    http: &reqwest::Client,
    authority_url: &str,
) -> anyhow::Result<String> {
    let meta: serde_json::Value = http
        .get(format!(
            "{authority_url}/.well-known/oauth-authorization-server"
        ))
        .send()
        .await
        .with_context(|| format!("cannot reach `{authority_url}`"))?
        .json()
        .await?;
    crate::json::field(&meta, "token_endpoint")
        .as_str()
        .map(str::to_owned)
        .context("metadata lacks token_endpoint")
}

/// Who asks for a token: the client, its assertion key, and the key to bind the token to.
pub struct Client<'a> {
    pub id: &'a str,
    pub key: &'a SigningKey,
    pub dpop_key: Option<&'a SigningKey>,
}

/// Signs a fresh assertion and obtains a token; a refusal is an error naming the OAuth
/// error and its description.
pub async fn obtain_token(
    http: &reqwest::Client,
    token_endpoint: &str,
    client: &Client<'_>,
    scope: Option<&str>,
    resource: Option<&str>,
    now: i64,
) -> anyhow::Result<TokenResponse> {
    let assertion = client_assertion(client.id, token_endpoint, client.key, now)?;
    let proof = client
        .dpop_key
        .map(|k| dpop_proof(k, "POST", token_endpoint, None, now))
        .transpose()?;
    match request_token(
        http,
        token_endpoint,
        &assertion,
        scope,
        resource,
        proof.as_deref(),
    )
    .await?
    {
        TokenOutcome::Issued(t) => Ok(t),
        TokenOutcome::Refused {
            error, description, ..
        } => bail!("{error}: {description}"),
    }
}

/// A DPoP proof (RFC 9449) for one request; `access_token` when the request carries one.
pub fn dpop_proof(
    key: &SigningKey,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    now: i64,
) -> anyhow::Result<String> {
    use warden_core::dpop::{access_token_hash, create_proof, ProofClaims};
    Ok(create_proof(
        key,
        &ProofClaims {
            jti: warden_core::id::random_token_id(&mut rand_core::OsRng),
            htm: method.to_owned(),
            htu: url.to_owned(),
            iat: now,
            ath: access_token.map(access_token_hash),
            nonce: None,
        },
    )?)
}

fn serde_urlencoded_form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}
