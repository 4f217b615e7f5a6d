//! `spend`: the one-time values of a request that every other phase allowed are used up —
//! the DPoP proof (per key), then a single-use (`max_uses: 1`) token. Spending only here
//! keeps refused requests from filling the replay caches.

use std::sync::Mutex;

use warden_core::replay::{FirstUse, ReplayCache};
use warden_core::Validation;

use super::RequestCtx;
use crate::deny::Deny;

pub(super) fn check(
    ctx: &mut RequestCtx<'_, '_>,
    proofs: &Mutex<ReplayCache>,
    single_use: &Mutex<ReplayCache>,
) -> Result<(), Deny> {
    if let Some(p) = ctx.proof.take() {
        spend(proofs, &p.key, p.remember_until, ctx.now, || {
            Deny::ProofReplayed
        })?;
    }
    let c = &ctx.verified.claims;
    if c.max_uses.is_some() {
        let until = c.exp + Validation::DEFAULT_LEEWAY;
        spend(single_use, &c.jti, until, ctx.now, || Deny::TokenSpent)?;
    }
    Ok(())
}

/// Spends a one-time value, remembered until `until`; `replayed` is the refusal when it
/// was spent before.
fn spend(
    cache: &Mutex<ReplayCache>,
    value: &str,
    until: i64,
    now: i64,
    replayed: impl FnOnce() -> Deny,
) -> Result<(), Deny> {
    match crate::lock(cache).first_use(value, until, now) {
        FirstUse::Yes => Ok(()),
        FirstUse::Replay => Err(replayed()),
        FirstUse::Full => Err(Deny::ReplayCacheFull),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{testing, SpentProof};
    use super::*;

    fn caches() -> (Mutex<ReplayCache>, Mutex<ReplayCache>) {
        (
            Mutex::new(ReplayCache::new(16)),
            Mutex::new(ReplayCache::new(16)),
        )
    }

    #[test]
    fn a_proof_is_spent_once() {
        let (proofs, single) = caches();
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let proof = || SpentProof {
            key: "jkt:p1".into(),
            remember_until: testing::NOW + 60,
        };
        let mut ctx = testing::ctx(&facts, testing::claims());
        ctx.proof = Some(proof());
        assert!(check(&mut ctx, &proofs, &single).is_ok());
        ctx.proof = Some(proof());
        let deny = check(&mut ctx, &proofs, &single).unwrap_err();
        assert_eq!((deny.phase(), deny.status().as_u16()), ("spend", 401));
        assert_eq!(deny.reason(), "DPoP proof was already used");
        assert!(deny.suggests_probing());
    }

    #[test]
    fn a_single_use_token_is_spent_once_and_others_never() {
        let (proofs, single) = caches();
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let mut ctx = testing::ctx(&facts, testing::claims());
        for _ in 0..3 {
            assert!(check(&mut ctx, &proofs, &single).is_ok());
        }
        let mut once = testing::claims();
        once.max_uses = Some(1);
        let mut ctx = testing::ctx(&facts, once);
        assert!(check(&mut ctx, &proofs, &single).is_ok());
        let deny = check(&mut ctx, &proofs, &single).unwrap_err();
        assert_eq!(
            (deny.phase(), deny.reason().as_str()),
            ("spend", "single-use token was already used")
        );
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forget() {
        let proofs = Mutex::new(ReplayCache::new(1));
        let single = Mutex::new(ReplayCache::new(1));
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let mut ctx = testing::ctx(&facts, testing::claims());
        for (i, ok) in [(0, true), (1, false)] {
            ctx.proof = Some(SpentProof {
                key: format!("jkt:p{i}"),
                remember_until: testing::NOW + 60,
            });
            let outcome = check(&mut ctx, &proofs, &single);
            assert_eq!(outcome.is_ok(), ok);
            if let Err(d) = outcome {
                assert!(matches!(d, Deny::ReplayCacheFull));
                assert_eq!(d.phase(), "spend");
            }
        }
    }
}
