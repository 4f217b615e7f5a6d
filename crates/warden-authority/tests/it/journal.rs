//! A change and its record commit together: an `Idempotency-Key` retry replays the change's
//! answer and applies nothing twice, and the change's audit entry waits in the outbox until
//! the audit log has it. (A process killed between commit and answer is `warden`'s test.)

use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};
use warden_authority::journal::OutboxDrain;
use warden_store::{prelude::*, RevocationTarget};

use crate::support::{audit_log as open_log, Harness, ADMIN};

/// One answer as the client saw it.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    body: String,
    replayed: bool,
}

async fn call(h: &Harness, method: Method, path: &str, key: &str, body: Option<Value>) -> Seen {
    let mut req = h
        .http
        .request(method, format!("{}/admin/v1{path}", h.url))
        .bearer_auth(ADMIN)
        .header("idempotency-key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    Seen {
        status: res.status().as_u16(),
        replayed: res.headers().contains_key("idempotent-replayed"),
        body: res.text().await.unwrap(),
    }
}

/// Sends the call twice under one key: the retry is the first answer, replayed.
async fn twice(h: &Harness, method: Method, path: &str, key: &str, body: Option<Value>) -> Value {
    let first = call(h, method.clone(), path, key, body.clone()).await;
    assert!((200..300).contains(&first.status), "{path}: {first:?}");
    assert!(!first.replayed, "{path}");
    let again = call(h, method, path, key, body).await;
    assert_eq!(
        again,
        Seen {
            replayed: true,
            ..first
        },
        "{path}"
    );
    serde_json::from_str(&again.body).unwrap()
}

async fn revocations_matching(h: &Harness, want: impl Fn(&RevocationTarget) -> bool) -> usize {
    h.store
        .revocations_since(0, 1_000)
        .await
        .unwrap()
        .iter()
        .filter(|r| want(&r.event.target))
        .count()
}

#[tokio::test]
async fn retried_changes_replay_their_answer_and_apply_once() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let agent = h.agent(&t, "bot", "x:read").await;

    let keys = twice(&h, Method::POST, "/keys/rotate", "rotate", None).await;
    let retired = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|k| k["state"] == "retired")
            .count()
    };
    assert_eq!(retired(&keys), 1, "{keys}");
    let (_, listed) = h.admin(Method::GET, "/keys", None).await;
    assert_eq!(
        listed, keys,
        "the answer lists the keys as the one rotation left them"
    );

    // The secret replayed is the one that works: the retry made no second one.
    let path = format!("/principals/{}/secret", agent.id);
    let secret = twice(&h, Method::POST, &path, "secret", None).await;
    let res = h
        .http
        .post(h.token_endpoint())
        .basic_auth(&agent.id, secret["client_secret"].as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let revoked = twice(
        &h,
        Method::POST,
        "/tokens/revoke",
        "revoke-token",
        Some(json!({ "jti": "j-1" })),
    )
    .await;
    assert_eq!(revoked["kind"], "token", "{revoked}");
    let jti = |x: &RevocationTarget| matches!(x, RevocationTarget::Token { jti } if jti == "j-1");
    assert_eq!(revocations_matching(&h, jti).await, 1);

    let other = h.agent(&t, "other", "x:read").await;
    let path = format!("/principals/{}/disable", other.id);
    let disabled = twice(&h, Method::POST, &path, "disable", None).await;
    assert_eq!(disabled["disabled"], true);
    let ends_other = |x: &RevocationTarget| matches!(x, RevocationTarget::Principal { principal } if principal.as_str() == other.id);
    assert_eq!(revocations_matching(&h, ends_other).await, 1);

    let bait = twice(
        &h,
        Method::POST,
        &format!("/tenants/{t}/honeytokens"),
        "bait",
        Some(json!({ "name": "billing-export" })),
    )
    .await;
    let tenant = t.parse().unwrap();
    let principals = h.store.list_principals(&tenant).await.unwrap();
    let named = principals.iter().filter(|p| p.name == "billing-export");
    assert_eq!(named.count(), 1, "{bait}");
    let flags = |x: &RevocationTarget| matches!(x, RevocationTarget::Honeytoken { .. });
    assert_eq!(revocations_matching(&h, flags).await, 1);

    let user = h
        .agent_with(&t, "ann", json!({ "kind": "user", "scopes": "x:read" }))
        .await;
    let grant = twice(
        &h,
        Method::POST,
        "/delegations",
        "grant",
        Some(json!({ "user": user.id, "agent": agent.id, "scopes": "x:read" })),
    )
    .await;
    let grants = h.store.list_delegation_grants(&tenant).await.unwrap();
    assert_eq!(grants.len(), 1, "{grant}");
    let path = format!("/delegations/{}/revoke", grant["id"].as_str().unwrap());
    let revoked = twice(&h, Method::POST, &path, "ungrant", None).await;
    assert_eq!(revoked["kind"], "grant", "{revoked}");
    let grant_events = |x: &RevocationTarget| matches!(x, RevocationTarget::Grant { .. });
    assert_eq!(revocations_matching(&h, grant_events).await, 1);

    let ttl = twice(
        &h,
        Method::PUT,
        &format!("/tenants/{t}/token-ttl"),
        "ttl",
        Some(json!({ "max_token_ttl_secs": 300 })),
    )
    .await;
    assert_eq!(ttl["max_token_ttl_secs"], 300);
    let scopes = twice(
        &h,
        Method::PUT,
        &format!("/principals/{}/scopes", agent.id),
        "scopes",
        Some(json!({ "scopes": "x:read y:read" })),
    )
    .await;
    // The answer built before the commit is what the store holds after it.
    let (_, shown) = h
        .admin(Method::GET, &format!("/principals/{}", agent.id), None)
        .await;
    assert_eq!(shown, scopes);
}

#[tokio::test]
async fn a_call_that_changes_nothing_in_the_store_is_replayed_too() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let agent = h.agent(&t, "bot", "x:read").await;
    let report = json!({ "used": { (agent.id.clone()): h.now() } });
    let answer = twice(&h, Method::POST, "/activity", "use", Some(report)).await;
    assert_eq!(answer["accepted"], 1);
    // A refusal before any change is replayed as well, and a different body is refused.
    let path = format!("/principals/{}/scopes", agent.id);
    let bad = json!({ "scopes": "not a scope!" });
    let first = call(&h, Method::PUT, &path, "bad", Some(bad.clone())).await;
    assert_eq!(first.status, 422, "{first:?}");
    let again = call(&h, Method::PUT, &path, "bad", Some(bad)).await;
    assert_eq!((again.status, again.replayed), (422, true));
}

/// Entries of the audit log file as it is on disk now.
fn entries(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("entry").cloned())
        .collect()
}

#[tokio::test]
async fn a_change_the_log_could_not_take_is_on_record_in_the_outbox_until_drained() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let h = Harness::start_audited(log.clone()).await;
    h.tenant("acme").await;
    // Appended at once, and gone from the outbox.
    assert_eq!(entries(dir.path()).len(), 1);
    assert!(h
        .store
        .claim_audit_outbox(i64::MAX, 0, 10)
        .await
        .unwrap()
        .is_empty());

    log.close().await.unwrap();
    let (s, v) = h
        .admin(Method::POST, "/tenants", Some(json!({ "name": "globex" })))
        .await;
    let created = h.store.tenant_by_name("globex").await.unwrap();
    // Refused before applying (the log is known down), or applied with its entry on
    // durable record in the outbox; never applied unrecorded.
    if s == 201 {
        assert_eq!(
            created.map(|t| t.id.to_string()),
            v["id"].as_str().map(str::to_owned)
        );
    } else {
        assert_eq!(s, 503, "{v}");
        assert_eq!(created, None);
        return;
    }

    // A drainer leaves it to its call during the grace period, then takes it.
    let dir2 = tempfile::tempdir().unwrap();
    let after = h.sibling(open_log(dir2.path())).await;
    assert_eq!(after.drain_audit_outbox(OutboxDrain::Due).await.unwrap(), 0);
    h.clock.advance(after.config.audit_outbox_grace_secs + 1);
    assert_eq!(after.drain_audit_outbox(OutboxDrain::Due).await.unwrap(), 1);
    let drained = entries(dir2.path());
    assert_eq!(drained.len(), 1, "{drained:?}");
    assert_eq!(drained[0]["action"], "POST /admin/v1/tenants");
    assert_eq!(drained[0]["reasons"], json!(["201"]));
    assert!(drained[0]["request_id"]
        .as_str()
        .unwrap()
        .starts_with("aud_"));
    // Drained once: nothing is left to append again.
    assert_eq!(after.drain_audit_outbox(OutboxDrain::All).await.unwrap(), 0);
}
