//! The ops endpoints: `/healthz`, `/readyz` and `/metrics` on a listener of their own; the
//! public port keeps only the plain liveness answer.

use std::collections::HashMap;

use crate::support::{assert_oauth_error, eventually_async, Harness, SseReader, ADMIN};

/// Every sample of a Prometheus text answer, `name{labels}` to value; panics on a line that
/// is neither a comment nor `name value`, and on an answer without the closing `# EOF`.
fn samples(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "{text}");
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap();
            assert!(["HELP", "TYPE", "UNIT", "EOF"].contains(&kind), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(
            series == name || (series.ends_with('}') && series.contains("=\"")),
            "{line}"
        );
        out.insert(series.to_owned(), value.parse().unwrap());
    }
    out
}

async fn get(h: &Harness, url: &str) -> (u16, String) {
    let res = h.http.get(url).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn the_public_port_keeps_liveness_only() {
    let h = Harness::start().await;
    assert_eq!(
        get(&h, &format!("{}/healthz", h.url)).await,
        (200, "ok\n".into())
    );
    for path in ["/readyz", "/metrics"] {
        let (status, body) = get(&h, &format!("{}{path}", h.url)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("warden_"), "{path}: {body}");
    }
}

#[tokio::test]
async fn the_ops_port_is_live_ready_and_refuses_the_rest() {
    let h = Harness::start().await;
    let ops = h.serve_ops().await;
    assert_eq!(
        get(&h, &format!("{ops}/healthz")).await,
        (200, "ok\n".into())
    );
    let res = h.http.get(format!("{ops}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let ready: serde_json::Value = res.json().await.unwrap();
    assert_eq!(ready, serde_json::json!({ "ready": true, "reasons": [] }));
    // The ops port is not a second public port.
    assert_eq!(get(&h, &format!("{ops}/oauth2/token")).await.0, 404);
    assert_eq!(
        get(&h, &format!("{ops}/.well-known/jwks.json")).await.0,
        404
    );
}

#[tokio::test]
async fn metrics_count_issuance_refusals_by_error_code_and_subscribers() {
    let h = Harness::start().await;
    let ops = h.serve_ops().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "mailer", "crm:contacts:read").await;
    let scrape = || async {
        let res = h.http.get(format!("{ops}/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        samples(&res.text().await.unwrap())
    };
    let before = scrape().await;
    let issued = "warden_authority_tokens_issued_total{grant_type=\"client_credentials\"}";
    let refused = |code: &str| format!("warden_authority_token_refusals_total{{error=\"{code}\"}}");
    assert_eq!(before[issued], 0.0);
    assert_eq!(before[&refused("invalid_scope")], 0.0);

    let got = h
        .token_with_assertion(&h.assertion(&a), Some("crm:contacts:read"))
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_oauth_error(
        &h.token_with_assertion(&h.assertion(&a), Some("email:send"))
            .await,
        400,
        "invalid_scope",
    );
    assert_oauth_error(
        &h.token_form(&[("grant_type", "password")]).await,
        400,
        "unsupported_grant_type",
    );

    let after = scrape().await;
    assert_eq!(after[issued], 1.0);
    assert_eq!(after[&refused("invalid_scope")], 1.0);
    assert_eq!(after[&refused("unsupported_grant_type")], 1.0);
    assert_eq!(after[&refused("invalid_client")], 0.0);
    // Three answers timed: two after their grant was read, one refused before.
    let count = |grant: &str| {
        after[&format!(
            "warden_authority_token_request_duration_seconds_count{{grant_type=\"{grant}\"}}"
        )]
    };
    assert_eq!(count("client_credentials"), 2.0);
    assert_eq!(count("none"), 1.0);
    assert!(
        after["warden_authority_store_duration_seconds_count{operation=\"client_lookup\"}"] >= 1.0
    );
    assert!(
        after["warden_authority_store_duration_seconds_count{operation=\"record_jtis\"}"] >= 1.0
    );
    assert!(after["warden_audit_durable_entries"] >= 1.0);
    assert!(after.contains_key("warden_audit_queue_depth"));
    assert_eq!(after["warden_audit_writable"], 1.0);
    assert_eq!(after["warden_authority_revocation_subscribers"], 0.0);

    // A revocation stream counts while it is open.
    let res = h
        .http
        .get(format!("{}/revocations/stream", h.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = SseReader::new(res);
    stream.next_of("heartbeat").await;
    assert_eq!(
        scrape().await["warden_authority_revocation_subscribers"],
        1.0
    );
    drop(stream);
    assert!(
        eventually_async(|| async {
            scrape().await["warden_authority_revocation_subscribers"] == 0.0
        })
        .await
    );
}
