//! Signing keys that age out: the active key signs for `signing_key_rotation_secs`, then the
//! next one — published long before — takes over on schedule, once, with the old key still
//! published for every token it signed.

use reqwest::Method;
use serde_json::Value;

use crate::support::Harness;

const DAY: i64 = 24 * 3600;

async fn active_now(h: &Harness) -> String {
    let (_, keys) = h.admin(Method::GET, "/keys", None).await;
    kid_in(&keys, "active").unwrap()
}

fn kid_in(state: &Value, wanted: &str) -> Option<String> {
    state
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == wanted)
        .map(|k| k["kid"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_active_key_rotates_on_schedule_once_and_its_tokens_keep_verifying() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let bot = h.agent(&t, "bot", "crm:read").await;
    let watcher = h.introspector("acme").await;
    let (_, keys) = h.admin(Method::GET, "/keys", None).await;
    let (active, next) = (
        kid_in(&keys, "active").unwrap(),
        kid_in(&keys, "next").unwrap(),
    );

    // Not yet due: nothing changes.
    h.clock.advance(30 * DAY - 60);
    h.authority.maintain().await;
    let (_, keys) = h.admin(Method::GET, "/keys", None).await;
    assert_eq!(kid_in(&keys, "active").as_deref(), Some(active.as_str()));
    let before = h.token(&bot, "crm:read").await;

    h.clock.advance(61);
    h.authority.maintain().await;
    let (_, keys) = h.admin(Method::GET, "/keys", None).await;
    assert_eq!(
        kid_in(&keys, "active").as_deref(),
        Some(next.as_str()),
        "{keys}"
    );
    assert_eq!(
        kid_in(&keys, "retired").as_deref(),
        Some(active.as_str()),
        "{keys}"
    );
    let newest_next = kid_in(&keys, "next").unwrap();
    // The old key is still published, and its token still good.
    assert!(h.jwks().await.get(&active).is_some());
    assert!(h.active(&watcher, &before).await);
    // The new key signs, and was published all along.
    let after = h.token(&bot, "crm:read").await;
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            after.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], next.as_str());

    // Once: the next maintenance round, and one a day later, change nothing (the new next
    // key is a month from signing).
    h.authority.maintain().await;
    h.clock.advance(DAY);
    h.authority.maintain().await;
    let (_, keys) = h.admin(Method::GET, "/keys", None).await;
    assert_eq!(kid_in(&keys, "active").as_deref(), Some(next.as_str()));
    assert_eq!(kid_in(&keys, "next").as_deref(), Some(newest_next.as_str()));
}

#[tokio::test]
async fn a_next_key_published_too_recently_waits_for_its_lead() {
    let h = Harness::start_with(|c| {
        c.signing_key_rotation_secs = 60;
        c.signing_key_publish_lead_secs = 3600;
    })
    .await;
    let first = active_now(&h).await;
    // Due after a minute, but the next key has been published for only a minute.
    h.clock.advance(61);
    h.authority.maintain().await;
    assert_eq!(active_now(&h).await, first);
    h.clock.advance(3600 - 61);
    h.authority.maintain().await;
    let second = active_now(&h).await;
    assert_ne!(second, first);
    // The key published by that rotation waits its own hour.
    h.clock.advance(61);
    h.authority.maintain().await;
    assert_eq!(active_now(&h).await, second);
    h.clock.advance(3600);
    h.authority.maintain().await;
    assert_ne!(active_now(&h).await, second);
}

#[tokio::test]
async fn a_client_key_past_its_tenants_max_age_is_refused_until_rotated() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let mut bot = h.agent(&t, "bot", "crm:read").await;
    h.clock.advance(90 * DAY + 1);
    let got = h
        .token_with_assertion(&h.assertion(&bot), Some("crm:read"))
        .await;
    crate::support::assert_oauth_error(&got, 401, "invalid_client");
    let why = got.1["error_description"].as_str().unwrap();
    assert!(
        why.contains("max_client_key_age") && why.contains("rotate-key"),
        "{why}"
    );

    let key = warden_test::keys::new_key();
    let (s, v) = h
        .admin(
            Method::PUT,
            &format!("/principals/{}/public-key", bot.id),
            Some(serde_json::json!({ "public_key": warden_test::keys::public_jwk(&key) })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    bot.key = key;
    h.token(&bot, "crm:read").await;

    // A tenant tightens the age; `null` returns it to the default.
    let set = |secs: Value| {
        let h = &h;
        let path = format!("/tenants/{t}/client-key-age");
        async move {
            h.admin(
                Method::PUT,
                &path,
                Some(serde_json::json!({ "max_client_key_age_secs": secs })),
            )
            .await
        }
    };
    let (s, v) = set(serde_json::json!(10)).await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = set(serde_json::json!(2 * DAY)).await;
    assert_eq!(
        (s, v["max_client_key_age_secs"].as_i64()),
        (200, Some(2 * DAY)),
        "{v}"
    );
    h.clock.advance(3 * DAY);
    let got = h
        .token_with_assertion(&h.assertion(&bot), Some("crm:read"))
        .await;
    crate::support::assert_oauth_error(&got, 401, "invalid_client");
    let (s, _) = set(Value::Null).await;
    assert_eq!(s, 200);
    h.token(&bot, "crm:read").await;
}
