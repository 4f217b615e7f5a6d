//! Policy tests: example requests with the decision a policy author expects, kept as JSON
//! next to the policies and run by `warden policy test DIR`.
//!
//! This module owns the test file format and the report. A case runs through exactly the
//! path a gateway request takes ([`PolicySet::decide`] on a [`PolicyRequest`]), so a passing
//! test means the same decision in production. Test files are parsed strictly: an unknown
//! or misspelled field is an error naming the file, never a silently ignored expectation.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::request::PolicyRequest;
use crate::set::{files_with_extension, read_limited, Decision, Effect, PolicySet};
use crate::PolicyError;

/// Largest test file accepted, in bytes.
pub const MAX_TEST_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The principal kinds a test case may name.
const KINDS: [&str; 3] = ["agent", "service", "user"];

/// One test case, as written in a `tests/*.json` array.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub principal: TestPrincipal,
    /// The innermost actor of the `act` chain, if the call is delegated.
    #[serde(default)]
    pub actor: Option<String>,
    /// The HTTP method.
    pub action: String,
    pub resource: TestResource,
    pub context: TestContext,
    pub expect: Effect,
    /// If present, exactly the policies expected to determine the decision (any order).
    #[serde(default)]
    pub policies: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestPrincipal {
    pub id: String,
    /// `agent`, `service` or `user`.
    pub kind: String,
    pub tenant: String,
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestResource {
    pub route: String,
    pub path: String,
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestContext {
    pub client_ip: IpAddr,
    /// Unix seconds.
    pub time: i64,
    pub scopes: Vec<String>,
    /// Defaults to 1 when the case has an actor, else 0.
    #[serde(default)]
    pub delegation_depth: Option<u32>,
}

impl TestCase {
    /// Runs the case against `set`.
    pub fn run(&self, set: &PolicySet) -> Decision {
        let scopes: Vec<&str> = self.context.scopes.iter().map(String::as_str).collect();
        let depth = self
            .context
            .delegation_depth
            .unwrap_or(u32::from(self.actor.is_some()));
        set.decide(&PolicyRequest {
            tenant: &self.principal.tenant,
            principal: &self.principal.id,
            principal_kind: &self.principal.kind,
            owner: self.principal.owner.as_deref(),
            actor: self.actor.as_deref(),
            method: &self.action,
            route: &self.resource.route,
            route_tenant: self.resource.tenant.as_deref(),
            path: &self.resource.path,
            client_ip: self.context.client_ip,
            time: self.context.time,
            scopes: &scopes,
            delegation_depth: depth,
        })
    }

    /// Why the decision does not meet the expectation, or `None` when it does.
    fn mismatch(&self, decision: &Decision) -> Option<String> {
        if decision.effect != self.expect {
            return Some(format!("expected {}, got {}", self.expect, decision.effect));
        }
        let expected = self.policies.as_ref()?;
        let mut expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        expected.sort_unstable();
        expected.dedup();
        if expected != decision.policy_ids {
            return Some(format!(
                "expected determining policies [{}], got [{}]",
                expected.join(", "),
                decision.policy_ids.join(", ")
            ));
        }
        None
    }
}

/// How one case went.
#[derive(Debug, Clone, Serialize)]
pub struct CaseOutcome {
    /// The test file's name, e.g. `examples.json`.
    pub file: String,
    pub name: String,
    pub passed: bool,
    pub expected: Effect,
    pub decision: Decision,
    /// The decision and its determining policies; for a failure, what did not match first.
    pub reason: String,
}

/// Every case of every test file, in file order, with the counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TestReport {
    pub cases: Vec<CaseOutcome>,
    pub passed: usize,
    pub failed: usize,
}

impl TestReport {
    /// True when no case failed. A directory without tests succeeds with no cases; the
    /// caller decides whether that is acceptable.
    pub fn is_success(&self) -> bool {
        self.failed == 0
    }

    pub fn failures(&self) -> impl Iterator<Item = &CaseOutcome> {
        self.cases.iter().filter(|c| !c.passed)
    }

    fn push(&mut self, outcome: CaseOutcome) {
        if outcome.passed {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        self.cases.push(outcome);
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for case in &self.cases {
            let status = if case.passed { "ok  " } else { "FAIL" };
            writeln!(f, "{status} {}: {}: {}", case.file, case.name, case.reason)?;
        }
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// Loads the policies in `dir`, then runs every case of every `dir/tests/*.json` file.
///
/// Errors are for what cannot be run at all (policies that do not load, a malformed test
/// file); a case whose decision differs from its expectation is a failure in the report.
pub fn run_tests(dir: &Path) -> Result<TestReport, PolicyError> {
    let set = PolicySet::load_dir(dir)?;
    let tests_dir = dir.join("tests");
    let files = if tests_dir.is_dir() {
        files_with_extension(&tests_dir, "json").map_err(|source| PolicyError::Io {
            path: tests_dir.clone(),
            source,
        })?
    } else {
        Vec::new()
    };
    let mut report = TestReport::default();
    for path in files {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for case in parse_test_file(&path, &file)? {
            let decision = case.run(&set);
            let summary = summarize(&decision);
            let (passed, reason) = match case.mismatch(&decision) {
                Some(why) => (false, format!("{why} ({summary})")),
                None => (true, summary),
            };
            report.push(CaseOutcome {
                file: file.clone(),
                name: case.name,
                passed,
                expected: case.expect,
                decision,
                reason,
            });
        }
    }
    Ok(report)
}

fn parse_test_file(path: &Path, file: &str) -> Result<Vec<TestCase>, PolicyError> {
    let text = read_limited(path, file, MAX_TEST_FILE_BYTES)?;
    let malformed = |reason: String| PolicyError::TestFile {
        file: file.to_owned(),
        reason,
    };
    let cases: Vec<TestCase> = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    for case in &cases {
        if !KINDS.contains(&case.principal.kind.as_str()) {
            return Err(malformed(format!(
                "case `{}`: principal kind `{}` is not one of agent, service, user",
                case.name, case.principal.kind
            )));
        }
    }
    Ok(cases)
}

/// `allow by [default.scope_checked]`, `deny by [a, b]`, `deny (no policy permits)`,
/// followed by any evaluation errors.
fn summarize(decision: &Decision) -> String {
    let mut s = if decision.policy_ids.is_empty() {
        format!("{} (no policy permits)", decision.effect)
    } else {
        format!(
            "{} by [{}]",
            decision.effect,
            decision.policy_ids.join(", ")
        )
    };
    if !decision.errors.is_empty() {
        s.push_str(&format!("; errors: {}", decision.errors.join("; ")));
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    const CASE: &str = r#"{
        "name": "reads",
        "principal": {"id": "agt_1", "kind": "agent", "tenant": "tnt_a"},
        "action": "GET",
        "resource": {"route": "/crm/", "path": "/crm/x"},
        "context": {"client_ip": "127.0.0.1", "time": 0, "scopes": []},
        "expect": "allow"
    }"#;

    #[test]
    fn unknown_fields_are_refused() {
        serde_json::from_str::<TestCase>(CASE).unwrap();
        let typo = CASE.replace("\"expect\"", "\"expected\"");
        assert!(serde_json::from_str::<TestCase>(&typo).is_err());
        let extra = CASE.replace("\"time\": 0", "\"time\": 0, \"hour\": 3");
        assert!(serde_json::from_str::<TestCase>(&extra).is_err());
        let bad_effect = CASE.replace("\"allow\"", "\"permit\"");
        assert!(serde_json::from_str::<TestCase>(&bad_effect).is_err());
    }

    #[test]
    fn mismatches_are_explained() {
        let mut case: TestCase = serde_json::from_str(CASE).unwrap();
        let allow = Decision {
            effect: Effect::Allow,
            policy_ids: vec!["a.x".into()],
            errors: vec![],
        };
        assert_eq!(case.mismatch(&allow), None);
        case.policies = Some(vec!["a.x".into()]);
        assert_eq!(case.mismatch(&allow), None);
        case.policies = Some(vec!["a.y".into()]);
        assert!(case.mismatch(&allow).unwrap().contains("[a.y], got [a.x]"));
        case.expect = Effect::Deny;
        assert_eq!(case.mismatch(&allow).unwrap(), "expected deny, got allow");
    }
}
