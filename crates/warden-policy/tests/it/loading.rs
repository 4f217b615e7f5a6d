//! Loading a policy directory: which files count, how ids are made, and how a bad file is
//! refused with its name.

use warden_policy::{Effect, PolicyError, PolicySet};

use crate::{policy_dir, request};

#[test]
fn only_visible_cedar_files_directly_in_the_dir_are_loaded() {
    let dir = policy_dir(&[
        (
            "base.cedar",
            "@id(\"all\") permit (principal, action, resource);",
        ),
        ("notes.txt", "not a policy"),
        (".base.cedar.swp", "garbage"),
        ("nested/deep.cedar", "forbid (principal, action, resource);"),
    ]);
    let set = PolicySet::load_dir(dir.path()).unwrap();
    assert_eq!(set.ids().collect::<Vec<_>>(), ["base.all"]);
    assert_eq!(set.decide(&request(&[])).effect, Effect::Allow);
}

#[test]
fn a_policy_failing_validation_is_refused_naming_the_file() {
    let dir = policy_dir(&[
        ("good.cedar", "permit (principal, action, resource);"),
        (
            "wrong.cedar",
            "// resources have no `owner`\n\
             @id(\"owners_only\")\n\
             permit (principal, action, resource)\n\
             when { resource.owner == principal };\n",
        ),
    ]);
    let err = PolicySet::load_dir(dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("`wrong.cedar`:4:"), "{message}");
    assert!(message.contains("wrong.owners_only"), "{message}");
    assert!(matches!(err, PolicyError::Validation { .. }), "{message}");
}

#[test]
fn a_parse_error_names_the_file_and_line() {
    let dir = policy_dir(&[(
        "broken.cedar",
        "permit (principal, action, resource);\npermit (",
    )]);
    let message = PolicySet::load_dir(dir.path()).unwrap_err().to_string();
    assert!(message.starts_with("`broken.cedar`:2:"), "{message}");
}

#[test]
fn a_missing_dir_is_an_io_error() {
    let dir = policy_dir(&[]);
    let err = PolicySet::load_dir(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, PolicyError::Io { .. }), "{err}");
}

#[test]
fn ids_are_unique_across_files() {
    let dir = policy_dir(&[
        (
            "a.cedar",
            "@id(\"x\") permit (principal, action, resource);",
        ),
        (
            "b.cedar",
            "@id(\"x\") permit (principal, action, resource);",
        ),
    ]);
    let set = PolicySet::load_dir(dir.path()).unwrap();
    assert_eq!(set.ids().collect::<Vec<_>>(), ["a.x", "b.x"]);
    assert_eq!(set.decide(&request(&[])).policy_ids, ["a.x", "b.x"]);
}
