//! Hot reload: a changed file takes effect, a broken one does not, and the last good set
//! keeps deciding.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_policy::{Effect, PolicyStore};

use crate::{policy_dir, request};

const PERMIT_ALL: &str = "@id(\"all\") permit (principal, action, resource);";
const FORBID_WRITES: &str = "@id(\"no_writes\") forbid (principal, action in \
    [Warden::Action::\"POST\", Warden::Action::\"PUT\", Warden::Action::\"PATCH\", \
    Warden::Action::\"DELETE\"], resource);";

#[test]
fn reload_picks_up_a_change_and_survives_a_broken_file() {
    let dir = policy_dir(&[("base.cedar", PERMIT_ALL)]);
    let store = PolicyStore::open(dir.path().to_path_buf()).unwrap();
    let post = warden_policy::PolicyRequest {
        method: "POST",
        ..request(&[])
    };
    assert_eq!(store.current().decide(&post).effect, Effect::Allow);
    assert!(!store.reload().unwrap(), "nothing changed yet");

    // A decision in flight keeps the set it started with.
    let before = store.current();
    fs::write(dir.path().join("writes.cedar"), FORBID_WRITES).unwrap();
    assert!(store.reload().unwrap());
    let decision = store.current().decide(&post);
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(decision.policy_ids, ["writes.no_writes"]);
    assert_eq!(before.decide(&post).effect, Effect::Allow);
    assert_eq!(store.current().len(), 2);

    // A broken file is refused and the last good set stays in effect.
    fs::write(
        dir.path().join("base.cedar"),
        "permit (principal, action, resource",
    )
    .unwrap();
    let err = store.reload().unwrap_err();
    assert!(err.to_string().contains("`base.cedar`"), "{err}");
    let decision = store.current().decide(&post);
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(decision.policy_ids, ["writes.no_writes"]);
    assert_eq!(store.current().decide(&request(&[])).effect, Effect::Allow);

    // So is a file that parses but does not match the schema.
    fs::write(
        dir.path().join("base.cedar"),
        "permit (principal, action, resource) when { context.weekday == \"monday\" };",
    )
    .unwrap();
    assert!(store.reload().is_err());
    assert_eq!(store.current().len(), 2);

    // Fixing it takes effect; removing a file does too.
    fs::write(dir.path().join("base.cedar"), PERMIT_ALL).unwrap();
    assert!(!store.reload().unwrap(), "back to the set in effect");
    fs::remove_file(dir.path().join("writes.cedar")).unwrap();
    assert!(store.reload().unwrap());
    assert_eq!(store.current().decide(&post).effect, Effect::Allow);
}

#[test]
fn open_refuses_a_bad_initial_set() {
    let dir = policy_dir(&[(
        "bad.cedar",
        "permit (principal, action, resource) when { 1 };",
    )]);
    let err = PolicyStore::open(dir.path().to_path_buf()).unwrap_err();
    assert!(err.to_string().contains("`bad.cedar`"), "{err}");
}

#[test]
fn the_watcher_reloads_on_change_and_stops_with_the_store() {
    let dir = policy_dir(&[("base.cedar", PERMIT_ALL)]);
    let store = PolicyStore::open(dir.path().to_path_buf()).unwrap();
    let watcher = store.spawn_watcher(Duration::from_millis(10));
    let post = warden_policy::PolicyRequest {
        method: "POST",
        ..request(&[])
    };

    fs::write(dir.path().join("writes.cedar"), FORBID_WRITES).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.current().decide(&post).effect != Effect::Deny {
        assert!(Instant::now() < deadline, "the watcher did not reload");
        std::thread::sleep(Duration::from_millis(5));
    }

    // A broken edit leaves the set alone.
    fs::write(dir.path().join("writes.cedar"), "forbid (").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(store.current().decide(&post).effect, Effect::Deny);

    // Each poll upgrades its weak reference for a moment; between polls it holds none.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&store) != 1 {
        assert!(
            Instant::now() < deadline,
            "the watcher holds a strong reference"
        );
        std::thread::yield_now();
    }
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !watcher.is_finished() {
        assert!(Instant::now() < deadline, "the watcher outlived its store");
        std::thread::sleep(Duration::from_millis(5));
    }
    watcher.join().unwrap();
}
