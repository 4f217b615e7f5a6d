//! The access review: principals, ceilings, grants both ways, last issuance and last use.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::Harness;

fn row<'a>(report: &'a Value, id: &str) -> &'a Value {
    report
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["principal"] == id)
        .unwrap_or_else(|| panic!("{id} missing from {report}"))
}

#[tokio::test]
async fn the_access_report_says_who_can_do_what_and_when_they_last_did() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let user = h
        .agent_with(
            &t,
            "ann",
            json!({ "kind": "user", "scopes": "crm:contacts:read crm:contacts:write" }),
        )
        .await;
    let agent = h
        .agent_with(
            &t,
            "assistant",
            json!({ "scopes": "crm:contacts:read", "owner": user.id }),
        )
        .await;
    let idle = h.agent(&t, "idle", "email:send").await;
    let grant = h.grant(&user, &agent, "crm:contacts:read").await;

    let issued_at = h.now();
    let user_token = h.own_token(&user).await;
    h.clock.advance(5);
    let _delegated = h.exchanged(&agent, &user_token).await;
    h.clock.advance(5);
    // A gateway reports it served the agent's tokens.
    let (s, v) = h
        .admin(
            Method::POST,
            "/activity",
            Some(json!({ "used": { agent.id.clone(): h.now(), "garbage": 5 } })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], 1);

    let (s, report) = h
        .admin(Method::GET, &format!("/tenants/{t}/access-report"), None)
        .await;
    assert_eq!(s, 200, "{report}");
    let u = row(&report, &user.id);
    assert_eq!(u["kind"], "user");
    assert_eq!(u["scopes"], "crm:contacts:read crm:contacts:write");
    assert_eq!(
        u["last_issued_at"],
        issued_at + 5,
        "the exchange issued for ann"
    );
    assert_eq!(
        u["last_used_at"],
        issued_at + 5,
        "ann's token was exchanged"
    );
    assert_eq!(u["delegates_to"][0]["principal"], agent.id.as_str());
    assert_eq!(u["delegates_to"][0]["grant"], grant["id"]);
    let a = row(&report, &agent.id);
    assert_eq!(a["owner"], user.id.as_str());
    assert_eq!(a["acts_for"][0]["principal"], user.id.as_str());
    assert_eq!(a["acts_for"][0]["scopes"], "crm:contacts:read");
    assert_eq!(a["last_issued_at"], issued_at + 5);
    assert_eq!(a["last_used_at"], issued_at + 10);
    let i = row(&report, &idle.id);
    assert_eq!(i["last_issued_at"], Value::Null);
    assert_eq!(i["last_used_at"], Value::Null);

    // A revoked grant no longer shows.
    let (s, _) = h
        .admin(
            Method::POST,
            &format!("/delegations/{}/revoke", grant["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (_, report) = h
        .admin(Method::GET, &format!("/tenants/{t}/access-report"), None)
        .await;
    assert_eq!(row(&report, &agent.id)["acts_for"], json!([]));

    // Bad input.
    let (s, _) = h
        .admin(Method::POST, "/activity", Some(json!({ "used": [] })))
        .await;
    assert_eq!(s, 400);
    let (s, _) = h
        .admin(Method::GET, "/tenants/nope/access-report", None)
        .await;
    assert_eq!(s, 404);
}
