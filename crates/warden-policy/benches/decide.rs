//! What one policy decision costs as the policy set grows.
//!
//! `cargo bench -p warden-policy --bench decide`. Group `decide`, one entry per set size
//! (0, 10, 100, 1000 policies): the four example policies of `policies/` plus generated ones
//! shaped like a real deployment's (per-route permits for one agent, per-route forbids by
//! hour, IP range or tenant, scope-gated writes), almost none of which match the request.
//! Each iteration builds the request natively from a `PolicyRequest`, as the gateway does,
//! and decides it; size 0 is that fixed cost alone (an empty set, deny). The target is a
//! median of at most 20 µs at 1,000 policies.
//!
//! Group `decide_new_client_ip`: the same with a different client address every iteration
//! (4,096 of them, more than a thread's cache of `ip(…)` expressions holds), so every
//! request pays for Cedar's `ip` name parse; the difference to `decide` is that cache's gain.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark's setup fails by panicking"
)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use warden_policy::{Effect, PolicyRequest, PolicySet};

const EXAMPLES: [(&str, &str); 4] = [
    ("default", include_str!("../../../policies/default.cedar")),
    (
        "tenant_isolation",
        include_str!("../../../policies/tenant_isolation.cedar"),
    ),
    (
        "read_only_agents",
        include_str!("../../../policies/read_only_agents.cedar"),
    ),
    (
        "office_hours",
        include_str!("../../../policies/office_hours.cedar"),
    ),
];

/// One generated policy, `i` choosing its shape and what it names.
fn generated(i: usize) -> String {
    let route = format!("/svc{i}/");
    match i % 5 {
        0 => format!(
            "@id(\"agent_{i}_reads\") permit (principal == Warden::Principal::\"agt_gen{i}\", \
             action in [Warden::Action::\"GET\", Warden::Action::\"HEAD\"], resource) \
             when {{ resource.route == \"{route}\" }};"
        ),
        1 => format!(
            "@id(\"night_{i}\") forbid (principal, action, resource) \
             when {{ resource.route == \"{route}\" && (context.hour < 6 || context.hour > 22) }};"
        ),
        2 => format!(
            "@id(\"net_{i}\") forbid (principal, action, resource) \
             when {{ resource.route == \"{route}\" && \
             !context.client_ip.isInRange(ip(\"10.{}.0.0/16\")) }};",
            i % 256
        ),
        3 => format!(
            "@id(\"tenant_{i}_admin\") forbid (principal in Warden::Tenant::\"tnt_gen{i}\", \
             action, resource) when {{ resource.path like \"/admin/*\" && \
             context.delegation_depth > 0 }};"
        ),
        _ => format!(
            "@id(\"writes_{i}\") permit (principal, action in [Warden::Action::\"POST\", \
             Warden::Action::\"PUT\"], resource) when {{ resource.route == \"{route}\" && \
             context.scopes.contains(\"svc{i}:write\") && principal.kind == \"service\" }};"
        ),
    }
}

/// The examples plus `n - 4` generated policies in one text (no examples for `n == 0`).
fn policy_set(n: usize) -> PolicySet {
    let mut src = String::new();
    if n > 0 {
        for (name, text) in EXAMPLES {
            // One text means one file stem; the examples' ids stay distinct by position.
            let _ = writeln!(src, "// {name}\n{}", text.replace("@id(", "@note("));
        }
    }
    for i in 0..n.saturating_sub(EXAMPLES.len()) {
        src.push_str(&generated(i));
        src.push('\n');
    }
    let set = PolicySet::from_str(&src, "bench.cedar").unwrap();
    assert_eq!(set.len(), n);
    set
}

const SCOPES: [&str; 3] = ["crm:contacts:read", "crm:contacts:write", "agent:write"];

/// A user's POST on its tenant's CRM route, through an agent, on a Monday at 11:00 UTC:
/// permitted by the examples' base policy, forbidden by nothing.
fn request(client_ip: IpAddr) -> PolicyRequest<'static> {
    PolicyRequest {
        tenant: "tnt_acme",
        principal: "usr_alice",
        principal_kind: "user",
        owner: None,
        actor: Some("agt_bot"),
        method: "POST",
        route: "/crm/",
        route_tenant: Some("tnt_acme"),
        path: "/crm/contacts/42",
        client_ip,
        time: 1_750_071_600,
        scopes: &SCOPES,
        delegation_depth: 1,
    }
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for n in [0, 10, 100, 1000] {
        let set = policy_set(n);
        let ip = IpAddr::from([10, 7, 1, 2]);
        let expected = if n == 0 { Effect::Deny } else { Effect::Allow };
        let decision = set.decide(&request(ip));
        assert_eq!(decision.effect, expected, "{decision:?}");
        assert!(decision.errors.is_empty(), "{decision:?}");
        group.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter(|| set.decide(black_box(&request(black_box(ip)))))
        });
    }
    group.finish();
}

fn decide_new_client_ip(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide_new_client_ip");
    let addresses: Vec<IpAddr> = (0..4096u32)
        .map(|i| IpAddr::from((0x0a07_0000 + i).to_be_bytes()))
        .collect();
    for n in [0, 1000] {
        let set = policy_set(n);
        let mut next = addresses.iter().cycle();
        group.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter(|| {
                let ip = *next.next().unwrap();
                set.decide(black_box(&request(ip)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decide, decide_new_client_ip);
criterion_main!(benches);
