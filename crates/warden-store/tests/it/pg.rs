//! PostgreSQL: how tests get a database, and what only a shared database can show (replicas
//! waking each other, concurrent appenders, racing migrations, a lost listener connection).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::Connection;
use tokio::sync::watch;
use warden_store::postgres::PgStore;
use warden_store::{connect_url, NewRevocation, RevocationStore, RevocationTarget};
use warden_test::postgres::{fresh_database, server_url, url_with_database};

const WAIT: Duration = Duration::from_secs(10);

/// A store on a fresh database, or `None` when the PostgreSQL tests are skipped.
pub async fn fresh_pg() -> Option<PgStore> {
    let url = server_url()?;
    Some(
        PgStore::connect_with(fresh_database(&url).await)
            .await
            .unwrap(),
    )
}

fn token_event(jti: &str) -> NewRevocation {
    NewRevocation {
        target: RevocationTarget::Token { jti: jti.into() },
        issued_before: 100,
        horizon: 10_000,
        reason: None,
        created_at: 100,
    }
}

/// Waits, without sleeping, until the watch shows at least `seq`.
async fn wait_for(watch: &mut watch::Receiver<i64>, seq: i64) {
    tokio::time::timeout(WAIT, watch.wait_for(|head| *head >= seq))
        .await
        .unwrap_or_else(|_| panic!("watch did not reach seq {seq} within {WAIT:?}"))
        .unwrap();
}

#[tokio::test]
async fn replicas_wake_each_other() {
    let Some(url) = server_url() else { return };
    let options = fresh_database(&url).await;
    let a = PgStore::connect_with(options.clone()).await.unwrap();
    let b = PgStore::connect_with(options.clone()).await.unwrap();
    let mut on_a = a.revocation_watch();
    let mut on_b = b.revocation_watch();
    assert_eq!(*on_b.borrow_and_update(), 0);

    let first = a.append_revocation(&token_event("j1")).await.unwrap();
    wait_for(&mut on_b, first.seq).await;
    assert_eq!(*on_b.borrow_and_update(), first.seq);

    let second = b.append_revocation(&token_event("j2")).await.unwrap();
    wait_for(&mut on_a, second.seq).await;
    assert_eq!(*on_a.borrow_and_update(), second.seq);
    assert_eq!(
        a.revocations_since(0, 10).await.unwrap(),
        [first.clone(), second.clone()]
    );
    assert!(second.seq > first.seq);

    // A store opened later starts from the newest seq already there.
    let c = PgStore::connect_with(options).await.unwrap();
    assert_eq!(*c.revocation_watch().borrow(), second.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_read_in_commit_order() {
    let Some(url) = server_url() else { return };
    let options = fresh_database(&url).await;
    let a = Arc::new(PgStore::connect_with(options.clone()).await.unwrap());
    let b = Arc::new(PgStore::connect_with(options.clone()).await.unwrap());
    let reader_store = PgStore::connect_with(options).await.unwrap();

    // A gateway following the log with a cursor, as fast as it can, while the appends run.
    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let done = Arc::clone(&done);
        async move {
            let mut cursor = 0;
            let mut seen = Vec::new();
            loop {
                // Read the flag before the batch: once every append has finished, one more
                // batch that comes back empty proves the reader has them all.
                let finished = done.load(Ordering::SeqCst);
                let batch = reader_store.revocations_since(cursor, 1000).await.unwrap();
                if finished && batch.is_empty() {
                    return seen;
                }
                for event in batch {
                    assert!(event.seq > cursor);
                    cursor = event.seq;
                    seen.push(event.seq);
                }
                tokio::task::yield_now().await;
            }
        }
    });

    let mut appends = tokio::task::JoinSet::new();
    for i in 0..32 {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        appends.spawn(async move {
            store
                .append_revocation(&token_event(&format!("j{i}")))
                .await
                .unwrap()
                .seq
        });
    }
    let mut appended = Vec::new();
    while let Some(seq) = appends.join_next().await {
        appended.push(seq.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let seen = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();

    let appended: Vec<i64> = appended
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(appended.len(), 32, "every append has its own seq");
    let logged: Vec<i64> = a
        .revocations_since(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(logged, appended, "the log holds exactly what was appended");
    assert_eq!(
        seen, appended,
        "the cursor reader saw every event, in order"
    );
    let mut on_a = a.revocation_watch();
    wait_for(&mut on_a, appended[31]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_migrate_once() {
    let Some(url) = server_url() else { return };
    let options = fresh_database(&url).await;
    let (a, b, c) = tokio::join!(
        PgStore::connect_with(options.clone()),
        PgStore::connect_with(options.clone()),
        PgStore::connect_with(options.clone()),
    );
    let (a, _b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM warden_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    // Each migration once, in order, however many there are.
    let expected: Vec<i64> = (1..=versions.len() as i64).collect();
    assert!(versions.len() >= 5, "{versions:?}");
    assert_eq!(versions, expected);
    super::tenants_and_principals(&a).await;
}

#[tokio::test]
async fn listener_recovers_from_a_lost_connection() {
    let Some(url) = server_url() else { return };
    let options = fresh_database(&url).await;
    let a = PgStore::connect_with(options.clone()).await.unwrap();
    let b = PgStore::connect_with(options.clone()).await.unwrap();
    let mut on_a = a.revocation_watch();

    // The server drops both listeners' connections (a failover or an idle-session reaper
    // would look the same); b's append may be announced while a is not listening.
    let mut admin = PgConnection::connect_with(&options).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 2);
    let appended = b.append_revocation(&token_event("j1")).await.unwrap();
    wait_for(&mut on_a, appended.seq).await;

    // And it listens again: a later append arrives as a notification.
    let later = b.append_revocation(&token_event("j2")).await.unwrap();
    wait_for(&mut on_a, later.seq).await;
}

#[tokio::test]
async fn search_path_in_the_url_selects_the_schema() {
    let Some(url) = server_url() else { return };
    let options = fresh_database(&url).await;
    let database = options.get_database().unwrap().to_owned();
    let mut admin = PgConnection::connect_with(&options).await.unwrap();
    sqlx::raw_sql("CREATE SCHEMA warden_a")
        .execute(&mut admin)
        .await
        .unwrap();
    let base = url_with_database(&url, &database);
    let sep = if base.contains('?') { '&' } else { '?' };
    let store = connect_url(&format!("{base}{sep}options=-c%20search_path%3Dwarden_a"))
        .await
        .unwrap();
    super::tenants_and_principals(store.as_ref()).await;
    let placed: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT to_regclass('warden_a.tenants')::text, to_regclass('public.tenants')::text",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(placed, (Some("warden_a.tenants".into()), None));
}
