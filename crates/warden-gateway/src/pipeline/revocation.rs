//! `revocation`: every level of the token's delegation chain against the gateway's view of
//! revocations, on cache hits too. Whether the view is fresh enough to trust is decided by
//! `route`, which knows the route's fail mode.

use warden_core::revocation::Revoked;

use super::RequestCtx;
use crate::deny::Deny;
use crate::revocation::RevocationFeed;

pub(super) fn check(ctx: &RequestCtx<'_, '_>, revocations: &RevocationFeed) -> Result<(), Deny> {
    revocations.check(&ctx.verified.claims).map_err(refusal)
}

/// A honeytoken is refused like any revoked token, and reported as one.
fn refusal(why: Revoked) -> Deny {
    match why {
        Revoked::Honeytoken(p) => Deny::Honeytoken(p),
        why => Deny::Revoked(why.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing;
    use super::*;

    #[test]
    fn a_token_nothing_revoked_passes() {
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let ctx = testing::ctx(&facts, testing::claims());
        let feed = RevocationFeed::new(Duration::from_secs(30));
        assert!(check(&ctx, &feed).is_ok());
    }

    #[test]
    fn a_revocation_is_refused_in_this_phase_and_a_honeytoken_reported() {
        let d = refusal(Revoked::Principal("agt_X".into()));
        assert_eq!((d.phase(), d.status().as_u16()), ("revocation", 401));
        assert!(matches!(
            refusal(Revoked::Honeytoken("agt_H".into())),
            Deny::Honeytoken(p) if p == "agt_H"
        ));
        let trap = refusal(Revoked::Honeytoken("agt_H".into()));
        assert_eq!(
            (trap.phase(), trap.reason().as_str()),
            ("revocation", "token was revoked")
        );
    }
}
