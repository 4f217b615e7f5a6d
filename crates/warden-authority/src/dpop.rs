//! DPoP at the token endpoint (RFC 9449 §5): a client that sends a proof gets a token bound to
//! the proof's key (`cnf.jkt`, `token_type: DPoP`).

use axum::http::HeaderMap;
use warden_core::dpop::{verify_proof, ProofRequest};
use warden_core::replay::FirstUse;

use crate::error::OAuthError;
use crate::Authority;

/// The thumbprint of the key the request proved possession of, if it sent a proof.
pub fn proven_key(a: &Authority, headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let mut proofs = headers.get_all("dpop").iter();
    let Some(proof) = proofs.next() else {
        return Ok(None);
    };
    if proofs.next().is_some() {
        return Err(OAuthError::invalid_dpop_proof("more than one DPoP header"));
    }
    let proof = proof
        .to_str()
        .map_err(|_| OAuthError::invalid_dpop_proof("DPoP header is not ASCII"))?;
    let now = a.now();
    let endpoint = a.config.token_endpoint();
    let verified = verify_proof(
        proof,
        &ProofRequest {
            method: "POST",
            url: &endpoint,
            access_token: None,
            now,
            max_skew: a.config.dpop_max_skew_secs,
        },
    )
    .map_err(|e| OAuthError::invalid_dpop_proof(e.to_string()))?;
    let key = format!("{}:{}", verified.jkt, verified.jti);
    let first = crate::lock(&a.dpop_replay).first_use(
        &key,
        verified.iat + a.config.dpop_max_skew_secs,
        now,
    );
    match first {
        FirstUse::Yes => Ok(Some(verified.jkt)),
        FirstUse::Replay => Err(OAuthError::invalid_dpop_proof(
            "DPoP proof `jti` was already used",
        )),
        FirstUse::Full => Err(OAuthError::temporarily_unavailable(
            "too many DPoP proofs in flight; retry shortly",
        )),
    }
}

pub fn prune(a: &Authority, now: i64) {
    crate::lock(&a.dpop_replay).prune(now);
}
