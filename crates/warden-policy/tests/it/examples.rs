//! The example policies in `policies/`: one allow and one deny for each, with the
//! determining policies, and their own test file passing.

use warden_policy::{run_tests, Effect, PolicyRequest, PolicySet};

use crate::{examples_dir, request, MONDAY_11, SUNDAY_15};

const DEFAULT: &str = "default.scope_checked";
const CROSS_TENANT: &str = "tenant_isolation.cross_tenant";
const READ_ONLY: &str = "read_only_agents.agents_read_only";
const OFFICE_HOURS: &str = "office_hours.writes_in_office_hours";

fn examples() -> PolicySet {
    PolicySet::load_dir(&examples_dir()).unwrap()
}

fn assert_decision(set: &PolicySet, req: &PolicyRequest<'_>, effect: Effect, ids: &[&str]) {
    let decision = set.decide(req);
    assert_eq!(decision.effect, effect, "{req:?} → {decision:?}");
    assert_eq!(decision.policy_ids, ids, "{req:?} → {decision:?}");
    assert!(decision.errors.is_empty(), "{decision:?}");
}

#[test]
fn the_example_set_loads_with_annotated_ids() {
    let set = examples();
    assert_eq!(set.len(), 4);
    assert_eq!(
        set.ids().collect::<Vec<_>>(),
        [DEFAULT, OFFICE_HOURS, READ_ONLY, CROSS_TENANT]
    );
}

#[test]
fn default_permits_what_the_gateway_scope_checked() {
    assert_decision(
        &examples(),
        &request(&["crm:contacts:read"]),
        Effect::Allow,
        &[DEFAULT],
    );
}

#[test]
fn tenant_isolation() {
    let set = examples();
    let other = PolicyRequest {
        tenant: "tnt_evil",
        principal: "usr_mallory",
        ..request(&[])
    };
    assert_decision(&set, &other, Effect::Deny, &[CROSS_TENANT]);
    // A route without a tenant is shared.
    let shared = PolicyRequest {
        route_tenant: None,
        ..other
    };
    assert_decision(&set, &shared, Effect::Allow, &[DEFAULT]);
}

#[test]
fn read_only_agents() {
    let set = examples();
    let agent = PolicyRequest {
        principal: "agt_bot",
        principal_kind: "agent",
        owner: Some("usr_alice"),
        ..request(&["crm:contacts:write"])
    };
    for method in ["GET", "HEAD", "OPTIONS"] {
        assert_decision(
            &set,
            &PolicyRequest { method, ..agent },
            Effect::Allow,
            &[DEFAULT],
        );
    }
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        assert_decision(
            &set,
            &PolicyRequest { method, ..agent },
            Effect::Deny,
            &[READ_ONLY],
        );
    }
    let granted = PolicyRequest {
        method: "POST",
        scopes: &["crm:contacts:write", "agent:write"],
        ..agent
    };
    assert_decision(&set, &granted, Effect::Allow, &[DEFAULT]);

    // An agent acting for a user is held to the same rule.
    let delegated = PolicyRequest {
        method: "DELETE",
        actor: Some("agt_bot"),
        delegation_depth: 1,
        ..request(&["crm:contacts:delete"])
    };
    assert_decision(&set, &delegated, Effect::Deny, &[READ_ONLY]);
    // A service is not an agent.
    let service = PolicyRequest {
        principal: "svc_sync",
        principal_kind: "service",
        method: "POST",
        ..request(&["crm:contacts:write"])
    };
    assert_decision(&set, &service, Effect::Allow, &[DEFAULT]);
}

#[test]
fn office_hours() {
    let set = examples();
    let write = PolicyRequest {
        method: "PUT",
        ..request(&["crm:contacts:write"])
    };
    assert_decision(&set, &write, Effect::Allow, &[DEFAULT]);
    let monday = MONDAY_11 - 11 * 3600;
    for (time, effect) in [
        (monday + 8 * 3600 - 1, Effect::Deny),
        (monday + 8 * 3600, Effect::Allow),
        (monday + 18 * 3600 - 1, Effect::Allow),
        (monday + 18 * 3600, Effect::Deny),
        (monday + 4 * 86_400 + 12 * 3600, Effect::Allow), // Friday noon
        (monday + 5 * 86_400 + 12 * 3600, Effect::Deny),  // Saturday noon
        (SUNDAY_15, Effect::Deny),
    ] {
        let decision = set.decide(&PolicyRequest { time, ..write });
        assert_eq!(decision.effect, effect, "at {time}: {decision:?}");
        if effect == Effect::Deny {
            assert_eq!(decision.policy_ids, [OFFICE_HOURS]);
        }
    }
    // Reads are not restricted.
    let read = PolicyRequest {
        time: SUNDAY_15,
        ..request(&[])
    };
    assert_decision(&set, &read, Effect::Allow, &[DEFAULT]);
}

#[test]
fn every_applicable_forbid_is_reported() {
    let req = PolicyRequest {
        tenant: "tnt_evil",
        principal: "agt_bot",
        principal_kind: "agent",
        method: "POST",
        time: SUNDAY_15,
        ..request(&["crm:contacts:write"])
    };
    assert_decision(
        &examples(),
        &req,
        Effect::Deny,
        &[OFFICE_HOURS, READ_ONLY, CROSS_TENANT],
    );
}

#[test]
fn the_shipped_policy_tests_pass() {
    let report = run_tests(&examples_dir()).unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(report.failed, 0);
    assert!(report.passed >= 8, "{report}");
    assert_eq!(report.passed, report.cases.len());
    // Every example policy is shown both allowing (or standing aside) and denying.
    for id in [CROSS_TENANT, READ_ONLY, OFFICE_HOURS] {
        assert!(
            report.cases.iter().any(|c| c.decision.policy_ids == [id]),
            "no case denied by {id} alone"
        );
    }
    assert!(report.cases.iter().any(|c| c.decision.is_allow()));
}
