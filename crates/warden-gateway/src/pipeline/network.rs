//! `network`: the client address (after `trusted_proxies` decided whom to believe about it)
//! is inside the token's `allowed_ips`, parsed once at verification.

use super::RequestCtx;
use crate::deny::Deny;

pub(super) fn check(ctx: &RequestCtx<'_, '_>) -> Result<(), Deny> {
    let client = ctx.facts.client_ip;
    if ctx.verified.access.allows_ip(client) {
        Ok(())
    } else {
        Err(Deny::Network(format!(
            "client address {client} is outside the token's allowed_ips"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;

    #[test]
    fn a_token_without_allowed_ips_passes_from_anywhere() {
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let ctx = testing::ctx(&facts, testing::claims());
        assert!(check(&ctx).is_ok());
    }

    #[test]
    fn the_client_must_be_inside_allowed_ips() {
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let mut inside = testing::claims();
        inside.allowed_ips = Some(vec!["10.0.0.0/8".into(), "203.0.113.0/24".into()]);
        assert!(check(&testing::ctx(&facts, inside)).is_ok());
        let mut outside = testing::claims();
        outside.allowed_ips = Some(vec!["10.0.0.0/8".into()]);
        let deny = check(&testing::ctx(&facts, outside)).unwrap_err();
        assert_eq!((deny.phase(), deny.status().as_u16()), ("network", 403));
        assert!(deny.reason().contains("203.0.113.7"));
    }
}
