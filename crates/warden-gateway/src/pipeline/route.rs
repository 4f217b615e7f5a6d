//! `route`: the longest prefix that matches the path, and the scope its method needs; a route
//! that fails closed refuses while the revocation view is stale.

use super::{RequestCtx, Routed};
use crate::config::{FailMode, GatewayConfig};
use crate::deny::Deny;

/// `revocations_fresh` is asked only for a route that fails closed.
pub(super) fn check<'g>(
    ctx: &mut RequestCtx<'_, 'g>,
    config: &'g GatewayConfig,
    revocations_fresh: impl FnOnce() -> bool,
) -> Result<Routed<'g>, Deny> {
    let route = config.route_for(ctx.facts.path).ok_or(Deny::NoRoute)?;
    ctx.route = Some(route);
    if route.fail_mode == FailMode::Closed && !revocations_fresh() {
        return Err(Deny::RevocationStale);
    }
    let Some(required) = route.scopes.get(ctx.facts.method) else {
        return Err(Deny::MethodNotAllowed(ctx.facts.method.to_owned()));
    };
    Ok(Routed { route, required })
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;

    #[test]
    fn the_route_and_the_scope_for_the_method_are_found() {
        let config = testing::config();
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("POST", "/crm/a", &h);
        let mut ctx = testing::ctx(&facts, testing::claims());
        let at = check(&mut ctx, &config, || true).unwrap();
        assert_eq!(at.route.prefix, "/crm/");
        assert_eq!(at.required.as_str(), "crm:contacts:write");
        assert!(ctx.route.is_some());
    }

    #[test]
    fn no_route_an_unlisted_method_and_a_stale_view_are_refused() {
        let config = testing::config();
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/hr/a", &h);
        let mut ctx = testing::ctx(&facts, testing::claims());
        let deny = check(&mut ctx, &config, || true).unwrap_err();
        assert_eq!((deny.phase(), deny.status().as_u16()), ("route", 404));
        assert!(ctx.route.is_none());
        let facts = testing::facts("DELETE", "/crm/a", &h);
        let mut ctx = testing::ctx(&facts, testing::claims());
        let deny = check(&mut ctx, &config, || true).unwrap_err();
        assert_eq!((deny.phase(), deny.status().as_u16()), ("route", 405));
        assert!(ctx.route.is_some(), "the refusal is audited with its route");
        let facts = testing::facts("GET", "/crm/a", &h);
        let mut ctx = testing::ctx(&facts, testing::claims());
        let deny = check(&mut ctx, &config, || false).unwrap_err();
        assert_eq!((deny.phase(), deny.status().as_u16()), ("revocation", 503));
    }
}
