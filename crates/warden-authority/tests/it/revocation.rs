//! Revocation over real sockets: RFC 7009 revocation by a token's client, the cascade down a
//! delegation chain (principal and grant revocations), and the revocation stream.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::delegation::{actor, user, AGENT_CEILING, GRANT_SCOPES};
use crate::support::{assert_oauth_error, claims_of, Agent, Harness, SseReader, ADMIN};

#[tokio::test]
async fn rfc7009_revocation_by_the_tokens_client() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let u = user(&h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    let stranger = h.agent(&t, "stranger", "crm:contacts:read").await;
    h.grant(&u, &a, GRANT_SCOPES).await;
    let u_token = h.own_token(&u).await;
    let t1 = h.exchanged(&a, &u_token).await;

    // A client the token does not name may not revoke it.
    let got = h
        .post_as(&stranger, "/oauth2/revoke", &[("token", &t1)], &[])
        .await;
    assert_oauth_error(&got, 400, "unauthorized_client");
    let t2 = h.tenant("globex").await;
    let foreign = h.agent(&t2, "foreign", "crm:contacts:read").await;
    let got = h
        .post_as(&foreign, "/oauth2/revoke", &[("token", &t1)], &[])
        .await;
    assert_oauth_error(&got, 400, "unauthorized_client");
    assert!(
        h.active(&a, &t1).await,
        "a refused revocation changes nothing"
    );

    // A hint that does not fit only widens the search (RFC 7009 §2.1).
    let hinted = h.exchanged(&a, &u_token).await;
    let got = h
        .post_as(
            &a,
            "/oauth2/revoke",
            &[("token", &hinted), ("token_type_hint", "refresh_token")],
            &[],
        )
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert!(!h.active(&a, &hinted).await);
    // No client; no token.
    let got = h.post_form("/oauth2/revoke", &[("token", &t1)], &[]).await;
    assert_oauth_error(&got, 401, "invalid_client");
    let got = h.post_as(&a, "/oauth2/revoke", &[], &[]).await;
    assert_oauth_error(&got, 400, "invalid_request");
    assert!(h.active(&a, &t1).await);

    // Garbage is answered 200 (RFC 7009 §2.2).
    let got = h
        .post_as(&a, "/oauth2/revoke", &[("token", "garbage")], &[])
        .await;
    assert_eq!(got.0, 200, "{}", got.1);

    // The token's client revokes it.
    let got = h
        .post_as(
            &a,
            "/oauth2/revoke",
            &[("token", &t1), ("token_type_hint", "access_token")],
            &[],
        )
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert!(!h.active(&a, &t1).await);
    let got = h.exchange(&a, &t1, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    // Revoking again is harmless, and adds nothing to the log gateways replay.
    let head = h.authority.revocations.head();
    let got = h
        .post_as(&a, "/oauth2/revoke", &[("token", &t1)], &[])
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(h.authority.revocations.head(), head);
    // Only that token.
    assert!(h.active(&u, &u_token).await);

    // The subject named in a delegated token may revoke it too.
    let t1b = h.exchanged(&a, &u_token).await;
    let got = h
        .post_as(&u, "/oauth2/revoke", &[("token", &t1b)], &[])
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert!(!h.active(&a, &t1b).await);
}

/// U → A → B, with everyone's own token.
struct Chain {
    u: Agent,
    a: Agent,
    b: Agent,
    /// Holds `warden:introspect`, so it may watch every token of the chain.
    watcher: Agent,
    grant: String,
    u_own: String,
    a_own: String,
    b_own: String,
    t1: String,
    t2: String,
}

async fn chain(h: &Harness) -> Chain {
    let t = h.tenant("acme").await;
    let u = user(h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    let b = h.agent(&t, "researcher", "crm:contacts:read").await;
    let watcher = h.introspector(&t).await;
    let grant = h.grant(&u, &a, GRANT_SCOPES).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let u_own = h.own_token(&u).await;
    let a_own = h.own_token(&a).await;
    let b_own = h.own_token(&b).await;
    let t1 = h.exchanged(&a, &u_own).await;
    let t2 = h.exchanged(&b, &t1).await;
    let c2 = claims_of(&t2);
    assert_eq!(c2.act, Some(actor(&b.id, Some(actor(&a.id, None)))));
    let x = Chain {
        u,
        a,
        b,
        watcher,
        grant,
        u_own,
        a_own,
        b_own,
        t1,
        t2,
    };
    for tok in x.all() {
        assert!(h.active(&x.watcher, tok).await);
    }
    x
}

impl Chain {
    fn all(&self) -> [&String; 5] {
        [&self.u_own, &self.a_own, &self.b_own, &self.t1, &self.t2]
    }
}

async fn revoke(h: &Harness, path: &str, body: Option<Value>) -> Value {
    let (s, v) = h.admin(Method::POST, path, body).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["seq"].as_i64().is_some_and(|s| s > 0), "{v}");
    v
}

#[tokio::test]
async fn revoking_an_agent_ends_its_tokens_and_those_delegated_through_it() {
    let h = Harness::start().await;
    let x = chain(&h).await;
    let v = revoke(
        &h,
        &format!("/principals/{}/revoke", x.a.id),
        Some(json!({ "reason": "compromised" })),
    )
    .await;
    assert_eq!(v["kind"], "principal");
    assert_eq!(v["principal"], x.a.id.as_str());
    assert_eq!(v["reason"], "compromised");
    for (tok, alive) in [
        (&x.t1, false),
        (&x.t2, false),
        (&x.a_own, false),
        (&x.u_own, true),
        (&x.b_own, true),
    ] {
        assert_eq!(
            h.active(&x.watcher, tok).await,
            alive,
            "{:?}",
            claims_of(tok)
        );
    }
    // B's T2 cannot be exchanged; A, revoked, cannot even authenticate to exchange T1.
    assert_oauth_error(&h.exchange(&x.b, &x.t2, &[]).await, 400, "invalid_grant");
    assert_oauth_error(&h.exchange(&x.a, &x.t1, &[]).await, 401, "invalid_client");

    // A revoked agent gets no new token until it is reinstated; tokens issued after that
    // live.
    h.clock.advance(2);
    let refused = h.token_with_assertion(&h.assertion(&x.a), None).await;
    assert_oauth_error(&refused, 401, "invalid_client");
    h.reinstate(&x.a.id).await;
    let a_new = h.own_token(&x.a).await;
    assert!(h.active(&x.watcher, &a_new).await);
    let t1_new = h.exchanged(&x.a, &x.u_own).await;
    assert!(h.active(&x.watcher, &t1_new).await);
    let t2_new = h.exchanged(&x.b, &t1_new).await;
    assert!(h.active(&x.watcher, &t2_new).await);
    assert!(!h.active(&x.watcher, &x.t1).await, "the old ones stay dead");
}

#[tokio::test]
async fn revoking_a_user_ends_every_token_issued_for_them() {
    let h = Harness::start().await;
    let x = chain(&h).await;
    revoke(&h, &format!("/principals/{}/revoke", x.u.id), None).await;
    for (tok, alive) in [
        (&x.u_own, false),
        (&x.t1, false),
        (&x.t2, false),
        (&x.a_own, true),
        (&x.b_own, true),
    ] {
        assert_eq!(
            h.active(&x.watcher, tok).await,
            alive,
            "{:?}",
            claims_of(tok)
        );
    }
    assert_oauth_error(&h.exchange(&x.a, &x.u_own, &[]).await, 400, "invalid_grant");
    // Unknown principal.
    let (s, _) = h
        .admin(Method::POST, "/principals/usr_nope/revoke", None)
        .await;
    assert_eq!(s, 404);

    h.clock.advance(2);
    let refused = h.token_with_assertion(&h.assertion(&x.u), None).await;
    assert_oauth_error(&refused, 401, "invalid_client");
    h.reinstate(&x.u.id).await;
    let u_new = h.own_token(&x.u).await;
    assert!(h.active(&x.watcher, &u_new).await);
    let t1_new = h.exchanged(&x.a, &u_new).await;
    assert!(h.active(&x.watcher, &t1_new).await);
}

#[tokio::test]
async fn revoking_a_grant_ends_that_link_and_every_token_through_it() {
    let h = Harness::start().await;
    let x = chain(&h).await;
    let v = revoke(
        &h,
        &format!("/delegations/{}/revoke", x.grant),
        Some(json!({ "reason": "user withdrew consent" })),
    )
    .await;
    assert_eq!(v["kind"], "grant");
    assert_eq!(v["grant"], x.grant.as_str());
    assert_eq!(v["user"], x.u.id.as_str());
    assert_eq!(v["agent"], x.a.id.as_str());
    let (s, g) = h
        .admin(Method::GET, &format!("/delegations/{}", x.grant), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(g["revoked_at"], h.now(), "{g}");

    assert!(!h.active(&x.watcher, &x.t1).await, "A acting for U");
    assert_oauth_error(&h.exchange(&x.a, &x.t1, &[]).await, 400, "invalid_grant");
    // T2 (B acting for U through A) is covered by the test below.
    for tok in [&x.u_own, &x.a_own, &x.b_own] {
        assert!(h.active(&x.watcher, tok).await, "{:?}", claims_of(tok));
    }
    // A new exchange is refused: the grant is gone, not just its old tokens.
    h.clock.advance(2);
    let got = h.exchange(&x.a, &x.u_own, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    // Revoking it again is a conflict; an unknown grant is not found.
    let (s, _) = h
        .admin(
            Method::POST,
            &format!("/delegations/{}/revoke", x.grant),
            None,
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = h
        .admin(Method::POST, "/delegations/dlg_nope/revoke", None)
        .await;
    assert_eq!(s, 404);
    // A fresh grant delegates again.
    h.grant(&x.u, &x.a, GRANT_SCOPES).await;
    let t1_new = h.exchanged(&x.a, &x.u_own).await;
    assert!(h.active(&x.watcher, &t1_new).await);
}

/// The grant U→A is the link between the subject and the innermost actor of T2
/// (`act: {sub: B, act: {sub: A}}`, outermost = current actor per RFC 8693 §4.1).
#[tokio::test]
async fn revoking_a_grant_ends_sub_delegated_tokens_through_it() {
    let h = Harness::start().await;
    let x = chain(&h).await;
    revoke(&h, &format!("/delegations/{}/revoke", x.grant), None).await;
    assert!(!h.active(&x.watcher, &x.t1).await);
    assert!(
        !h.active(&x.watcher, &x.t2).await,
        "B acting for U through A's delegation: {:?}",
        claims_of(&x.t2)
    );
    assert_oauth_error(&h.exchange(&x.b, &x.t2, &[]).await, 400, "invalid_grant");
}

async fn stream(h: &Harness, headers: &[(&str, &str)], query: &str) -> reqwest::Response {
    let mut req = h
        .http
        .get(format!("{}/revocations/stream{query}", h.url))
        .bearer_auth(ADMIN);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    tokio::time::timeout(Duration::from_secs(5), req.send())
        .await
        .expect("stream response in time")
        .unwrap()
}

#[tokio::test]
async fn revocation_stream_pushes_events_and_resumes_without_gaps() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let u = user(&h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    let grant = h.grant(&u, &a, GRANT_SCOPES).await;

    // Authentication.
    let url = format!("{}/revocations/stream", h.url);
    let res = h.http.get(&url).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = h
        .http
        .get(&url)
        .bearer_auth("wadm_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = stream(&h, &[("Last-Event-ID", "abc")], "").await;
    assert_eq!(res.status().as_u16(), 400);

    // Live: the greeting heartbeat, then the event the revoke call reports.
    let res = stream(&h, &[], "").await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut live = SseReader::new(res);
    let hello = live.next().await;
    assert_eq!(hello.event, "heartbeat", "{hello:?}");
    assert_eq!(hello.json()["cursor"], 0);
    assert_eq!(hello.json()["time"], h.now());

    let r1 = revoke(&h, &format!("/principals/{}/revoke", a.id), None).await;
    let seq1 = r1["seq"].as_i64().unwrap();
    let m = live.next_of("revocation").await;
    assert_eq!(m.id.as_deref(), Some(seq1.to_string().as_str()));
    let d = m.json();
    assert_eq!(d["kind"], "principal");
    assert_eq!(d["principal"], a.id.as_str());
    assert_eq!(d["seq"], seq1);
    assert_eq!(d["issued_before"], r1["issued_before"]);

    let r2 = revoke(&h, "/tokens/revoke", Some(json!({ "jti": "jti-42" }))).await;
    let r3 = revoke(
        &h,
        &format!("/delegations/{}/revoke", grant["id"].as_str().unwrap()),
        None,
    )
    .await;
    let seqs = [
        seq1,
        r2["seq"].as_i64().unwrap(),
        r3["seq"].as_i64().unwrap(),
    ];
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let m2 = live.next_of("revocation").await;
    assert_eq!(m2.id, Some(seqs[1].to_string()));
    assert_eq!(m2.json()["kind"], "token");
    assert_eq!(m2.json()["jti"], "jti-42");
    let m3 = live.next_of("revocation").await;
    assert_eq!(m3.id, Some(seqs[2].to_string()));
    assert_eq!(m3.json()["kind"], "grant");
    assert_eq!(m3.json()["user"], u.id.as_str());
    assert_eq!(m3.json()["agent"], a.id.as_str());
    // Quiet now: a heartbeat carrying the cursor.
    let hb = live.next_within(Duration::from_secs(5)).await;
    assert_eq!(hb.event, "heartbeat", "{hb:?}");
    assert_eq!(hb.json()["cursor"], seqs[2]);

    // From the start: everything, in order, then the caught-up heartbeat.
    let mut replay = SseReader::new(stream(&h, &[("Last-Event-ID", "0")], "").await);
    for (seq, kind) in seqs.iter().zip(["principal", "token", "grant"]) {
        let m = replay.next().await;
        assert_eq!(m.event, "revocation", "{m:?}");
        assert_eq!(m.id, Some(seq.to_string()));
        assert_eq!(m.json()["kind"], kind);
    }
    let m = replay.next().await;
    assert_eq!(m.event, "heartbeat", "{m:?}");
    assert_eq!(m.json()["cursor"], seqs[2]);

    // From the middle, by query.
    let mut mid = SseReader::new(stream(&h, &[], &format!("?after={}", seqs[0])).await);
    let m = mid.next().await;
    assert_eq!(m.id, Some(seqs[1].to_string()), "{m:?}");

    // From the last id: nothing replayed, the first message is a heartbeat.
    let last = seqs[2].to_string();
    let mut resumed = SseReader::new(stream(&h, &[("Last-Event-ID", &last)], "").await);
    let m = resumed.next().await;
    assert_eq!(m.event, "heartbeat", "{m:?}");
    assert_eq!(m.json()["cursor"], seqs[2]);
    // ...and it still hears new events.
    let r4 = revoke(&h, &format!("/principals/{}/revoke", u.id), None).await;
    let m = resumed.next_of("revocation").await;
    assert_eq!(m.id, Some(r4["seq"].as_i64().unwrap().to_string()));
    assert_eq!(m.json()["principal"], u.id.as_str());
}
