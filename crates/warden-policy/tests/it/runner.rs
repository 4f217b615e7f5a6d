//! The policy test runner: failures are reported, malformed files are errors naming them.

use warden_policy::{run_tests, PolicyError};

use crate::policy_dir;

const POLICIES: &str =
    "@id(\"reads\") permit (principal, action == Warden::Action::\"GET\", resource);";

fn case(name: &str, action: &str, expect: &str, policies: &str) -> String {
    format!(
        r#"{{
          "name": "{name}",
          "principal": {{"id": "agt_1", "kind": "agent", "tenant": "tnt_a"}},
          "action": "{action}",
          "resource": {{"route": "/crm/", "path": "/crm/x"}},
          "context": {{"client_ip": "10.0.0.1", "time": 1750071600, "scopes": []}},
          "expect": "{expect}"{policies}
        }}"#
    )
}

#[test]
fn a_failing_case_makes_the_report_fail() {
    let cases = format!(
        "[{}, {}, {}, {}]",
        case(
            "get is allowed",
            "GET",
            "allow",
            r#", "policies": ["p.reads"]"#
        ),
        case("post is denied", "POST", "deny", r#", "policies": []"#),
        case("wrong expectation", "POST", "allow", ""),
        case(
            "wrong policies",
            "GET",
            "allow",
            r#", "policies": ["p.other"]"#
        ),
    );
    let dir = policy_dir(&[("p.cedar", POLICIES), ("tests/cases.json", &cases)]);
    let report = run_tests(dir.path()).unwrap();
    assert!(!report.is_success());
    assert_eq!((report.passed, report.failed), (2, 2), "{report}");
    let failures: Vec<_> = report.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(failures, ["wrong expectation", "wrong policies"]);
    let text = report.to_string();
    assert!(
        text.contains("FAIL cases.json: wrong expectation: expected allow, got deny"),
        "{text}"
    );
    assert!(
        text.contains("expected determining policies [p.other], got [p.reads]"),
        "{text}"
    );
    assert!(text.ends_with("2 passed, 2 failed"), "{text}");
}

#[test]
fn malformed_test_files_are_errors_naming_the_file() {
    let misspelled =
        format!("[{}]", case("x", "GET", "allow", "")).replace("\"expect\"", "\"expected\"");
    let bad_kind = format!("[{}]", case("x", "GET", "allow", "")).replace("\"agent\"", "\"robot\"");
    for (contents, needle) in [
        ("{ not json", "bad.json"),
        (misspelled.as_str(), "unknown field `expected`"),
        (bad_kind.as_str(), "principal kind `robot`"),
        ("{}", "bad.json"),
    ] {
        let dir = policy_dir(&[("p.cedar", POLICIES), ("tests/bad.json", contents)]);
        let err = run_tests(dir.path()).unwrap_err();
        assert!(matches!(err, PolicyError::TestFile { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("`bad.json`") && message.contains(needle),
            "{message}"
        );
    }
}

#[test]
fn policies_that_do_not_load_are_an_error() {
    let dir = policy_dir(&[(
        "p.cedar",
        "permit (principal, action, resource) when { nope };",
    )]);
    assert!(run_tests(dir.path()).is_err());
}

#[test]
fn no_tests_dir_is_an_empty_success() {
    let dir = policy_dir(&[("p.cedar", POLICIES)]);
    let report = run_tests(dir.path()).unwrap();
    assert!(report.is_success());
    assert!(report.cases.is_empty());
}
