//! What makes a verified access token an admin token, beyond what verification checks
//! (signature, issuer, lifetime, an `aud` naming the admin API): the rules the authority's
//! admin API and a gateway's `/_warden` apply alike, so the two cannot drift apart.

use warden_core::claims::AccessClaims;

/// Why a verified access token does not administer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAnAdminToken {
    /// `aud` names more than the admin API: a token for several resources could be
    /// replayed here by any of them.
    #[error("its audience must be exactly the admin API")]
    Audience,
    /// A delegated token (`act`) speaks for someone else; administration is done by the
    /// principal itself.
    #[error("a delegated token does not administer; request one as the principal itself")]
    Delegated,
    /// A DPoP-bound token (`cnf`) is only good with a proof, which bearer calls lack.
    #[error("a DPoP-bound token cannot be presented as a bearer token")]
    Bound,
}

/// Checks the admin-token rules on claims that already verified.
pub fn check(claims: &AccessClaims) -> Result<(), NotAnAdminToken> {
    if claims.aud.iter().count() != 1 {
        return Err(NotAnAdminToken::Audience);
    }
    if claims.act.is_some() {
        return Err(NotAnAdminToken::Delegated);
    }
    if claims.cnf.is_some() {
        return Err(NotAnAdminToken::Bound);
    }
    Ok(())
}
