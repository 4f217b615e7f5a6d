//! Partitions a policy set so that a decision evaluates only the policies that can apply to
//! the request, instead of every policy in the set.
//!
//! Each policy goes into one bucket, by the first of these it provably depends on:
//! - a route: a `when` clause whose body is, or has as a top-level `&&` conjunct,
//!   `resource.route == "<literal>"`;
//! - a principal: scope `principal == Warden::Principal::"<id>"`;
//! - a tenant: scope `principal in Warden::Tenant::"<id>"` (a principal's only parent is its
//!   tenant);
//! - otherwise the generic bucket.
//!
//! A decision evaluates the generic bucket and the buckets of the request's route, principal
//! and tenant (each route's bucket also holds the generic policies, so that is one
//! evaluation fewer), each with the same request and entities, and combines them as Cedar would over
//! the whole set: any satisfied `forbid` denies; otherwise any satisfied `permit` allows;
//! otherwise deny. Policies in other buckets cannot be satisfied by this request, so skipping
//! them changes no decision; only their evaluation errors go unreported.

use std::collections::HashMap;

use cedar_policy as cedar;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Bucket {
    Route(String),
    Principal(String),
    Tenant(String),
    Generic,
}

pub(crate) struct Slices {
    generic: cedar::PolicySet,
    by_route: HashMap<String, cedar::PolicySet>,
    by_principal: HashMap<String, cedar::PolicySet>,
    by_tenant: HashMap<String, cedar::PolicySet>,
}

impl Slices {
    pub fn new(policies: &cedar::PolicySet) -> Self {
        let mut s = Self {
            generic: cedar::PolicySet::new(),
            by_route: HashMap::new(),
            by_principal: HashMap::new(),
            by_tenant: HashMap::new(),
        };
        for p in policies.policies() {
            let target = match bucket_of(p) {
                Bucket::Route(r) => s.by_route.entry(r).or_default(),
                Bucket::Principal(id) => s.by_principal.entry(id).or_default(),
                Bucket::Tenant(id) => s.by_tenant.entry(id).or_default(),
                Bucket::Generic => &mut s.generic,
            };
            // Ids are unique in the source set, so adding to a bucket cannot clash.
            let _ = target.add(p.clone());
        }
        // Most requests are on a route with policies of its own: evaluating the generic
        // policies with them in one set saves a whole evaluation per request.
        for set in s.by_route.values_mut() {
            for p in s.generic.policies() {
                let _ = set.add(p.clone());
            }
        }
        s
    }

    /// The sets to evaluate for a request on `route` by `principal` of `tenant`.
    pub fn relevant<'a>(
        &'a self,
        route: &str,
        principal: &str,
        tenant: &str,
    ) -> impl Iterator<Item = &'a cedar::PolicySet> {
        [
            Some(self.by_route.get(route).unwrap_or(&self.generic)),
            self.by_principal.get(principal),
            self.by_tenant.get(tenant),
        ]
        .into_iter()
        .flatten()
    }
}

fn bucket_of(policy: &cedar::Policy) -> Bucket {
    let Ok(est) = policy.to_json() else {
        return Bucket::Generic;
    };
    let route = est
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("kind").and_then(Value::as_str) == Some("when"))
        .find_map(|c| c.get("body").and_then(route_literal));
    if let Some(r) = route {
        return Bucket::Route(r);
    }
    let principal = est.get("principal");
    let op = principal.and_then(|p| p.get("op")).and_then(Value::as_str);
    let entity = principal.and_then(|p| p.get("entity"));
    let ty = entity.and_then(|e| e.get("type")).and_then(Value::as_str);
    let id = entity.and_then(|e| e.get("id")).and_then(Value::as_str);
    match (op, ty, id) {
        (Some("=="), Some("Warden::Principal"), Some(id)) => Bucket::Principal(id.to_owned()),
        (Some("in"), Some("Warden::Tenant"), Some(id)) => Bucket::Tenant(id.to_owned()),
        _ => Bucket::Generic,
    }
}

/// `resource.route == "lit"` (either side), or the same as a conjunct of `&&`.
fn route_literal(expr: &Value) -> Option<String> {
    if let Some(and) = expr.get("&&") {
        return and
            .get("left")
            .and_then(route_literal)
            .or_else(|| and.get("right").and_then(route_literal));
    }
    let eq = expr.get("==")?;
    let (l, r) = (eq.get("left")?, eq.get("right")?);
    let literal = |v: &Value| v.get("Value").and_then(Value::as_str).map(str::to_owned);
    if is_resource_route(l) {
        literal(r)
    } else if is_resource_route(r) {
        literal(l)
    } else {
        None
    }
}

fn is_resource_route(v: &Value) -> bool {
    v.get(".").is_some_and(|dot| {
        dot.get("attr").and_then(Value::as_str) == Some("route")
            && dot
                .get("left")
                .and_then(|l| l.get("Var"))
                .and_then(Value::as_str)
                == Some("resource")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr as _;

    fn bucket(src: &str) -> Bucket {
        let set = cedar::PolicySet::from_str(src).unwrap_or_else(|e| unreachable!("{e}"));
        let p = set.policies().next().unwrap_or_else(|| unreachable!());
        bucket_of(p)
    }

    #[test]
    fn buckets() {
        assert_eq!(
            bucket(
                r#"permit (principal, action, resource) when { context.hour > 1 && resource.route == "/a/" };"#
            ),
            Bucket::Route("/a/".into())
        );
        assert_eq!(
            bucket(r#"permit (principal, action, resource) when { "/b/" == resource.route };"#),
            Bucket::Route("/b/".into())
        );
        // A disjunction does not pin the route.
        assert_eq!(
            bucket(
                r#"permit (principal, action, resource) when { resource.route == "/a/" || context.hour > 1 };"#
            ),
            Bucket::Generic
        );
        // `unless` does not pin it either: the policy applies everywhere else.
        assert_eq!(
            bucket(r#"forbid (principal, action, resource) unless { resource.route == "/a/" };"#),
            Bucket::Generic
        );
        assert_eq!(
            bucket(r#"permit (principal == Warden::Principal::"agt_x", action, resource);"#),
            Bucket::Principal("agt_x".into())
        );
        assert_eq!(
            bucket(r#"forbid (principal in Warden::Tenant::"tnt_x", action, resource);"#),
            Bucket::Tenant("tnt_x".into())
        );
    }
}
