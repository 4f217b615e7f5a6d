//! `scope`: the token's scopes, parsed once at verification, cover the scope the route
//! requires for the method.

use super::{RequestCtx, Routed};
use crate::deny::Deny;

pub(super) fn check(ctx: &RequestCtx<'_, '_>, at: Routed<'_>) -> Result<(), Deny> {
    if ctx.verified.access.scopes().covers(at.required) {
        Ok(())
    } else {
        Err(Deny::InsufficientScope(at.required.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;

    #[test]
    fn the_method_s_scope_must_be_covered() {
        let config = testing::config();
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let ctx = testing::ctx(&facts, testing::claims());
        assert!(check(&ctx, testing::routed(&config, "/crm/a", "GET")).is_ok());
        let deny = check(&ctx, testing::routed(&config, "/crm/a", "POST")).unwrap_err();
        assert_eq!((deny.phase(), deny.status().as_u16()), ("scope", 403));
        assert_eq!(deny.reason(), "the token lacks scope `crm:contacts:write`");
    }
}
