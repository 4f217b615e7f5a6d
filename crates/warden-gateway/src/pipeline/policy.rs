//! `policy` (with `policy_dir`): Cedar decides, or the same decision made earlier for this
//! identity by the same policy set for an identical request in the same time bucket.

use std::collections::HashMap;
use std::sync::Arc;

use warden_policy::{Decision, Effect, PolicyRequest, PolicySet};

use super::{method_index, RequestCtx, Routed};
use crate::deny::Deny;
use crate::token_cache::MAX_CACHED_DECISIONS;

pub(super) fn check(
    ctx: &mut RequestCtx<'_, '_>,
    at: Routed<'_>,
    set: Arc<PolicySet>,
) -> Result<(), Deny> {
    let decision = decide(ctx, at, set);
    ctx.policy_ids = decision.policy_ids;
    if matches!(decision.effect, Effect::Allow) {
        return Ok(());
    }
    let reason = if ctx.policy_ids.is_empty() {
        "no policy permits this request".to_owned()
    } else {
        format!("denied by policy {}", ctx.policy_ids.join(", "))
    };
    Err(Deny::Policy {
        policy_ids: std::mem::take(&mut ctx.policy_ids),
        reason,
    })
}

/// The decision, from the identity's cache or from Cedar (then cached).
fn decide(ctx: &RequestCtx<'_, '_>, at: Routed<'_>, set: Arc<PolicySet>) -> Decision {
    let (facts, verified, route) = (ctx.facts, &ctx.verified, at.route);
    let key = (route.index, method_index(facts.method), facts.client_ip);
    let bucket = set.time_bucket(ctx.now);
    let mut cache = crate::lock(&verified.shared.decisions);
    if let Some((s, b, d)) = cache.get(&key).and_then(|paths| paths.get(facts.path)) {
        if Arc::ptr_eq(s, &set) && *b == bucket {
            return d.clone();
        }
    }
    let access = &verified.access;
    let scopes: Vec<&str> = access.scopes().iter().map(|s| s.as_str()).collect();
    let c = &verified.claims;
    let decision = set.decide(&PolicyRequest {
        tenant: &c.tenant,
        principal: &c.sub,
        principal_kind: access.kind().as_str(),
        owner: None,
        actor: verified.actor(),
        method: facts.method,
        route: &route.prefix,
        route_tenant: route.tenant_id(),
        path: facts.path,
        client_ip: facts.client_ip,
        time: ctx.now,
        scopes: &scopes,
        delegation_depth: access.chain().depth(),
    });
    if cache.values().map(HashMap::len).sum::<usize>() >= MAX_CACHED_DECISIONS {
        cache.clear();
    }
    cache
        .entry(key)
        .or_default()
        .insert(facts.path.into(), (set, bucket, decision.clone()));
    decision
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;

    const POLICIES: &str = r#"
@id("scope_checked")
permit (principal, action, resource);

@id("agents_read_only")
forbid (principal, action in [Warden::Action::"POST"], resource)
when { principal.kind == "agent" };
"#;

    #[test]
    fn cedar_decides_with_the_determining_policies_and_the_identity_remembers() {
        let config = testing::config();
        let set = Arc::new(PolicySet::from_str(POLICIES, "test.cedar").unwrap());
        let h = hyper::HeaderMap::new();
        let mut c = testing::claims();
        c.scope = "crm:contacts:read crm:contacts:write".into();
        let get = testing::facts("GET", "/crm/a", &h);
        let mut ctx = testing::ctx(&get, c.clone());
        check(
            &mut ctx,
            testing::routed(&config, "/crm/a", "GET"),
            Arc::clone(&set),
        )
        .unwrap();
        assert_eq!(ctx.policy_ids, ["test.scope_checked"]);
        let post = testing::facts("POST", "/crm/a", &h);
        let mut ctx = testing::ctx(&post, c);
        let at = testing::routed(&config, "/crm/a", "POST");
        let deny = check(&mut ctx, at, Arc::clone(&set)).unwrap_err();
        assert_eq!((deny.phase(), deny.status().as_u16()), ("policy", 403));
        assert_eq!(deny.policy_ids(), ["test.agents_read_only"]);
        assert_eq!(deny.reason(), "denied by policy test.agents_read_only");
        // The same question again is answered from the identity's cache.
        let cached = crate::lock(&ctx.verified.shared.decisions)
            .values()
            .map(HashMap::len)
            .sum::<usize>();
        assert_eq!(cached, 1);
        assert!(check(&mut ctx, at, set).is_err());
    }
}
