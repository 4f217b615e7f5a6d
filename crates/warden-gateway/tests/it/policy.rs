//! The Cedar phase through a real gateway: decisions with their policy ids, hot reload, and a
//! bad file keeping the last good set.

use std::path::Path;

use serde_json::Value;

use crate::support::{Env, Options};

fn copy_example_policies(to: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for entry in std::fs::read_dir(repo).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "cedar") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

async fn status_and_body(
    env: &Env,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> (u16, Value) {
    let res = env
        .http
        .request(method, format!("{}{path}", env.gateway_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Polls the gateway until `path` answers `want` (the policy watcher runs every second).
async fn until_status(env: &Env, path: &str, token: &str, want: u16) -> bool {
    for _ in 0..100 {
        if env.get(path, Some(token)).await.status().as_u16() == want {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn example_policies_decide_and_name_the_determining_policy() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_policies(dir.path());
    let (env, _) = Env::start(Options {
        policy_dir: Some(dir.path()),
        ..Options::default()
    })
    .await;
    let t = env.token("crm:contacts:read crm:contacts:write").await;
    assert_eq!(
        status_and_body(&env, reqwest::Method::GET, "/crm/a", &t)
            .await
            .0,
        200
    );
    // An agent's write without `agent:write` is refused by policy, though its scopes allow it.
    let (status, body) = status_and_body(&env, reqwest::Method::POST, "/crm/a", &t).await;
    assert_eq!(status, 403, "{body}");
    let ids: Vec<&str> = body["policy_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(ids.iter().any(|i| i.contains("agents_read_only")), "{body}");
    let audit = std::sync::Arc::clone(&env.audit);
    assert!(
        crate::support::eventually(|| audit
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.phase == "policy"
                && e.policy_ids.iter().any(|i| i.contains("agents_read_only"))))
        .await
    );
}

#[tokio::test]
async fn policies_hot_reload_and_a_bad_file_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_policies(dir.path());
    let (env, _) = Env::start(Options {
        policy_dir: Some(dir.path()),
        ..Options::default()
    })
    .await;
    let t = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&t)).await.status(), 200);

    std::fs::write(
        dir.path().join("freeze_crm.cedar"),
        "@id(\"crm_frozen\")\nforbid (principal, action, resource) when { resource.route == \"/crm/\" };\n",
    )
    .unwrap();
    assert!(
        until_status(&env, "/crm/a", &t, 403).await,
        "reload picked up the new policy"
    );
    let (_, body) = status_and_body(&env, reqwest::Method::GET, "/crm/b", &t).await;
    assert!(
        body["policy_ids"].to_string().contains("crm_frozen"),
        "{body}"
    );

    // A file that fails validation (unknown attribute) is refused; the last good set stays.
    std::fs::write(
        dir.path().join("broken.cedar"),
        "permit (principal, action, resource) when { resource.no_such_attribute == 1 };\n",
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("freeze_crm.cedar")).unwrap();
    // Had the broken set been taken, or the removal applied alone, the route would reopen.
    for _ in 0..30 {
        assert_eq!(env.get("/crm/a", Some(&t)).await.status(), 403);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::fs::remove_file(dir.path().join("broken.cedar")).unwrap();
    assert!(
        until_status(&env, "/crm/a", &t, 200).await,
        "a good set is taken again"
    );
}
