//! A gateway request as Cedar sees it.
//!
//! This module owns the translation of a [`PolicyRequest`] into a Cedar request and its
//! entities (principal, tenant, owner, actor, resource), built natively rather than through
//! JSON because it runs on every proxied call. It performs no I/O and reads no clock: the
//! gateway passes the time in, so decisions are reproducible.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;

use cedar_policy::{Context, Entities, Entity, EntityUid, Request, RestrictedExpression};

use crate::schema::Names;

const SECONDS_PER_DAY: i64 = 86_400;
const SECONDS_PER_HOUR: i64 = 3_600;
/// 1970-01-01 was a Thursday: weekday 3 when Monday is 0.
const EPOCH_WEEKDAY: i64 = 3;

/// What the gateway knows about a request once the token is verified.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    /// The principal's tenant id, e.g. `tnt_…`.
    pub tenant: &'a str,
    /// The token's `sub`, e.g. `agt_…`, `usr_…`, `svc_…`.
    pub principal: &'a str,
    /// `agent`, `service` or `user` (from the id prefix).
    pub principal_kind: &'a str,
    /// The owner user id, if known.
    pub owner: Option<&'a str>,
    /// The innermost acting party of the token's `act` chain (the agent acting for
    /// `principal`), if any.
    pub actor: Option<&'a str>,
    /// The HTTP method; the Cedar action id.
    pub method: &'a str,
    /// The gateway route's prefix, e.g. `/crm/`.
    pub route: &'a str,
    /// The tenant the route belongs to (route config), if any.
    pub route_tenant: Option<&'a str>,
    /// The request path.
    pub path: &'a str,
    pub client_ip: IpAddr,
    /// Unix seconds, injected so tests are deterministic.
    pub time: i64,
    /// The token's scopes.
    pub scopes: &'a [&'a str],
    /// The length of the token's `act` chain.
    pub delegation_depth: u32,
}

/// The principal kind an id's prefix names: `agent`, `service` or `user`. An id of no known
/// kind takes the restrictive reading, `agent` — decided once, in
/// [`warden_core::access::principal_kind`], for the gateway as for policies.
///
/// Owners and actors arrive as bare ids, so this is how their `kind` attribute is filled in.
pub fn kind_of(id: &str) -> &'static str {
    warden_core::access::principal_kind(id).as_str()
}

/// The UTC hour (0–23) and weekday (0 = Monday … 6 = Sunday) of a unix time.
///
/// Euclidean division keeps times before 1970 on the right day.
pub fn utc_hour_weekday(time: i64) -> (i64, i64) {
    let day = time.div_euclid(SECONDS_PER_DAY);
    let hour = time.rem_euclid(SECONDS_PER_DAY) / SECONDS_PER_HOUR;
    let weekday = (day + EPOCH_WEEKDAY).rem_euclid(7);
    (hour, weekday)
}

/// Cedar's `ip()` refuses IPv4-embedded IPv6 text (`::ffff:10.0.0.1`), which is how a
/// dual-stack listener reports IPv4 clients and how `Ipv6Addr`'s `Display` writes them. So a
/// mapped address becomes the IPv4 address it stands for (what policies mean by
/// `ip("10.0.0.0/8")`), and any other IPv6 address is written as eight hex groups.
fn cedar_ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!(
                    "{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
                    s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
                )
            }
        },
    }
}

/// Most client addresses whose Cedar expression one thread remembers; see [`ip_expression`].
const IP_CACHE_ENTRIES: usize = 1024;

thread_local! {
    static IP_EXPRESSIONS: RefCell<HashMap<IpAddr, RestrictedExpression>> =
        RefCell::new(HashMap::new());
}

/// The Cedar expression `ip("…")` for a client address.
///
/// `RestrictedExpression::new_ip` runs Cedar's whole parser just to name the `ip` function:
/// about 5 µs, a third of a decision's fixed cost with cedar-policy 4.14. Clients call
/// repeatedly from the same addresses, so each thread keeps the expressions of recent
/// addresses and clones them (a reference-count bump). Per thread, so the hot path takes no
/// lock; cleared when full, which is simpler than an LRU and as good for this traffic.
fn ip_expression(ip: IpAddr) -> RestrictedExpression {
    let build = || RestrictedExpression::new_ip(cedar_ip_text(ip));
    IP_EXPRESSIONS
        .try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return build();
            };
            if let Some(expr) = cache.get(&ip) {
                return expr.clone();
            }
            if cache.len() >= IP_CACHE_ENTRIES {
                cache.clear();
            }
            let expr = build();
            cache.insert(ip, expr.clone());
            expr
        })
        // The thread is exiting and its cache is gone: build without it.
        .unwrap_or_else(|_| build())
}

/// Collects entities, skipping a uid already present: the owner or actor may be the
/// principal itself, and Cedar refuses two different entities with one uid.
struct EntityList {
    uids: Vec<EntityUid>,
    entities: Vec<Entity>,
}

impl EntityList {
    fn with_capacity(n: usize) -> Self {
        Self {
            uids: Vec::with_capacity(n),
            entities: Vec::with_capacity(n),
        }
    }

    fn contains(&self, uid: &EntityUid) -> bool {
        self.uids.contains(uid)
    }

    fn push(&mut self, entity: Entity) {
        self.uids.push(entity.uid());
        self.entities.push(entity);
    }
}

/// Builds the Cedar request and the entities it refers to.
///
/// The request is not checked against the schema here: it conforms by construction, and
/// the crate's tests check that it does, which keeps the check off the hot path.
pub(crate) fn to_cedar(
    names: &Names,
    req: &PolicyRequest<'_>,
) -> Result<(Request, Entities), String> {
    let action = names
        .action(req.method)
        .ok_or_else(|| format!("method `{}` is not a Warden action", req.method))?
        .clone();

    let tenant = names.tenant_uid(req.tenant);
    let principal = names.principal_uid(req.principal);
    let mut list = EntityList::with_capacity(5);
    list.push(Entity::new_no_attrs(tenant.clone(), Default::default()));

    // Owners and actors carry no tenant of their own in the token, which names one tenant;
    // they are taken to be members of the principal's.
    let member = |uid: EntityUid, kind: &str, owner: Option<EntityUid>| {
        let mut attrs = Vec::with_capacity(3);
        attrs.push((
            "kind".to_owned(),
            RestrictedExpression::new_string(kind.to_owned()),
        ));
        attrs.push((
            "tenant".to_owned(),
            RestrictedExpression::new_entity_uid(tenant.clone()),
        ));
        if let Some(owner) = owner {
            attrs.push((
                "owner".to_owned(),
                RestrictedExpression::new_entity_uid(owner),
            ));
        }
        Entity::new_with_tags(uid, attrs, [tenant.clone()], [])
            .map_err(|e| format!("principal entity: {e}"))
    };

    let owner = req.owner.map(|id| names.principal_uid(id));
    list.push(member(
        principal.clone(),
        req.principal_kind,
        owner.clone(),
    )?);
    if let (Some(uid), Some(id)) = (owner, req.owner) {
        if !list.contains(&uid) {
            list.push(member(uid, kind_of(id), None)?);
        }
    }
    let actor = req.actor.map(|id| names.principal_uid(id));
    if let (Some(uid), Some(id)) = (&actor, req.actor) {
        if !list.contains(uid) {
            list.push(member(uid.clone(), kind_of(id), None)?);
        }
    }

    let resource = names.resource_uid(req.path);
    let mut attrs = Vec::with_capacity(3);
    attrs.push((
        "route".to_owned(),
        RestrictedExpression::new_string(req.route.to_owned()),
    ));
    attrs.push((
        "path".to_owned(),
        RestrictedExpression::new_string(req.path.to_owned()),
    ));
    if let Some(id) = req.route_tenant {
        let uid = names.tenant_uid(id);
        if !list.contains(&uid) {
            list.push(Entity::new_no_attrs(uid.clone(), Default::default()));
        }
        attrs.push((
            "tenant".to_owned(),
            RestrictedExpression::new_entity_uid(uid),
        ));
    }
    list.push(
        Entity::new_with_tags(resource.clone(), attrs, [], [])
            .map_err(|e| format!("resource entity: {e}"))?,
    );

    let (hour, weekday) = utc_hour_weekday(req.time);
    let scopes = req
        .scopes
        .iter()
        .map(|s| RestrictedExpression::new_string((*s).to_owned()));
    let mut pairs = Vec::with_capacity(7);
    pairs.push(("client_ip".to_owned(), ip_expression(req.client_ip)));
    pairs.push(("time".to_owned(), RestrictedExpression::new_long(req.time)));
    pairs.push(("hour".to_owned(), RestrictedExpression::new_long(hour)));
    pairs.push((
        "weekday".to_owned(),
        RestrictedExpression::new_long(weekday),
    ));
    pairs.push(("scopes".to_owned(), RestrictedExpression::new_set(scopes)));
    pairs.push((
        "delegation_depth".to_owned(),
        RestrictedExpression::new_long(i64::from(req.delegation_depth)),
    ));
    if let Some(uid) = actor {
        pairs.push((
            "actor".to_owned(),
            RestrictedExpression::new_entity_uid(uid),
        ));
    }
    let context = Context::from_pairs(pairs).map_err(|e| format!("context: {e}"))?;

    let request = Request::new(principal, action, resource, context, None)
        .map_err(|e| format!("request: {e}"))?;
    let entities =
        Entities::from_entities(list.entities, None).map_err(|e| format!("entities: {e}"))?;
    Ok((request, entities))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;
    use crate::schema::schema;

    pub(crate) fn sample<'a>(scopes: &'a [&'a str]) -> PolicyRequest<'a> {
        PolicyRequest {
            tenant: "tnt_a",
            principal: "agt_1",
            principal_kind: "agent",
            owner: Some("usr_o"),
            actor: Some("agt_2"),
            method: "POST",
            route: "/crm/",
            route_tenant: Some("tnt_b"),
            path: "/crm/contacts",
            client_ip: "::ffff:10.1.2.3".parse().unwrap(),
            time: 1_750_000_000,
            scopes,
            delegation_depth: 1,
        }
    }

    #[test]
    fn hour_and_weekday() {
        assert_eq!(utc_hour_weekday(0), (0, 3)); // Thu 1970-01-01 00:00
        assert_eq!(utc_hour_weekday(-1), (23, 2)); // Wed 1969-12-31 23:59:59
        assert_eq!(utc_hour_weekday(1_750_000_000), (15, 6)); // Sun 2025-06-15 15:06:40
        assert_eq!(utc_hour_weekday(1_750_032_000), (0, 0)); // Mon 2025-06-16 00:00
        assert_eq!(utc_hour_weekday(1_750_032_000 + 5 * 86_400 - 1), (23, 4)); // Fri 23:59:59
        assert!((0..24).contains(&utc_hour_weekday(i64::MIN).0));
        assert!((0..7).contains(&utc_hour_weekday(i64::MAX).1));
    }

    #[test]
    fn kinds_from_prefixes() {
        assert_eq!(kind_of("agt_x"), "agent");
        assert_eq!(kind_of("svc_x"), "service");
        assert_eq!(kind_of("usr_x"), "user");
        // No known kind: the restrictive reading, as the gateway reads a token's subject.
        assert_eq!(kind_of("tnt_x"), "agent");
        assert_eq!(kind_of("agt"), "agent");
    }

    #[test]
    fn ip_text_cedar_accepts() {
        let cases = [
            ("10.1.2.3", "10.1.2.3"),
            ("::ffff:10.1.2.3", "10.1.2.3"),
            ("::1", "0:0:0:0:0:0:0:1"),
            ("2001:db8::1", "2001:db8:0:0:0:0:0:1"),
        ];
        for (input, want) in cases {
            assert_eq!(cedar_ip_text(input.parse().unwrap()), want);
        }
    }

    /// The natively built request and entities conform to the schema, which is what lets
    /// `to_cedar` skip the check at run time.
    #[test]
    fn built_request_conforms_to_schema() {
        let schema = schema().unwrap();
        let names = Names::new().unwrap();
        for (owner, actor, route_tenant) in [
            (Some("usr_o"), Some("agt_2"), Some("tnt_b")),
            (None, None, None),
            (Some("agt_1"), Some("agt_1"), Some("tnt_a")),
        ] {
            let req = PolicyRequest {
                owner,
                actor,
                route_tenant,
                ..sample(&["crm:contacts:read", "agent:write"])
            };
            let (request, entities) = to_cedar(&names, &req).unwrap();
            Request::new(
                request.principal().unwrap().clone(),
                request.action().unwrap().clone(),
                request.resource().unwrap().clone(),
                request.context().unwrap().clone(),
                Some(&schema),
            )
            .unwrap();
            Entities::from_entities(entities.iter().cloned(), Some(&schema)).unwrap();
        }
    }

    #[test]
    fn unknown_method_is_refused() {
        let names = Names::new().unwrap();
        let req = PolicyRequest {
            method: "TRACE",
            ..sample(&[])
        };
        assert!(to_cedar(&names, &req).unwrap_err().contains("`TRACE`"));
    }
}
