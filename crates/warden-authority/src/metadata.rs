//! Discovery documents: RFC 8414 authorization-server metadata (also served at the OIDC
//! discovery path, which many client libraries ask for) and the JWKS.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::Authority;

pub fn routes() -> Router<Arc<Authority>> {
    Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(server_metadata),
        )
        .route("/.well-known/openid-configuration", get(server_metadata))
        .route("/.well-known/jwks.json", get(jwks))
}

async fn server_metadata(State(a): State<Arc<Authority>>) -> Response {
    let c = &a.config;
    // Every endpoint that authenticates a client takes the same methods: one parse of client
    // authentication serves the token, introspection and revocation endpoints alike.
    let auth_methods = json!(["private_key_jwt", "client_secret_basic"]);
    // Ed25519 under both of its JOSE names: `EdDSA` (RFC 8037) and `Ed25519` (RFC 9864).
    let assertion_algs = json!(["EdDSA", "Ed25519"]);
    let mut res = Json(json!({
        "issuer": c.issuer,
        "token_endpoint": c.token_endpoint(),
        "jwks_uri": c.jwks_uri(),
        "introspection_endpoint": format!("{}/oauth2/introspect", c.issuer),
        "revocation_endpoint": format!("{}/oauth2/revoke", c.issuer),
        "grant_types_supported": [
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "dpop_signing_alg_values_supported": assertion_algs,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "access_token_signing_alg_values_supported": ["EdDSA"],
    }))
    .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

async fn jwks(State(a): State<Arc<Authority>>) -> Response {
    let body = a.keys.current().jwks_json.to_vec();
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    // Short enough that a rotation's next key is seen long before it signs.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    res
}
