//! `tenant`: a route of one tenant serves only its tokens, whether or not any policy says so
//! (policies are optional, and a missing file must not open the route).

use super::{RequestCtx, Routed};
use crate::deny::Deny;

pub(super) fn check(ctx: &RequestCtx<'_, '_>, at: Routed<'_>) -> Result<(), Deny> {
    if at.route.serves_tenant(&ctx.verified.claims.tenant) {
        Ok(())
    } else {
        Err(Deny::OtherTenant)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;
    use crate::config::RouteTenant;

    #[test]
    fn a_route_of_one_tenant_takes_only_its_tokens() {
        let mut config = testing::config();
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let ctx = testing::ctx(&facts, testing::claims());
        assert!(check(&ctx, testing::routed(&config, "/crm/a", "GET")).is_ok());
        for r in &mut config.routes {
            r.tenant = Some(RouteTenant::Id("tnt_BBBBBBBBBBBBBBBBBBBBBB".into()));
        }
        let deny = check(&ctx, testing::routed(&config, "/crm/a", "GET")).unwrap_err();
        assert_eq!((deny.phase(), deny.status().as_u16()), ("tenant", 403));
        for r in &mut config.routes {
            r.tenant = Some(RouteTenant::Id(testing::TENANT.into()));
        }
        assert!(check(&ctx, testing::routed(&config, "/crm/a", "GET")).is_ok());
    }
}
