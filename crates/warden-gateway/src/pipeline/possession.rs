//! `possession` (RFC 9449 §7): a bound token comes with the `DPoP` scheme and a proof, signed
//! by the bound key, for this very request and token. The proof is only verified here; it is
//! spent (its `jti` remembered) by `spend`, once every other phase allowed the request, so
//! proofs sent where they are refused cannot fill the replay cache.

use warden_core::dpop::{verify_proof, DpopError, ProofRequest};

use super::{RequestCtx, Scheme, SpentProof};
use crate::deny::Deny;

/// `public_url` is the gateway's configured base URL; without it, `is_own_authority` says
/// whether a request's Host names this gateway.
pub(super) fn check(
    ctx: &mut RequestCtx<'_, '_>,
    public_url: Option<&str>,
    max_skew: i64,
    is_own_authority: impl Fn(&str) -> bool,
) -> Result<(), Deny> {
    let facts = ctx.facts;
    let Some(cnf) = &ctx.verified.claims.cnf else {
        return match ctx.scheme {
            Scheme::Bearer => Ok(()),
            Scheme::Dpop => Err(Deny::InvalidToken(
                "the DPoP scheme needs a DPoP-bound token".into(),
            )),
        };
    };
    if ctx.scheme != Scheme::Dpop {
        return Err(Deny::InvalidToken(
            "token is DPoP-bound: present it with the DPoP scheme and a proof".into(),
        ));
    }
    let mut proofs = facts.headers.get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (Some(p), None) => p
            .to_str()
            .map_err(|_| Deny::InvalidDpop("DPoP header is not ASCII".into()))?,
        (None, _) => return Err(Deny::InvalidDpop("DPoP proof is missing".into())),
        (Some(_), Some(_)) => return Err(Deny::InvalidDpop("more than one DPoP header".into())),
    };
    let url = match public_url {
        Some(base) => format!("{base}{}", facts.raw_path),
        None => {
            let host = facts
                .headers
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .ok_or_else(|| Deny::InvalidDpop("request has no Host".into()))?;
            // A proof names the resource server it was made for; taking that name from
            // the request itself would let a proof made for another server be replayed
            // here under its name.
            if !is_own_authority(host) {
                return Err(Deny::InvalidDpop(format!(
                    "the gateway does not know itself as `{host}`: set public_url"
                )));
            }
            format!("http://{host}{}", facts.raw_path)
        }
    };
    let verified = verify_proof(
        proof,
        &ProofRequest {
            method: facts.method,
            url: &url,
            access_token: Some(ctx.token),
            now: ctx.now,
            max_skew,
        },
    )
    .map_err(|e| Deny::InvalidDpop(e.to_string()))?;
    if verified.jkt != cnf.jkt {
        return Err(Deny::InvalidDpop(DpopError::KeyMismatch.to_string()));
    }
    ctx.proof = Some(SpentProof {
        key: format!("{}:{}", verified.jkt, verified.jti),
        remember_until: verified.iat + max_skew,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;
    use warden_core::claims::Confirmation;
    use warden_core::dpop::{access_token_hash, create_proof, ProofClaims};
    use warden_core::SigningKey;

    use super::super::testing;
    use super::*;

    fn bound(key: &SigningKey) -> warden_core::AccessClaims {
        let mut c = testing::claims();
        c.cnf = Some(Confirmation {
            jkt: key.public_key().thumbprint(),
        });
        c
    }

    #[test]
    fn an_unbound_bearer_token_needs_no_proof_and_the_dpop_scheme_needs_a_bound_token() {
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let mut ctx = testing::ctx(&facts, testing::claims());
        assert!(check(&mut ctx, None, 60, |_| false).is_ok());
        assert!(ctx.proof.is_none());
        ctx.scheme = Scheme::Dpop;
        let deny = check(&mut ctx, None, 60, |_| false).unwrap_err();
        assert_eq!(deny.phase(), "verify");
    }

    #[test]
    fn a_bound_token_needs_the_dpop_scheme_and_exactly_one_proof() {
        let key = SigningKey::generate(&mut OsRng);
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let mut ctx = testing::ctx(&facts, bound(&key));
        assert!(matches!(
            check(&mut ctx, None, 60, |_| true),
            Err(Deny::InvalidToken(_))
        ));
        ctx.scheme = Scheme::Dpop;
        let deny = check(&mut ctx, None, 60, |_| true).unwrap_err();
        assert_eq!(
            (deny.phase(), deny.reason().as_str()),
            ("possession", "DPoP proof is missing")
        );
    }

    #[test]
    fn a_proof_for_this_request_and_key_is_kept_for_spend_and_a_foreign_host_is_refused() {
        let key = SigningKey::generate(&mut OsRng);
        let token = "the.token.bytes";
        let proof = create_proof(
            &key,
            &ProofClaims {
                jti: "p1".into(),
                htm: "GET".into(),
                htu: "http://gw.example/crm/a".into(),
                iat: testing::NOW,
                ath: Some(access_token_hash(token)),
                nonce: None,
            },
        )
        .unwrap();
        let mut h = hyper::HeaderMap::new();
        h.insert("dpop", proof.parse().unwrap());
        h.insert(hyper::header::HOST, "gw.example".parse().unwrap());
        let facts = testing::facts("GET", "/crm/a", &h);
        let mut ctx = testing::ctx(&facts, bound(&key));
        ctx.scheme = Scheme::Dpop;
        ctx.token = token;
        let deny = check(&mut ctx, None, 60, |_| false).unwrap_err();
        assert!(
            deny.reason().contains("set public_url"),
            "{}",
            deny.reason()
        );
        check(&mut ctx, Some("http://gw.example"), 60, |_| false).unwrap();
        let spent = ctx.proof.take().unwrap();
        assert!(spent.key.ends_with(":p1"));
        assert_eq!(spent.remember_until, testing::NOW + 60);
        let other = SigningKey::generate(&mut OsRng);
        let mut ctx = testing::ctx(&facts, bound(&other));
        ctx.scheme = Scheme::Dpop;
        ctx.token = token;
        assert!(check(&mut ctx, Some("http://gw.example"), 60, |_| false).is_err());
    }
}
