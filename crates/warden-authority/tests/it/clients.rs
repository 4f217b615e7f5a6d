//! OAuth clients people sign in through, registered per tenant over the admin API: redirect
//! URIs held to the registration rules, a confidential client's secret shown once, a tenant
//! admin confined to its own tenant, and every refusal changing nothing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{Agent, Harness};

async fn tenant_admin(h: &Harness, tenant: &str) -> String {
    let admin: Agent = h
        .agent_with(
            tenant,
            "clients-admin",
            json!({ "kind": "service", "scopes": "warden:tenant:admin" }),
        )
        .await;
    h.admin_token(&admin, "warden:tenant:admin").await
}

/// The names listed, sorted: clients made in the same second are listed in id order.
fn names(listed: &Value) -> Vec<String> {
    let mut names: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_confidential_client_gets_its_secret_once_and_a_public_one_none() {
    let h = Harness::start().await;
    let a = h.tenant("acme").await;
    let token = tenant_admin(&h, &a).await;
    let path = format!("/tenants/{a}/clients");

    let web = json!({ "name": "web", "redirect_uris": ["https://app.example/cb", "http://127.0.0.1/cb"] });
    let (s, created) = h.admin_as(&token, Method::POST, &path, Some(web)).await;
    assert_eq!(s, 201, "{created}");
    let id = created["client_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("cli_"), "{id}");
    assert_eq!(created["tenant"], a.as_str());
    assert_eq!(created["public"], false);
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    let secret = created["client_secret"].as_str().unwrap();
    assert!(secret.starts_with("wsec_") && secret.len() > 40, "{secret}");

    let (s, shown) = h
        .admin_as(&token, Method::GET, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(s, 200, "{shown}");
    assert!(shown.get("client_secret").is_none(), "{shown}");
    assert_eq!(
        shown["redirect_uris"],
        json!(["https://app.example/cb", "http://127.0.0.1/cb"])
    );

    let native = json!({ "name": "cli", "public": true, "redirect_uris": ["com.example.app:/cb"] });
    let (s, created) = h.admin_as(&token, Method::POST, &path, Some(native)).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["token_endpoint_auth_method"], "none");
    assert!(created.get("client_secret").is_none(), "{created}");

    let (s, listed) = h.admin_as(&token, Method::GET, &path, None).await;
    assert_eq!(s, 200, "{listed}");
    assert_eq!(names(&listed), ["cli", "web"]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c.get("client_secret").is_none()));

    let (s, gone) = h
        .admin_as(&token, Method::DELETE, &format!("/clients/{id}"), None)
        .await;
    assert_eq!((s, gone["client_id"].as_str()), (200, Some(id.as_str())));
    let (s, _) = h
        .admin_as(&token, Method::GET, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = h
        .admin_as(&token, Method::DELETE, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(s, 404);
    let (_, listed) = h.admin_as(&token, Method::GET, &path, None).await;
    assert_eq!(names(&listed), ["cli"]);
}

#[tokio::test]
async fn each_bad_registration_is_refused_with_its_reason_and_registers_nothing() {
    let h = Harness::start().await;
    let a = h.tenant("acme").await;
    let path = format!("/tenants/{a}/clients");
    let (s, _) = h
        .admin_post(
            &path,
            json!({ "name": "web", "redirect_uris": ["https://app.example/cb"] }),
        )
        .await;
    assert_eq!(s, 201);

    for (body, status, says) in [
        (json!({ "name": "x", "redirect_uris": [] }), 422, "1 to 16"),
        (
            json!({ "name": "x", "redirect_uris": ["https://app.example/cb#frag"] }),
            422,
            "fragment",
        ),
        (
            json!({ "name": "x", "redirect_uris": ["http://app.example/cb"] }),
            422,
            "loopback",
        ),
        (
            json!({ "name": "x", "redirect_uris": ["https://*.app.example/cb"] }),
            422,
            "wildcard",
        ),
        (
            json!({ "name": "x", "redirect_uris": ["HTTPS://App.Example/cb"] }),
            422,
            "register `https://app.example/cb`",
        ),
        (
            json!({ "name": "x", "redirect_uris": ["/cb"] }),
            422,
            "absolute",
        ),
        (
            json!({ "name": "x", "redirect_uris": ["javascript:alert(1)"] }),
            422,
            "scheme",
        ),
        (
            json!({ "name": "x", "redirect_uris": ["com.example.app:/cb"] }),
            422,
            "public",
        ),
        (
            json!({ "name": "x", "redirect_uris": ["https://app.example/a", "https://app.example/a"] }),
            422,
            "twice",
        ),
        (
            json!({ "name": "web", "redirect_uris": ["https://app.example/other"] }),
            409,
            "exists",
        ),
        (
            json!({ "name": "x", "redirect_uris": ["https://app.example/cb"], "grant_types": ["implicit"] }),
            400,
            "grant_types",
        ),
    ] {
        let (s, v) = h.admin_post(&path, body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        let detail = v["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(says),
            "{body}: `{detail}` does not say `{says}`"
        );
    }
    let (_, listed) = h.admin(Method::GET, &path, None).await;
    assert_eq!(names(&listed), ["web"]);
}

#[tokio::test]
async fn a_tenant_admin_neither_sees_nor_touches_another_tenants_clients() {
    let h = Harness::start().await;
    let a = h.tenant("acme").await;
    let b = h.tenant("globex").await;
    let (s, theirs) = h
        .admin_post(
            &format!("/tenants/{b}/clients"),
            json!({ "name": "web", "redirect_uris": ["https://globex.example/cb"] }),
        )
        .await;
    assert_eq!(s, 201, "{theirs}");
    let theirs = theirs["client_id"].as_str().unwrap().to_owned();
    let token = tenant_admin(&h, &a).await;

    for (method, path, body) in [
        (Method::GET, format!("/tenants/{b}/clients"), None),
        (
            Method::POST,
            format!("/tenants/{b}/clients"),
            Some(json!({ "name": "implant", "redirect_uris": ["https://evil.example/cb"] })),
        ),
        (Method::GET, format!("/clients/{theirs}"), None),
        (Method::DELETE, format!("/clients/{theirs}"), None),
    ] {
        let got = h.admin_as(&token, method.clone(), &path, body).await;
        assert_eq!(got.0, 404, "{method} {path}: {}", got.1);
    }
    let (s, listed) = h
        .admin(Method::GET, &format!("/tenants/{b}/clients"), None)
        .await;
    assert_eq!((s, names(&listed)), (200, vec!["web".to_owned()]));

    // A narrower power registers no clients anywhere.
    let revoker = h
        .agent_with(
            &a,
            "revoker",
            json!({ "kind": "service", "scopes": "warden:revoke" }),
        )
        .await;
    let narrow = h.admin_token(&revoker, "warden:revoke").await;
    let (s, v) = h
        .admin_as(
            &narrow,
            Method::POST,
            &format!("/tenants/{a}/clients"),
            Some(json!({ "name": "web", "redirect_uris": ["https://app.example/cb"] })),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (_, listed) = h
        .admin(Method::GET, &format!("/tenants/{a}/clients"), None)
        .await;
    assert!(names(&listed).is_empty());
}
