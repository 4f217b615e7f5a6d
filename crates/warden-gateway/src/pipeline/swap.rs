//! `swap`: the token the upstream sees — this route's audience, only the scope this method
//! needs, `sub` and `act` preserved, at most `internal_token_ttl_secs` and never past the
//! external token's expiry. Reused, for any token of the same identity, while it has more
//! than half its life left and does not outlive the token presented.

use std::sync::atomic::Ordering;

use hyper::header::HeaderValue;
use rand_core::OsRng;
use warden_core::claims::{AccessClaims, Audience};
use warden_core::id::random_token_id;
use warden_core::jws;

use super::{method_index, RequestCtx, Routed};
use crate::config::GatewayConfig;
use crate::deny::Deny;
use crate::GatewayKey;

/// Marks the token used (the request is allowed) and returns `Bearer <internal token>`.
pub(super) fn check(
    ctx: &RequestCtx<'_, '_>,
    at: Routed<'_>,
    config: &GatewayConfig,
    key: &GatewayKey,
) -> Result<HeaderValue, Deny> {
    let (v, now) = (&ctx.verified, ctx.now);
    v.last_used.store(now, Ordering::Relaxed);
    let slot = (at.route.index, method_index(ctx.facts.method));
    let ttl = config.internal_token_ttl_secs;
    let mut minted = crate::lock(&v.shared.internal);
    if let Some((t, exp)) = minted.get(&slot) {
        if exp - now > ttl / 2 && *exp <= v.claims.exp {
            return Ok(t.clone());
        }
    }
    let exp = (now + ttl).min(v.claims.exp);
    let claims = AccessClaims {
        iss: config.issuer.clone(),
        sub: v.claims.sub.clone(),
        aud: Audience::One(at.route.audience.clone()),
        exp,
        iat: now,
        nbf: now,
        jti: random_token_id(&mut OsRng),
        client_id: v.claims.client_id.clone(),
        tenant: v.claims.tenant.clone(),
        scope: at.required.to_string(),
        act: v.claims.act.clone(),
        cnf: None,
        allowed_ips: None,
        max_uses: None,
    };
    // A JWS is base64url and dots: always a valid header value.
    let bearer = jws::encode("at+jwt", Some(&key.kid), &claims, &key.key)
        .ok()
        .and_then(|t| HeaderValue::try_from(format!("Bearer {t}")).ok())
        .ok_or_else(|| Deny::UpstreamUnreachable("the internal token could not be made".into()))?;
    minted.insert(slot, (bearer.clone(), exp));
    Ok(bearer)
}

#[cfg(test)]
mod tests {
    use warden_core::jws::UnverifiedToken;
    use warden_core::SigningKey;

    use super::super::testing;
    use super::*;

    fn key() -> GatewayKey {
        GatewayKey {
            kid: "gw-test".into(),
            key: SigningKey::generate(&mut OsRng),
        }
    }

    fn claims_of(bearer: &HeaderValue) -> AccessClaims {
        let t = bearer.to_str().unwrap().strip_prefix("Bearer ").unwrap();
        UnverifiedToken::parse(t)
            .unwrap()
            .claims_unverified()
            .unwrap()
    }

    #[test]
    fn the_internal_token_narrows_to_the_route_and_method_and_is_reused() {
        let config = testing::config();
        let key = key();
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let mut c = testing::claims();
        c.scope = "crm:contacts:read crm:contacts:write".into();
        let ctx = testing::ctx(&facts, c);
        let at = testing::routed(&config, "/crm/a", "GET");
        let first = check(&ctx, at, &config, &key).unwrap();
        let minted = claims_of(&first);
        assert_eq!(minted.aud, Audience::One("crm".into()));
        assert_eq!(minted.scope, "crm:contacts:read");
        assert_eq!(minted.sub, testing::AGENT);
        assert_eq!(minted.exp, testing::NOW + config.internal_token_ttl_secs);
        assert_eq!(ctx.verified.last_used.load(Ordering::Relaxed), testing::NOW);
        assert_eq!(check(&ctx, at, &config, &key).unwrap(), first);
    }

    #[test]
    fn the_internal_token_never_outlives_the_token_presented() {
        let config = testing::config();
        let key = key();
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let mut c = testing::claims();
        c.exp = testing::NOW + 5;
        let ctx = testing::ctx(&facts, c);
        let at = testing::routed(&config, "/crm/a", "GET");
        let minted = claims_of(&check(&ctx, at, &config, &key).unwrap());
        assert_eq!(minted.exp, testing::NOW + 5);
    }
}
