//! `behaviour` (only with `[gateway.behaviour]`): the request is learned from, then the
//! restrictions in force for the identity and the token are enforced. Findings are handed to
//! `raise` (audit, alert, quarantine revocation); this phase does no reporting of its own.

use warden_core::Validation;

use super::{RequestCtx, Routed};
use crate::behaviour::{Behaviour, Finding, Observation, Verdict};
use crate::deny::Deny;

pub(super) fn check(
    ctx: &RequestCtx<'_, '_>,
    at: Routed<'_>,
    behaviour: &Behaviour,
    mut raise: impl FnMut(&RequestCtx<'_, '_>, Finding),
) -> Result<(), Deny> {
    let v = &ctx.verified;
    let assessment = behaviour.observe(
        &Observation {
            identity: &v.identity,
            jti: &v.claims.jti,
            token_expires: v.claims.exp + Validation::DEFAULT_LEEWAY,
            route: at.route.index,
            route_prefix: &at.route.prefix,
            method: ctx.facts.method,
            client_ip: ctx.facts.client_ip,
        },
        ctx.now,
    );
    for f in assessment.findings {
        raise(ctx, f);
    }
    match assessment.verdict {
        Verdict::Allow => Ok(()),
        Verdict::Quarantined => Err(Deny::Quarantined),
        Verdict::ReadOnly { until, cause } => Err(Deny::ReadOnly {
            until,
            cause: cause.name(),
        }),
        Verdict::Throttled {
            retry_after_secs,
            cause,
        } => Err(Deny::Throttled {
            retry_after_secs,
            cause: cause.name(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;
    use crate::behaviour::BehaviourConfig;

    #[test]
    fn a_steady_identity_passes_and_a_burst_over_the_cap_is_throttled_with_a_finding() {
        let config = testing::config();
        let b = Behaviour::new(BehaviourConfig {
            max_requests_per_window: Some(3),
            ..BehaviourConfig::default()
        });
        let h = hyper::HeaderMap::new();
        let facts = testing::facts("GET", "/crm/a", &h);
        let ctx = testing::ctx(&facts, testing::claims());
        let at = testing::routed(&config, "/crm/a", "GET");
        let mut findings = 0;
        let mut outcomes = Vec::new();
        for _ in 0..10 {
            outcomes.push(check(&ctx, at, &b, |_, _| findings += 1).map_err(|d| d.phase()));
        }
        assert_eq!(outcomes.first(), Some(&Ok(())));
        assert_eq!(outcomes.last(), Some(&Err("behaviour")));
        assert!(findings >= 1);
    }
}
