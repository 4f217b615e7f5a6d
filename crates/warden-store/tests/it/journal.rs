//! The conformance suite's part on what a change leaves on record: `Idempotency-Key`
//! reservations and answers, a change committed together with its record, compound changes
//! made whole or not at all, and the audit outbox drained once.

use super::*;

pub(crate) async fn idempotency(s: &dyn Store) {
    assert_eq!(
        s.idempotency_begin("k", "h1", 10, 60).await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        s.idempotency_begin("k", "h1", 11, 60).await.unwrap(),
        IdempotencyBegin::InFlight
    );
    assert_eq!(
        s.idempotency_begin("k", "h2", 11, 60).await.unwrap(),
        IdempotencyBegin::Mismatch
    );
    assert!(s
        .idempotency_complete("k", 10, 201, "{\"ok\":1}")
        .await
        .unwrap());
    assert!(
        !s.idempotency_complete("k", 10, 500, "late").await.unwrap(),
        "an answer is recorded once"
    );
    assert_eq!(
        s.idempotency_begin("k", "h1", 12, 60).await.unwrap(),
        IdempotencyBegin::Replay {
            status: 201,
            body: "{\"ok\":1}".into()
        }
    );
    // An abandoned reservation is taken over.
    assert_eq!(
        s.idempotency_begin("a", "h", 10, 60).await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        s.idempotency_begin("a", "h", 71, 60).await.unwrap(),
        IdempotencyBegin::Started
    );
    // The holder presumed dead can neither answer nor release the key it lost.
    assert!(!s.idempotency_complete("a", 10, 200, "{}").await.unwrap());
    assert!(!s.idempotency_release("a", 10).await.unwrap());
    assert!(s.idempotency_release("a", 71).await.unwrap());
    assert_eq!(
        s.idempotency_begin("a", "h", 72, 60).await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(s.prune_idempotency(72).await.unwrap(), 1);
}

/// A change record: the answer for key `key` reserved at `at`, and an outbox entry `id`.
fn record<'a>(
    key: &'a str,
    at: i64,
    status: u16,
    body: RenderAnswer<'a>,
    id: &str,
) -> ChangeRecord<'a> {
    ChangeRecord {
        answer: Some(IdempotentAnswer {
            key,
            reserved_at: at,
            status,
            body,
        }),
        audit: Some(OutboxEntry {
            id: id.into(),
            entry: format!("{{\"entry\":\"{id}\"}}"),
            due_at: at + 60,
        }),
    }
}

async fn replay_of(s: &dyn Store, key: &str, now: i64) -> IdempotencyBegin {
    s.idempotency_begin(key, "h", now, 60).await.unwrap()
}

pub(crate) async fn change_and_record_commit_together(s: &dyn Store) {
    let t = tenant("acme");
    let body = serde_json::to_string(&t).unwrap();
    let render: RenderAnswer<'_> = &|_| Ok(body.clone());

    // Committed: the answer replays and the outbox holds the entry.
    assert_eq!(replay_of(s, "k1", 10).await, IdempotencyBegin::Started);
    s.apply(
        Change::CreateTenant(&t),
        &record("k1", 10, 201, render, "o1"),
    )
    .await
    .unwrap();
    assert_eq!(
        replay_of(s, "k1", 11).await,
        IdempotencyBegin::Replay {
            status: 201,
            body: body.clone()
        }
    );
    let row = s.audit_outbox_entry("o1").await.unwrap().unwrap();
    assert_eq!((row.entry.as_str(), row.due_at), ("{\"entry\":\"o1\"}", 70));

    // A change that fails (the name is taken) leaves neither an answer nor an outbox entry.
    assert_eq!(replay_of(s, "k2", 10).await, IdempotencyBegin::Started);
    let again = tenant("acme");
    assert!(matches!(
        s.apply(
            Change::CreateTenant(&again),
            &record("k2", 10, 201, render, "o2")
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(replay_of(s, "k2", 11).await, IdempotencyBegin::InFlight);
    assert_eq!(s.audit_outbox_entry("o2").await.unwrap(), None);

    // A holder presumed dead, whose key was taken over, commits nothing: neither the change
    // nor its record. The new holder's change goes through once.
    let other = tenant("globex");
    assert_eq!(replay_of(s, "k3", 10).await, IdempotencyBegin::Started);
    assert_eq!(replay_of(s, "k3", 71).await, IdempotencyBegin::Started);
    assert!(matches!(
        s.apply(
            Change::CreateTenant(&other),
            &record("k3", 10, 201, render, "o3")
        )
        .await,
        Err(StoreError::ReservationLost)
    ));
    assert_eq!(s.tenant(&other.id).await.unwrap(), None);
    assert_eq!(s.audit_outbox_entry("o3").await.unwrap(), None);
    s.apply(
        Change::CreateTenant(&other),
        &record("k3", 71, 201, render, "o4"),
    )
    .await
    .unwrap();
    assert_eq!(s.tenant(&other.id).await.unwrap(), Some(other));
    assert!(matches!(
        replay_of(s, "k3", 72).await,
        IdempotencyBegin::Replay { status: 201, .. }
    ));

    // An answer that only the transaction can know: the seq of the revocation it appends.
    assert_eq!(replay_of(s, "k5", 10).await, IdempotencyBegin::Started);
    let event = NewRevocation {
        target: RevocationTarget::Token { jti: "j".into() },
        issued_before: 0,
        horizon: 1_000,
        reason: None,
        created_at: 10,
    };
    let render_seq: RenderAnswer<'_> = &|x: &Applied| serde_json::to_string(&x.revocation);
    let applied = s
        .apply(
            Change::AppendRevocation(&event),
            &record("k5", 10, 200, render_seq, "o5"),
        )
        .await
        .unwrap();
    let appended = applied.revocation.unwrap();
    assert_eq!(
        replay_of(s, "k5", 11).await,
        IdempotencyBegin::Replay {
            status: 200,
            body: serde_json::to_string(&appended).unwrap()
        }
    );
    assert_eq!(s.revocations_since(0, 10).await.unwrap(), [appended]);

    // Without a record, a change is made alone.
    s.apply(
        Change::SetTenantDisabled {
            id: &t.id,
            disabled: true,
        },
        &ChangeRecord::default(),
    )
    .await
    .unwrap();
    assert!(s.tenant(&t.id).await.unwrap().unwrap().disabled);
}

/// Changes of more than one statement are made whole or not at all.
pub(crate) async fn compound_changes_are_atomic(s: &dyn Store) {
    let t = tenant("acme");
    s.create_tenant(&t).await.unwrap();
    let p = principal(&t, PrincipalKind::Agent, "bot");
    s.create_principal(&p).await.unwrap();
    let event = |target| NewRevocation {
        target,
        issued_before: 2_001,
        horizon: 9_000,
        reason: Some("principal disabled".into()),
        created_at: 2_000,
    };
    let none = ChangeRecord::default();

    // Disabling appends the event that ends the principal's tokens, or neither happens.
    let ghost = PrincipalId::generate(PrincipalKind::Agent, &mut OsRng);
    let ends_ghost = event(RevocationTarget::Principal {
        principal: ghost.clone(),
    });
    let change = Change::DisablePrincipal {
        id: &ghost,
        now: 2_000,
        event: &ends_ghost,
    };
    assert!(matches!(
        s.apply(change, &none).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.revocations_since(0, 10).await.unwrap().is_empty());
    let ends_bot = event(RevocationTarget::Principal {
        principal: p.id.clone(),
    });
    let change = Change::DisablePrincipal {
        id: &p.id,
        now: 2_000,
        event: &ends_bot,
    };
    let disabled = s.apply(change, &none).await.unwrap().revocation.unwrap();
    assert_eq!(disabled.event, ends_bot);
    let got = s.principal(&p.id).await.unwrap().unwrap();
    assert!(got.disabled && got.updated_at == 2_000);
    assert_eq!(*s.revocation_watch().borrow(), disabled.seq);

    // A honeytoken never exists unflagged: a name conflict leaves no flag either.
    let bait = principal(&t, PrincipalKind::Agent, "bait");
    let flag = event(RevocationTarget::Honeytoken {
        principal: bait.id.clone(),
    });
    let taken = Principal {
        id: PrincipalId::generate(PrincipalKind::Agent, &mut OsRng),
        ..principal(&t, PrincipalKind::Agent, "bot")
    };
    let flag_taken = event(RevocationTarget::Honeytoken {
        principal: taken.id.clone(),
    });
    let change = Change::CreateHoneytoken {
        principal: &taken,
        flag: &flag_taken,
    };
    assert!(matches!(
        s.apply(change, &none).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.revocations_since(disabled.seq, 10).await.unwrap(), []);
    let change = Change::CreateHoneytoken {
        principal: &bait,
        flag: &flag,
    };
    let flagged = s.apply(change, &none).await.unwrap().revocation.unwrap();
    assert_eq!(flagged.event, flag);
    assert!(s.principal(&bait.id).await.unwrap().is_some());

    // A new grant supersedes the pair's expired one in one transaction.
    let user = principal(&t, PrincipalKind::User, "ann");
    s.create_principal(&user).await.unwrap();
    let grant = |id: &str, expires_at| DelegationGrant {
        id: id.into(),
        tenant: t.id.clone(),
        user: user.id.clone(),
        agent: p.id.clone(),
        scopes: ScopeSet::parse("crm:contacts:read").unwrap(),
        created_at: 1_000,
        expires_at,
        revoked_at: None,
    };
    s.create_delegation_grant(&grant("dlg_old", Some(1_500)))
        .await
        .unwrap();
    let retire = event(RevocationTarget::Grant {
        grant: "dlg_old".into(),
        user: user.id.clone(),
        agent: p.id.clone(),
    });
    let fresh = grant("dlg_new", None);
    let supersede = Supersede {
        grant: "dlg_old",
        event: &retire,
    };
    let change = Change::CreateDelegationGrant {
        grant: &fresh,
        supersede: Some(supersede),
    };
    let retired = s.apply(change, &none).await.unwrap().revocation.unwrap();
    assert_eq!(retired.event, retire);
    assert_eq!(
        s.delegation_grant("dlg_old")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(2_000)
    );
    assert_eq!(s.delegation_grant("dlg_new").await.unwrap(), Some(fresh));
    // Superseding a grant already retired appends nothing and still creates the new one.
    s.revoke_delegation_grant("dlg_new", &retire).await.unwrap();
    let newest = grant("dlg_newest", None);
    let change = Change::CreateDelegationGrant {
        grant: &newest,
        supersede: Some(Supersede {
            grant: "dlg_old",
            event: &retire,
        }),
    };
    assert_eq!(s.apply(change, &none).await.unwrap().revocation, None);
    assert!(s.delegation_grant("dlg_newest").await.unwrap().is_some());

    // A rotation answers with the keys as it left them.
    s.insert_signing_key(&key("k1", KeyState::Active))
        .await
        .unwrap();
    s.insert_signing_key(&key("k2", KeyState::Next))
        .await
        .unwrap();
    let change = Change::RotateSigningKeys {
        new_next: &key("k3", KeyState::Next),
        now: 5_000,
        publish_until: 6_000,
        next_created_by: None,
    };
    let keys = s.apply(change, &none).await.unwrap().signing_keys;
    assert_eq!(keys, s.signing_keys().await.unwrap());
    let states: Vec<_> = keys.iter().map(|k| (k.kid.as_str(), k.state)).collect();
    assert_eq!(
        states,
        [
            ("k1", KeyState::Retired),
            ("k2", KeyState::Active),
            ("k3", KeyState::Next)
        ]
    );
}

pub(crate) async fn audit_outbox_is_drained_once(s: &dyn Store) {
    let t = tenant("acme");
    s.create_tenant(&t).await.unwrap();
    for (i, due_at) in [(1, 100), (2, 200), (3, 300)] {
        let record = ChangeRecord {
            answer: None,
            audit: Some(OutboxEntry {
                id: format!("o{i}"),
                entry: format!("entry {i}"),
                due_at,
            }),
        };
        let change = Change::SetTenantMaxTokenTtl { id: &t.id, secs: i };
        s.apply(change, &record).await.unwrap();
    }
    let ids = |rows: Vec<OutboxEntry>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    // Only what is due; each taken entry is held, so a second drainer does not get it.
    assert_eq!(
        ids(s.claim_audit_outbox(150, 1_000, 10).await.unwrap()),
        ["o1"]
    );
    assert!(s
        .claim_audit_outbox(150, 1_000, 10)
        .await
        .unwrap()
        .is_empty());
    let taken = s.claim_audit_outbox(300, 1_000, 1).await.unwrap();
    assert_eq!(
        taken,
        [OutboxEntry {
            id: "o2".into(),
            entry: "entry 2".into(),
            due_at: 1_000
        }]
    );
    s.remove_audit_outbox("o2").await.unwrap();
    assert_eq!(s.audit_outbox_entry("o2").await.unwrap(), None);
    // Everything, for a process that knows it is alone; a held entry whose taker died is
    // due again.
    assert_eq!(
        ids(s.claim_audit_outbox(i64::MAX, 2_000, 10).await.unwrap()),
        ["o3", "o1"]
    );
    assert_eq!(
        ids(s.claim_audit_outbox(2_000, 3_000, 10).await.unwrap()),
        ["o1", "o3"]
    );
}
