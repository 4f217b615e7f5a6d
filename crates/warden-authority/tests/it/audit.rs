//! The authority's audit trail: lifecycle changes, issuance and refusals are recorded;
//! changes and issuance are answered only once their entry is durable; a failing log is
//! said, not hidden.

use std::path::Path;
use std::sync::Arc;

use rand_core::OsRng;
use reqwest::Method;
use serde_json::{json, Value};
use warden_audit::{verify_dir, AuditLog, KeyRing, Options};
use warden_core::SigningKey;

use crate::support::Harness;

/// Entries in the log file as it is on disk right now.
fn entries(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("entry").cloned())
        .collect()
}

async fn with_audit() -> (Harness, tempfile::TempDir, AuditLog, SigningKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(&mut OsRng);
    let signer: Arc<dyn warden_audit::CheckpointSigner> =
        Arc::new(SigningKey::from_bytes(key.to_bytes().as_ref()).unwrap());
    let (log, _) = AuditLog::open(dir.path(), signer, Options::default()).unwrap();
    let h = Harness::start_audited(log.clone()).await;
    (h, dir, log, key)
}

#[tokio::test]
async fn changes_and_issuance_are_on_record_before_they_are_answered() {
    let (h, dir, log, key) = with_audit().await;
    let t = h.tenant("acme").await;
    // Read straight after the answer: the entry is already on disk.
    let recorded = entries(dir.path());
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["kind"], "lifecycle");
    assert_eq!(recorded[0]["action"], "POST /admin/v1/tenants");
    assert_eq!(recorded[0]["actor"], "break-glass");
    assert_eq!(recorded[0]["client_ip"], "127.0.0.1");

    let agent = h.agent(&t, "bot", "crm:contacts:read").await;
    let token = h.own_token(&agent).await;
    let jti = crate::support::claims_of(&token).jti;
    let recorded = entries(dir.path());
    let issued = recorded.last().unwrap();
    assert_eq!(issued["kind"], "issuance");
    assert_eq!(issued["action"], "token.issue");
    assert_eq!(issued["subject"], agent.id.as_str());
    assert_eq!(issued["jti"], jti.as_str());
    assert_eq!(issued["decision"], "allow");

    // A refusal is recorded too, without holding the caller.
    let got = h.token_with_assertion("not-a-jwt", None).await;
    assert_eq!(got.0, 401);
    assert!(
        crate::support::eventually_async(|| async {
            entries(dir.path())
                .iter()
                .any(|e| e["decision"] == "deny" && e["reasons"][0] == "invalid_client")
        })
        .await
    );

    let (s, _) = h
        .admin(
            Method::POST,
            &format!("/principals/{}/revoke", agent.id),
            Some(json!({ "reason": "test" })),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(entries(dir.path()).last().unwrap()["kind"], "revocation");

    log.close().await.unwrap();
    let report = verify_dir(dir.path(), &KeyRing::new().with(key.public_key())).unwrap();
    assert!(report.entries >= 5);
}

#[tokio::test]
async fn a_failing_audit_log_is_reported_not_hidden() {
    let (h, _dir, log, _) = with_audit().await;
    let t = h.tenant("acme").await;
    let agent = h.agent(&t, "bot", "crm:contacts:read").await;
    log.close().await.unwrap();
    // A change is not applied unrecorded: refused up front, or kept on record in the
    // outbox (see `journal`), where its entry waits for the log.
    let (s, v) = h
        .admin(Method::POST, "/tenants", Some(json!({ "name": "globex" })))
        .await;
    let outbox = warden_store::OutboxStore::claim_audit_outbox(h.store.as_ref(), i64::MAX, 0, 10)
        .await
        .unwrap();
    match s {
        201 => assert_eq!(outbox.len(), 1, "{v}"),
        _ => assert!(s == 503 && outbox.is_empty(), "{s} {v}"),
    }
    // No token leaves without its record.
    let got = h.token_with_assertion(&h.assertion(&agent), None).await;
    assert_eq!(got.0, 500, "{}", got.1);
    assert!(got.1.get("access_token").is_none());
}

#[tokio::test]
async fn a_token_request_cut_short_is_refused_and_audited_as_such_not_as_too_large() {
    let (h, dir, _log, _) = with_audit().await;
    let got = crate::support::send_cut_short(
        &h.url,
        "POST /oauth2/token HTTP/1.1\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000",
        b"grant_type",
    )
    .await;
    crate::support::assert_oauth_error(&got, 400, "invalid_request");
    let reason = "request body ended before its declared length";
    assert_eq!(got.1["error_description"], reason, "{}", got.1);
    assert!(
        crate::support::eventually_async(|| async {
            entries(dir.path()).iter().any(|e| {
                e["action"] == "token.request"
                    && e["decision"] == "deny"
                    && e["reasons"] == json!(["invalid_request", reason])
            })
        })
        .await,
        "{:?}",
        entries(dir.path())
    );
    assert!(
        !entries(dir.path())
            .iter()
            .any(|e| e.to_string().contains("exceeds")),
        "a short body is not recorded as a large one"
    );
}
