//! The `Store` conformance suite. Every backend must pass it unchanged; each test takes a
//! freshly opened, empty store.
//!
//! The PostgreSQL instance runs against the server named by `WARDEN_TEST_POSTGRES_URL` (whose
//! user must be allowed to `CREATE DATABASE`: every test gets a database of its own); without
//! it those tests fail, unless the developer opts out with `WARDEN_TEST_POSTGRES=skip`, when
//! they print a note and return. `scripts/postgres.sh` starts a throwaway server and sets the
//! URL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test or benchmark fails by panicking: unwrapping, indexing and panics are how it says so"
)]

mod journal;
mod pg;

use journal::{
    audit_outbox_is_drained_once, change_and_record_commit_together, compound_changes_are_atomic,
    idempotency,
};
use pg::fresh_pg;
use rand_core::OsRng;
use warden_core::{ClientId, PrincipalId, PrincipalKind, RedirectUri, ScopeSet, TenantId};
use warden_store::sqlite::SqliteStore;
use warden_store::{
    Activity, Applied, AssertionJti, Change, ChangeRecord, DelegationGrant, GatewayKeyRecord,
    IdempotencyBegin, IdempotentAnswer, Invite, KeyState, NewRevocation, OAuthClient, OutboxEntry,
    Principal, RefreshFamily, RenderAnswer, RevocationTarget, Session, SigningKeyRecord, Store,
    StoreError, StoredCode, Supersede, Tenant, TenantStore, TotpCredential,
};

fn tenant(name: &str) -> Tenant {
    Tenant {
        id: TenantId::generate(&mut OsRng),
        name: name.into(),
        max_token_ttl_secs: 900,
        max_client_key_age_secs: None,
        disabled: false,
        created_at: 1_000,
    }
}

fn principal(t: &Tenant, kind: PrincipalKind, name: &str) -> Principal {
    Principal {
        id: PrincipalId::generate(kind, &mut OsRng),
        tenant: t.id.clone(),
        kind,
        name: name.into(),
        owner: None,
        scopes: ScopeSet::parse("crm:*:read email:send").unwrap(),
        audiences: vec!["crm".into()],
        public_jwk: None,
        key_registered_at: None,
        secret_hash: None,
        disabled: false,
        revoked: None,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

fn key(kid: &str, state: KeyState) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        public_key: format!("pub-{kid}"),
        sealed_private: format!("sealed-{kid}"),
        state,
        created_at: 1_000,
        activated_at: (state == KeyState::Active).then_some(1_000),
        publish_until: None,
    }
}

async fn tenants_and_principals(s: &dyn Store) {
    let t = tenant("acme");
    s.create_tenant(&t).await.unwrap();
    assert_eq!(s.tenant(&t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(s.tenant_by_name("acme").await.unwrap(), Some(t.clone()));
    assert!(matches!(
        s.create_tenant(&tenant("acme")).await,
        Err(StoreError::Conflict(_))
    ));
    s.set_tenant_max_token_ttl(&t.id, 300).await.unwrap();
    assert_eq!(
        s.tenant(&t.id).await.unwrap().unwrap().max_token_ttl_secs,
        300
    );
    assert!(matches!(
        s.set_tenant_disabled(&TenantId::generate(&mut OsRng), true)
            .await,
        Err(StoreError::NotFound(_))
    ));

    let user = principal(&t, PrincipalKind::User, "alice");
    s.create_principal(&user).await.unwrap();
    let mut agent = principal(&t, PrincipalKind::Agent, "mailer");
    agent.owner = Some(user.id.clone());
    agent.public_jwk = Some("{\"kty\":\"OKP\"}".into());
    s.create_principal(&agent).await.unwrap();
    assert_eq!(s.principal(&agent.id).await.unwrap(), Some(agent.clone()));
    assert!(matches!(
        s.create_principal(&principal(&t, PrincipalKind::Agent, "mailer"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let mut orphan = principal(&tenant("ghost"), PrincipalKind::Agent, "x");
    orphan.tenant = TenantId::generate(&mut OsRng);
    assert!(matches!(
        s.create_principal(&orphan).await,
        Err(StoreError::NotFound(_))
    ));

    let narrower = ScopeSet::parse("crm:contacts:read").unwrap();
    s.set_principal_scopes(&agent.id, &narrower, 2_000)
        .await
        .unwrap();
    s.set_principal_disabled(&agent.id, true, 2_001)
        .await
        .unwrap();
    s.set_principal_public_key(&agent.id, "{}", 2_002)
        .await
        .unwrap();
    s.set_principal_secret_hash(&agent.id, "$argon2id$x", 2_003)
        .await
        .unwrap();
    let got = s.principal(&agent.id).await.unwrap().unwrap();
    assert_eq!(got.scopes, narrower);
    assert!(got.disabled);
    assert_eq!(got.public_jwk.as_deref(), Some("{}"));
    assert_eq!(got.secret_hash.as_deref(), Some("$argon2id$x"));
    assert_eq!(got.updated_at, 2_003);

    // A legacy hash is upgraded only while it is still the stored value, and the upgrade
    // leaves `updated_at` alone: the credential is the same.
    s.upgrade_principal_secret_hash(&agent.id, "$argon2id$x", "$hmac-sha256$y")
        .await
        .unwrap();
    let got = s.principal(&agent.id).await.unwrap().unwrap();
    assert_eq!(got.secret_hash.as_deref(), Some("$hmac-sha256$y"));
    assert_eq!(got.updated_at, 2_003);
    // A secret replaced meanwhile is not overwritten by an upgrade of the old one.
    s.set_principal_secret_hash(&agent.id, "$hmac-sha256$new", 2_004)
        .await
        .unwrap();
    s.upgrade_principal_secret_hash(&agent.id, "$argon2id$x", "$hmac-sha256$old")
        .await
        .unwrap();
    let got = s.principal(&agent.id).await.unwrap().unwrap();
    assert_eq!(got.secret_hash.as_deref(), Some("$hmac-sha256$new"));

    let listed: Vec<_> = s
        .list_principals(&t.id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&user.id) && listed.contains(&agent.id));
    assert_eq!(s.list_tenants().await.unwrap().len(), 1);
    assert!(s
        .principal(&PrincipalId::generate(PrincipalKind::Agent, &mut OsRng))
        .await
        .unwrap()
        .is_none());
}

/// A principal's revocation is marked with the event that ends its tokens, in one change;
/// reinstating lifts the mark and, with a key, replaces it in the same change.
async fn principal_revocation_and_reinstatement(s: &dyn Store) {
    let t = tenant("acme");
    s.create_tenant(&t).await.unwrap();
    let mut agent = principal(&t, PrincipalKind::Agent, "mailer");
    agent.public_jwk = Some("{\"kty\":\"OKP\",\"x\":\"old\"}".into());
    s.create_principal(&agent).await.unwrap();
    let event = NewRevocation {
        target: RevocationTarget::Principal {
            principal: agent.id.clone(),
        },
        issued_before: 2_000,
        horizon: 3_000,
        reason: Some("leaked".into()),
        created_at: 2_000,
    };
    let applied = s
        .apply(
            Change::RevokePrincipal {
                id: &agent.id,
                now: 2_000,
                reason: Some("leaked"),
                event: &event,
            },
            &ChangeRecord::default(),
        )
        .await
        .unwrap();
    assert!(applied.revocation.is_some());
    let got = s.principal(&agent.id).await.unwrap().unwrap();
    let revoked = got.revoked.unwrap();
    assert_eq!(
        (revoked.at, revoked.reason.as_deref()),
        (2_000, Some("leaked"))
    );

    let new_key = "{\"kty\":\"OKP\",\"x\":\"new\"}";
    s.apply(
        Change::ReinstatePrincipal {
            id: &agent.id,
            jwk: Some(new_key),
            now: 2_001,
        },
        &ChangeRecord::default(),
    )
    .await
    .unwrap();
    let got = s.principal(&agent.id).await.unwrap().unwrap();
    assert!(got.revoked.is_none());
    assert_eq!(got.public_jwk.as_deref(), Some(new_key));
    assert_eq!(got.updated_at, 2_001);
    // Without a key, the key stays.
    s.apply(
        Change::RevokePrincipal {
            id: &agent.id,
            now: 2_002,
            reason: None,
            event: &event,
        },
        &ChangeRecord::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.principal(&agent.id).await.unwrap().unwrap().revoked,
        Some(warden_store::Revoked {
            at: 2_002,
            reason: None
        })
    );
    s.apply(
        Change::ReinstatePrincipal {
            id: &agent.id,
            jwk: None,
            now: 2_003,
        },
        &ChangeRecord::default(),
    )
    .await
    .unwrap();
    let got = s.principal(&agent.id).await.unwrap().unwrap();
    assert_eq!(
        (got.revoked, got.public_jwk.as_deref()),
        (None, Some(new_key))
    );
    // An unknown principal: nothing is appended.
    let ghost = PrincipalId::generate(PrincipalKind::Agent, &mut OsRng);
    let before = s.revocations_since(0, 100).await.unwrap().len();
    let refused = s
        .apply(
            Change::RevokePrincipal {
                id: &ghost,
                now: 2_004,
                reason: None,
                event: &event,
            },
            &ChangeRecord::default(),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
    assert_eq!(s.revocations_since(0, 100).await.unwrap().len(), before);
}

async fn key_rotation(s: &dyn Store) {
    s.insert_signing_key(&key("k1", KeyState::Active))
        .await
        .unwrap();
    s.insert_signing_key(&key("k2", KeyState::Next))
        .await
        .unwrap();
    s.rotate_signing_keys(&key("k3", KeyState::Next), 5_000, 6_000)
        .await
        .unwrap();
    let keys = s.signing_keys().await.unwrap();
    let state = |kid: &str| {
        keys.iter()
            .find(|k| k.kid == kid)
            .map(|k| (k.state, k.publish_until))
    };
    assert_eq!(state("k1"), Some((KeyState::Retired, Some(6_000))));
    assert_eq!(state("k2").map(|s| s.0), Some(KeyState::Active));
    assert_eq!(state("k3").map(|s| s.0), Some(KeyState::Next));
    assert_eq!(s.prune_signing_keys(5_999).await.unwrap(), 0);
    assert_eq!(s.prune_signing_keys(6_001).await.unwrap(), 1);
    assert_eq!(s.signing_keys().await.unwrap().len(), 2);
}

async fn assertion_jti_is_single_use(s: &dyn Store) {
    assert!(s.record_assertion_jti("agt_a", "j1", 100).await.unwrap());
    assert!(!s.record_assertion_jti("agt_a", "j1", 100).await.unwrap());
    // The same jti from another client is that client's own business.
    assert!(s.record_assertion_jti("agt_b", "j1", 100).await.unwrap());
    assert_eq!(s.prune_assertion_jtis(101).await.unwrap(), 2);

    // A batch: fresh, replayed from before, duplicated within the batch.
    assert!(s.record_assertion_jti("agt_a", "old", 500).await.unwrap());
    let e = |c: &str, j: &str| AssertionJti {
        client_id: c.into(),
        jti: j.into(),
        expires_at: 500,
    };
    let got = s
        .record_assertion_jtis(&[
            e("agt_a", "n1"),
            e("agt_a", "old"),
            e("agt_a", "n2"),
            e("agt_a", "n1"),
            e("agt_b", "n1"),
        ])
        .await
        .unwrap();
    assert_eq!(got, vec![true, false, true, false, true]);
    let many: Vec<_> = (0..1200).map(|i| e("agt_c", &format!("j{i}"))).collect();
    assert!(s
        .record_assertion_jtis(&many)
        .await
        .unwrap()
        .iter()
        .all(|f| *f));
    assert!(s
        .record_assertion_jtis(&many)
        .await
        .unwrap()
        .iter()
        .all(|f| !*f));
}

async fn gateway_keys(s: &dyn Store) {
    let k = |kid: &str, pk: &str, exp: i64| GatewayKeyRecord {
        kid: kid.into(),
        public_key: pk.into(),
        gateway: "gw-a".into(),
        principal: None,
        registered_at: 100,
        expires_at: exp,
    };
    s.register_gateway_key(&k("g1", "pk1", 200)).await.unwrap();
    s.register_gateway_key(&k("g1", "pk1", 300)).await.unwrap();
    assert!(matches!(
        s.register_gateway_key(&k("g1", "other", 900)).await,
        Err(StoreError::Conflict(_))
    ));
    let keys = s.gateway_keys(250).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].public_key.as_str(), keys[0].expires_at),
        ("pk1", 300)
    );
    assert!(s.gateway_keys(301).await.unwrap().is_empty());
    assert_eq!(s.prune_gateway_keys(301).await.unwrap(), 1);

    // A key registered by a gateway's principal: only that principal renews it, and it is
    // published only while the principal is enabled.
    let t = tenant("warden-system");
    s.create_tenant(&t).await.unwrap();
    let edge = principal(&t, PrincipalKind::Service, "edge-1");
    let other = principal(&t, PrincipalKind::Service, "edge-2");
    s.create_principal(&edge).await.unwrap();
    s.create_principal(&other).await.unwrap();
    let owned = |owner: &Principal, exp: i64| GatewayKeyRecord {
        principal: Some(owner.id.clone()),
        ..k("g2", "pk2", exp)
    };
    s.register_gateway_key(&owned(&edge, 500)).await.unwrap();
    assert!(matches!(
        s.register_gateway_key(&owned(&other, 900)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.register_gateway_key(&k("g2", "pk2", 900)).await,
        Err(StoreError::Conflict(_))
    ));
    let keys = s.gateway_keys(400).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].principal.as_ref(), keys[0].expires_at),
        (Some(&edge.id), 500)
    );
    s.set_principal_disabled(&edge.id, true, 400).await.unwrap();
    assert!(s.gateway_keys(400).await.unwrap().is_empty());
    s.set_principal_disabled(&edge.id, false, 401)
        .await
        .unwrap();
    assert_eq!(s.gateway_keys(401).await.unwrap().len(), 1);
}

async fn delegation_grants(s: &dyn Store) {
    let t = tenant("acme");
    s.create_tenant(&t).await.unwrap();
    let user = principal(&t, PrincipalKind::User, "ann");
    let agent = principal(&t, PrincipalKind::Agent, "bot");
    s.create_principal(&user).await.unwrap();
    s.create_principal(&agent).await.unwrap();
    let grant = |id: &str, expires_at| DelegationGrant {
        id: id.into(),
        tenant: t.id.clone(),
        user: user.id.clone(),
        agent: agent.id.clone(),
        scopes: ScopeSet::parse("crm:contacts:read").unwrap(),
        created_at: 1_000,
        expires_at,
        revoked_at: None,
    };
    s.create_delegation_grant(&grant("dlg_1", Some(2_000)))
        .await
        .unwrap();
    assert!(matches!(
        s.create_delegation_grant(&grant("dlg_2", None)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.live_delegation_grant(&user.id, &agent.id, 1_500)
            .await
            .unwrap(),
        Some(grant("dlg_1", Some(2_000)))
    );
    assert_eq!(
        s.live_delegation_grant(&user.id, &agent.id, 2_000)
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        s.live_delegation_grant(&agent.id, &user.id, 1_500)
            .await
            .unwrap(),
        None,
        "grants are directed"
    );

    let event = NewRevocation {
        target: RevocationTarget::Grant {
            grant: "dlg_1".into(),
            user: user.id.clone(),
            agent: agent.id.clone(),
        },
        issued_before: 1_600,
        horizon: 2_500,
        reason: Some("left the team".into()),
        created_at: 1_600,
    };
    let appended = s.revoke_delegation_grant("dlg_1", &event).await.unwrap();
    assert_eq!(appended.event, event);
    assert!(matches!(
        s.revoke_delegation_grant("dlg_1", &event).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.delegation_grant("dlg_1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(1_600)
    );
    assert_eq!(
        s.live_delegation_grant(&user.id, &agent.id, 1_601)
            .await
            .unwrap(),
        None
    );
    // A revoked grant frees the pair for a new one.
    s.create_delegation_grant(&grant("dlg_3", None))
        .await
        .unwrap();
    let listed: Vec<_> = s
        .list_delegation_grants(&t.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(listed, ["dlg_1", "dlg_3"]);
    assert!(matches!(
        s.create_delegation_grant(&DelegationGrant {
            agent: PrincipalId::generate(PrincipalKind::Agent, &mut OsRng),
            ..grant("dlg_4", None)
        })
        .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn revocation_log(s: &dyn Store) {
    let mut watch = s.revocation_watch();
    let start = *watch.borrow_and_update();
    let someone = PrincipalId::generate(PrincipalKind::Agent, &mut OsRng);
    let event = |target, horizon| NewRevocation {
        target,
        issued_before: 100,
        horizon,
        reason: None,
        created_at: 100,
    };
    let a = s
        .append_revocation(&event(
            RevocationTarget::Principal {
                principal: someone.clone(),
            },
            1_000,
        ))
        .await
        .unwrap();
    assert!(watch.has_changed().unwrap());
    assert_eq!(*watch.borrow_and_update(), a.seq);
    let b = s
        .append_revocation(&event(RevocationTarget::Token { jti: "j1".into() }, 500))
        .await
        .unwrap();
    assert!(b.seq > a.seq && a.seq > start);
    assert_eq!(
        s.revocations_since(start, 10).await.unwrap(),
        [a.clone(), b.clone()]
    );
    assert_eq!(
        s.revocations_since(a.seq, 10).await.unwrap(),
        std::slice::from_ref(&b)
    );
    assert_eq!(
        s.revocations_since(start, 1).await.unwrap(),
        std::slice::from_ref(&a)
    );
    assert_eq!(s.prune_revocations(600).await.unwrap(), 1);
    assert_eq!(
        s.revocations_since(start, 10).await.unwrap(),
        std::slice::from_ref(&a)
    );
    // Sequence numbers are never reused, even once the newest event is pruned.
    assert_eq!(s.prune_revocations(2_000).await.unwrap(), 1);
    let c = s
        .append_revocation(&event(RevocationTarget::Token { jti: "j2".into() }, 500))
        .await
        .unwrap();
    assert!(c.seq > b.seq);
    let h = s
        .append_revocation(&event(
            RevocationTarget::Honeytoken {
                principal: someone.clone(),
            },
            i64::MAX,
        ))
        .await
        .unwrap();
    assert_eq!(
        s.revocations_since(c.seq, 10).await.unwrap(),
        std::slice::from_ref(&h)
    );
}

/// Instantiates the suite for one backend. `$open` yields `Option<impl Store>`: `None`
/// skips the test (a backend whose server is not available here).
async fn activity_only_moves_forward(s: &dyn Store) {
    let t = tenant("acme");
    s.create_tenant(&t).await.unwrap();
    let p = principal(&t, PrincipalKind::Agent, "bot");
    s.create_principal(&p).await.unwrap();
    let a = |issued, used| Activity {
        principal: p.id.clone(),
        last_issued_at: issued,
        last_used_at: used,
    };
    s.record_activity(&[a(Some(100), None)]).await.unwrap();
    assert_eq!(s.activity(&t.id).await.unwrap(), [a(Some(100), None)]);
    s.record_activity(&[a(Some(90), Some(120)), a(None, Some(110))])
        .await
        .unwrap();
    assert_eq!(s.activity(&t.id).await.unwrap(), [a(Some(100), Some(120))]);
    s.record_activity(&[a(Some(150), None)]).await.unwrap();
    assert_eq!(s.activity(&t.id).await.unwrap(), [a(Some(150), Some(120))]);
    // A principal that does not exist (reported by a gateway) is kept out of reports.
    s.record_activity(&[Activity {
        principal: PrincipalId::generate(PrincipalKind::Agent, &mut OsRng),
        last_issued_at: Some(1),
        last_used_at: None,
    }])
    .await
    .unwrap();
    assert_eq!(s.activity(&t.id).await.unwrap().len(), 1);
}

async fn client_key_age(s: &dyn Store) {
    let t = tenant("acme");
    s.create_tenant(&t).await.unwrap();
    let mut p = principal(&t, PrincipalKind::Agent, "bot");
    p.public_jwk = Some("{}".into());
    p.key_registered_at = Some(1_000);
    s.create_principal(&p).await.unwrap();
    let stored = s.principal(&p.id).await.unwrap().unwrap();
    assert_eq!(stored.key_registered_at, Some(1_000));
    s.set_principal_public_key(&p.id, "{\"new\":1}", 5_000)
        .await
        .unwrap();
    let stored = s.principal(&p.id).await.unwrap().unwrap();
    assert_eq!(stored.key_registered_at, Some(5_000));

    let set = |secs| Change::SetTenantMaxClientKeyAge { id: &t.id, secs };
    s.apply(set(Some(3_600)), &ChangeRecord::default())
        .await
        .unwrap();
    let stored = s.tenant(&t.id).await.unwrap().unwrap();
    assert_eq!(stored.max_client_key_age_secs, Some(3_600));
    s.apply(set(None), &ChangeRecord::default()).await.unwrap();
    assert_eq!(
        s.tenant(&t.id)
            .await
            .unwrap()
            .unwrap()
            .max_client_key_age_secs,
        None
    );
}

async fn oauth_clients(s: &dyn Store) {
    let (a, b) = (tenant("acme"), tenant("globex"));
    s.create_tenant(&a).await.unwrap();
    s.create_tenant(&b).await.unwrap();
    let client = |t: &Tenant, name: &str, public: bool| OAuthClient {
        id: ClientId::generate(&mut OsRng),
        tenant: t.id.clone(),
        name: name.into(),
        redirect_uris: vec![
            RedirectUri::register("https://app.example/cb", public).unwrap(),
            RedirectUri::register("http://127.0.0.1/cb", public).unwrap(),
        ],
        public,
        secret_hash: (!public).then(|| "digest".to_owned()),
        created_at: 1_000,
    };
    let web = client(&a, "web", false);
    let cli = client(&a, "cli", true);
    s.create_oauth_client(&web).await.unwrap();
    s.create_oauth_client(&cli).await.unwrap();
    assert_eq!(s.oauth_client(&web.id).await.unwrap(), Some(web.clone()));
    let mut listed = s.list_oauth_clients(&a.id).await.unwrap();
    listed.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(listed, vec![cli.clone(), web.clone()]);
    assert!(s.list_oauth_clients(&b.id).await.unwrap().is_empty());

    // A name is unique within its tenant, not across tenants.
    let twin = client(&a, "web", false);
    assert!(matches!(
        s.create_oauth_client(&twin).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.oauth_client(&twin.id).await.unwrap(), None);
    s.create_oauth_client(&client(&b, "web", false))
        .await
        .unwrap();
    let mut orphan = client(&a, "orphan", true);
    orphan.tenant = TenantId::generate(&mut OsRng);
    assert!(matches!(
        s.create_oauth_client(&orphan).await,
        Err(StoreError::NotFound(_))
    ));

    s.delete_oauth_client(&cli.id).await.unwrap();
    assert_eq!(s.oauth_client(&cli.id).await.unwrap(), None);
    assert!(matches!(
        s.delete_oauth_client(&cli.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.list_oauth_clients(&a.id).await.unwrap(), vec![web]);
}

async fn people(s: &dyn Store) {
    let t = tenant("acme");
    s.create_tenant(&t).await.unwrap();
    let ann = principal(&t, PrincipalKind::User, "ann");
    let invite = Invite {
        digest: "inv1".into(),
        user: ann.id.clone(),
        created_at: 1_000,
        expires_at: 2_000,
        used_at: None,
        totp_pending: None,
    };
    let change = Change::CreateInvite {
        user: &ann,
        invite: &invite,
    };
    s.apply(change, &ChangeRecord::default()).await.unwrap();
    assert_eq!(s.principal(&ann.id).await.unwrap(), Some(ann.clone()));
    assert_eq!(
        s.principal_by_name(&t.id, "ann").await.unwrap(),
        Some(ann.clone())
    );
    assert_eq!(s.principal_by_name(&t.id, "Ann").await.unwrap(), None);
    assert_eq!(s.invite("inv1").await.unwrap(), Some(invite.clone()));
    // A second invite for a name taken: nothing of it is left.
    let mut twin = principal(&t, PrincipalKind::User, "ann");
    twin.id = PrincipalId::generate(PrincipalKind::User, &mut OsRng);
    let second = Invite {
        digest: "inv2".into(),
        user: twin.id.clone(),
        ..invite.clone()
    };
    let change = Change::CreateInvite {
        user: &twin,
        invite: &second,
    };
    assert!(matches!(
        s.apply(change, &ChangeRecord::default()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.invite("inv2").await.unwrap(), None);

    // The first pending secret stays.
    let shown = s
        .pend_invite_totp("inv1", "sealed-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shown.totp_pending.as_deref(), Some("sealed-a"));
    let again = s
        .pend_invite_totp("inv1", "sealed-b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.totp_pending.as_deref(), Some("sealed-a"));

    let totp = TotpCredential {
        user: ann.id.clone(),
        sealed: "sealed-a".into(),
        created_at: 1_500,
        last_step: 50,
    };
    let enroll = |now| Change::CompleteEnrollment {
        invite: "inv1",
        totp: &totp,
        now,
    };
    assert!(matches!(
        s.apply(enroll(2_001), &ChangeRecord::default()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.totp(&ann.id).await.unwrap(), None);
    s.apply(enroll(1_500), &ChangeRecord::default())
        .await
        .unwrap();
    assert_eq!(s.totp(&ann.id).await.unwrap(), Some(totp.clone()));
    assert_eq!(
        s.invite("inv1").await.unwrap().unwrap().used_at,
        Some(1_500)
    );
    assert!(matches!(
        s.apply(enroll(1_600), &ChangeRecord::default()).await,
        Err(StoreError::NotFound(_))
    ));

    // A step is accepted once, and only a later one after it; racing uses, one winner.
    let (a, b) = tokio::join!(
        s.accept_totp_step(&ann.id, 51),
        s.accept_totp_step(&ann.id, 51)
    );
    assert!(a.unwrap() ^ b.unwrap());
    assert!(!s.accept_totp_step(&ann.id, 50).await.unwrap());
    assert!(s.accept_totp_step(&ann.id, 52).await.unwrap());

    let session = |digest: &str, id: &str, at| Session {
        digest: digest.into(),
        id: id.into(),
        user: ann.id.clone(),
        csrf: "csrf".into(),
        amr: vec!["otp".into()],
        auth_time: at,
        created_at: at,
        last_seen_at: at,
        user_agent: Some("test".into()),
        revoked_at: None,
    };
    let one = session("sd1", "sid1", 1_500);
    s.create_session(&one).await.unwrap();
    s.create_session(&session("sd2", "sid2", 1_600))
        .await
        .unwrap();
    assert!(matches!(
        s.create_session(&session("sd1", "sid3", 1_700)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.session("sd1").await.unwrap(), Some(one.clone()));
    s.touch_session("sd1", 1_550).await.unwrap();
    s.touch_session("sd1", 1_540).await.unwrap();
    assert_eq!(s.session("sd1").await.unwrap().unwrap().last_seen_at, 1_550);
    let ids: Vec<String> = s
        .sessions_of(&ann.id)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(ids, ["sid1", "sid2"]);
    assert!(s.revoke_session(&ann.id, "sid1", 1_800).await.unwrap());
    assert!(!s.revoke_session(&ann.id, "sid1", 1_900).await.unwrap());
    let other = principal(&t, PrincipalKind::User, "bob");
    assert!(!s.revoke_session(&other.id, "sid2", 1_900).await.unwrap());
    assert_eq!(
        s.session("sd1").await.unwrap().unwrap().revoked_at,
        Some(1_800)
    );
}

async fn code_flow(s: &dyn Store) {
    let t = tenant("acme");
    s.create_tenant(&t).await.unwrap();
    let ann = principal(&t, PrincipalKind::User, "ann");
    s.create_principal(&ann).await.unwrap();
    let client = OAuthClient {
        id: ClientId::generate(&mut OsRng),
        tenant: t.id.clone(),
        name: "web".into(),
        redirect_uris: vec![RedirectUri::register("https://app.example/cb", false).unwrap()],
        public: false,
        secret_hash: Some("digest".into()),
        created_at: 1_000,
    };
    s.create_oauth_client(&client).await.unwrap();

    let code = StoredCode {
        digest: "d1".into(),
        client_id: client.id.clone(),
        user: ann.id.clone(),
        redirect_uri: "https://app.example/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scopes: ScopeSet::parse("openid crm:read").unwrap(),
        nonce: Some("n".into()),
        issued_at: 1_000,
        expires_at: 1_060,
        used_at: None,
        family: None,
    };
    s.insert_code(&code).await.unwrap();
    assert!(matches!(
        s.insert_code(&code).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.code("d1").await.unwrap(), Some(code.clone()));
    assert_eq!(s.code("nope").await.unwrap(), None);

    // Two redemptions racing: exactly one wins, and the code remembers which family it began.
    let (a, b) = tokio::join!(
        s.redeem_code("d1", 1_010, Some("fam-a")),
        s.redeem_code("d1", 1_010, Some("fam-b"))
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one redemption wins");
    let redeemed = s.code("d1").await.unwrap().unwrap();
    assert_eq!(redeemed.used_at, Some(1_010));
    assert!(matches!(
        redeemed.family.as_deref(),
        Some("fam-a" | "fam-b")
    ));
    assert!(!s.redeem_code("d1", 1_020, None).await.unwrap());
    assert!(!s.redeem_code("nope", 1_020, None).await.unwrap());

    let family = RefreshFamily {
        id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        client_id: client.id.clone(),
        user: ann.id.clone(),
        scopes: ScopeSet::parse("crm:read").unwrap(),
        generation: 0,
        rotated_at: 1_010,
        created_at: 1_010,
        revoked_at: None,
    };
    s.create_refresh_family(&family).await.unwrap();
    assert_eq!(
        s.refresh_family(&family.id).await.unwrap(),
        Some(family.clone())
    );
    // Two uses of the live token racing: one rotation.
    let (a, b) = tokio::join!(
        s.rotate_refresh_family(&family.id, 0, 1_100),
        s.rotate_refresh_family(&family.id, 0, 1_100)
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one rotation wins");
    let rotated = s.refresh_family(&family.id).await.unwrap().unwrap();
    assert_eq!((rotated.generation, rotated.rotated_at), (1, 1_100));
    assert!(!s.rotate_refresh_family(&family.id, 0, 1_200).await.unwrap());
    assert!(s.revoke_refresh_family(&family.id, 1_300).await.unwrap());
    assert!(!s.revoke_refresh_family(&family.id, 1_400).await.unwrap());
    assert!(!s.rotate_refresh_family(&family.id, 1, 1_500).await.unwrap());
    let revoked = s.refresh_family(&family.id).await.unwrap().unwrap();
    assert_eq!((revoked.generation, revoked.revoked_at), (1, Some(1_300)));

    // Expired codes go; live ones stay. Deleting the client takes its state with it.
    let mut live = code.clone();
    live.digest = "d2".into();
    live.expires_at = 2_000;
    s.insert_code(&live).await.unwrap();
    assert_eq!(s.prune_codes(1_061).await.unwrap(), 1);
    assert_eq!(s.code("d1").await.unwrap(), None);
    s.delete_oauth_client(&client.id).await.unwrap();
    assert_eq!(s.code("d2").await.unwrap(), None);
    assert_eq!(s.refresh_family(&family.id).await.unwrap(), None);
}

macro_rules! conformance {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;
            #[tokio::test]
            async fn tenants_and_principals() {
                let Some(store) = $open else { return };
                super::tenants_and_principals(&store).await
            }
            #[tokio::test]
            async fn principal_revocation_and_reinstatement() {
                let Some(store) = $open else { return };
                super::principal_revocation_and_reinstatement(&store).await
            }
            #[tokio::test]
            async fn client_key_age() {
                let Some(store) = $open else { return };
                super::client_key_age(&store).await
            }
            #[tokio::test]
            async fn key_rotation() {
                let Some(store) = $open else { return };
                super::key_rotation(&store).await
            }
            #[tokio::test]
            async fn assertion_jti_is_single_use() {
                let Some(store) = $open else { return };
                super::assertion_jti_is_single_use(&store).await
            }
            #[tokio::test]
            async fn gateway_keys() {
                let Some(store) = $open else { return };
                super::gateway_keys(&store).await
            }
            #[tokio::test]
            async fn idempotency() {
                let Some(store) = $open else { return };
                super::idempotency(&store).await
            }
            #[tokio::test]
            async fn change_and_record_commit_together() {
                let Some(store) = $open else { return };
                super::change_and_record_commit_together(&store).await
            }
            #[tokio::test]
            async fn compound_changes_are_atomic() {
                let Some(store) = $open else { return };
                super::compound_changes_are_atomic(&store).await
            }
            #[tokio::test]
            async fn audit_outbox_is_drained_once() {
                let Some(store) = $open else { return };
                super::audit_outbox_is_drained_once(&store).await
            }
            #[tokio::test]
            async fn delegation_grants() {
                let Some(store) = $open else { return };
                super::delegation_grants(&store).await
            }
            #[tokio::test]
            async fn revocation_log() {
                let Some(store) = $open else { return };
                super::revocation_log(&store).await
            }
            #[tokio::test]
            async fn oauth_clients() {
                let Some(store) = $open else { return };
                super::oauth_clients(&store).await
            }
            #[tokio::test]
            async fn people() {
                let Some(store) = $open else { return };
                super::people(&store).await
            }
            #[tokio::test]
            async fn code_flow() {
                let Some(store) = $open else { return };
                super::code_flow(&store).await
            }
            #[tokio::test]
            async fn activity_only_moves_forward() {
                let Some(store) = $open else { return };
                super::activity_only_moves_forward(&store).await
            }
        }
    };
}

conformance!(sqlite_memory, Some(SqliteStore::in_memory().await.unwrap()));
conformance!(postgres, fresh_pg().await);

mod sqlite_file {
    use super::*;

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.db");
        let t = tenant("acme");
        {
            let s = SqliteStore::open(&path).await.unwrap();
            s.create_tenant(&t).await.unwrap();
        }
        let s = SqliteStore::open(&path).await.unwrap();
        assert_eq!(s.tenant(&t.id).await.unwrap(), Some(t));
        super::tenants_and_principals(&SqliteStore::open(&dir.path().join("b.db")).await.unwrap())
            .await;
    }
}

mod connect_url {
    use warden_store::{connect_url, StoreError};

    #[tokio::test]
    async fn opens_sqlite_from_a_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url.db");
        let store = connect_url(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        super::tenants_and_principals(store.as_ref()).await;
        assert!(path.exists());
    }

    #[tokio::test]
    async fn refuses_other_schemes_without_echoing_the_url() {
        for url in [
            "mysql://root:hunter2@db/warden",
            "hunter2",
            "sqlite://",
            "http ://x",
        ] {
            match connect_url(url).await {
                Err(StoreError::Config(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
                Err(e) => panic!("{url}: {e}"),
                Ok(_) => panic!("{url}: opened"),
            }
        }
    }
}
