//! `rate`: GCRA per identity (`sub`) per route, for routes with a `rate`.

use governor::DefaultKeyedRateLimiter;

use super::RequestCtx;
use crate::deny::Deny;

pub(super) fn check(
    ctx: &RequestCtx<'_, '_>,
    limiter: &DefaultKeyedRateLimiter<String>,
) -> Result<(), Deny> {
    let Err(not_until) = limiter.check_key(&ctx.verified.claims.sub) else {
        return Ok(());
    };
    let wait = not_until.wait_time_from(governor::clock::Clock::now(
        &governor::clock::DefaultClock::default(),
    ));
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Err(Deny::RateLimited {
        retry_after_secs: secs.max(1),
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use governor::{Quota, RateLimiter};

    use super::super::testing;
    use super::*;

    #[test]
    fn past_the_burst_an_identity_waits_and_others_do_not() {
        let limiter = RateLimiter::keyed(
            Quota::per_second(NonZeroU32::new(1).unwrap()).allow_burst(NonZeroU32::new(2).unwrap()),
        );
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let ctx = testing::ctx(&facts, testing::claims());
        assert!(check(&ctx, &limiter).is_ok());
        assert!(check(&ctx, &limiter).is_ok());
        let deny = check(&ctx, &limiter).unwrap_err();
        assert_eq!((deny.phase(), deny.status().as_u16()), ("rate", 429));
        assert!(matches!(deny, Deny::RateLimited { retry_after_secs } if retry_after_secs >= 1));
        let mut other = testing::claims();
        other.sub = "agt_BBBBBBBBBBBBBBBBBBBBBB".into();
        assert!(check(&testing::ctx(&facts, other), &limiter).is_ok());
    }
}
