//! An immutable, validated policy set and the decisions it makes.
//!
//! This module owns loading (`*.cedar` files → parsed → renamed `<file stem>.<id>` →
//! validated against the Warden schema in strict mode) and deciding. Nothing half-loaded
//! ever exists: a set is built whole or refused with the file, line and reason. Deciding
//! does no I/O and cannot fail; anything that stops Cedar from evaluating a request is a
//! deny with the reason attached, never an allow.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy as cedar;
use cedar_policy::{Authorizer, PolicyId, ValidationMode, Validator};
use miette::Diagnostic;
use serde::{Deserialize, Serialize};

use crate::error::{Location, PolicyError};
use crate::request::{self, PolicyRequest};
use crate::schema::{self, Names};
use crate::slices::Slices;

/// Largest policy file accepted, in bytes. Policies are small text; anything bigger is a
/// mistake (a log file dropped in the directory), not a policy.
pub const MAX_POLICY_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The annotation that names a policy: `@id("cross_tenant")`.
const ID_ANNOTATION: &str = "id";
/// The prefix of the ids Cedar gives, in source order, to policies it parses from one text.
const CEDAR_DEFAULT_ID_PREFIX: &str = "policy";

/// What a decision does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        })
    }
}

/// A decision and why it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub effect: Effect,
    /// The determining policies, sorted: the satisfied `forbid`s of a deny, or the satisfied
    /// `permit`s of an allow. Empty for a deny that no policy permitted.
    pub policy_ids: Vec<String>,
    /// Why policies could not be evaluated (they are then skipped, so a failing `forbid`
    /// does not deny), or why the request could not be built at all (then it is denied).
    pub errors: Vec<String>,
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        self.effect == Effect::Allow
    }

    fn refused(reason: String) -> Self {
        Self {
            effect: Effect::Deny,
            policy_ids: Vec::new(),
            errors: vec![reason],
        }
    }
}

/// One policy file's name and text, kept to tell whether a reload changed anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub name: String,
    pub text: String,
}

/// An immutable set of policies, every one validated against the Warden schema.
pub struct PolicySet {
    slices: Slices,
    /// Whether any policy can see `context.time` itself rather than only `hour`/`weekday`.
    observes_time: bool,
    /// The whole set, unsliced: the reference the slices are tested against.
    #[cfg(test)]
    whole: cedar::PolicySet,
    authorizer: Authorizer,
    names: Names,
    /// Sorted.
    ids: Vec<String>,
    sources: Vec<Source>,
}

impl PolicySet {
    /// Loads every `*.cedar` file directly in `dir` (not recursively; hidden files skipped).
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PolicyError::Io { path, source }
        };
        let files = policy_files(dir).map_err(io_error(dir))?;
        let mut sources = Vec::with_capacity(files.len());
        for path in files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = read_limited(&path, &name, MAX_POLICY_FILE_BYTES)?;
            sources.push(Source { name, text });
        }
        Self::from_sources(sources)
    }

    /// Parses policies from one text. `origin` names it in errors, and its file stem
    /// prefixes the policy ids (`tenant_isolation.cedar` → `tenant_isolation.…`).
    pub fn from_str(src: &str, origin: &str) -> Result<Self, PolicyError> {
        let size = u64::try_from(src.len()).unwrap_or(u64::MAX);
        if size > MAX_POLICY_FILE_BYTES {
            return Err(PolicyError::TooLarge {
                file: origin.to_owned(),
                size,
                limit: MAX_POLICY_FILE_BYTES,
            });
        }
        Self::from_sources(vec![Source {
            name: origin.to_owned(),
            text: src.to_owned(),
        }])
    }

    pub(crate) fn from_sources(sources: Vec<Source>) -> Result<Self, PolicyError> {
        let validator = Validator::new(schema::schema()?);
        let names = Names::new()?;
        let mut policies = cedar::PolicySet::new();
        for source in &sources {
            for policy in load_file(&validator, source)? {
                let id = policy.id().to_string();
                policies.add(policy).map_err(|_| PolicyError::DuplicateId {
                    file: source.name.clone(),
                    id,
                })?;
            }
        }
        let mut ids: Vec<String> = policies.policies().map(|p| p.id().to_string()).collect();
        ids.sort();
        if ids.is_empty() {
            tracing::warn!(
                files = sources.len(),
                "policy set is empty: every request will be denied"
            );
        }
        // Conservative: any mention of `time` in a policy's JSON form counts.
        let observes_time = policies.policies().any(|p| {
            p.to_json()
                .map_or(true, |j| j.to_string().contains("\"time\""))
        });
        Ok(Self {
            observes_time,
            slices: Slices::new(&policies),
            #[cfg(test)]
            whole: policies.clone(),
            authorizer: Authorizer::new(),
            names,
            ids,
            sources,
        })
    }

    /// Decides one request. Deny unless some `permit` is satisfied and no `forbid` is.
    pub fn decide(&self, req: &PolicyRequest<'_>) -> Decision {
        let (request, entities) = match request::to_cedar(&self.names, req) {
            Ok(built) => built,
            Err(reason) => return Decision::refused(reason),
        };
        // Each slice answers as Cedar does: a deny's reasons are its satisfied forbids, an
        // allow's its satisfied permits (see `slices` for why combining them is exact).
        let mut forbids = Vec::new();
        let mut permits = Vec::new();
        let mut errors = Vec::new();
        for set in self.slices.relevant(req.route, req.principal, req.tenant) {
            let response = self.authorizer.is_authorized(&request, set, &entities);
            let diagnostics = response.diagnostics();
            let reasons = diagnostics.reason().map(ToString::to_string);
            match response.decision() {
                cedar::Decision::Allow => permits.extend(reasons),
                cedar::Decision::Deny => forbids.extend(reasons),
            }
            errors.extend(diagnostics.errors().map(ToString::to_string));
        }
        let (effect, mut policy_ids) = if !forbids.is_empty() {
            (Effect::Deny, forbids)
        } else if !permits.is_empty() {
            (Effect::Allow, permits)
        } else {
            (Effect::Deny, Vec::new())
        };
        policy_ids.sort();
        Decision {
            effect,
            policy_ids,
            errors,
        }
    }

    /// The coarsest time a cached decision may be keyed by: the request time itself when a
    /// policy reads `context.time`, else the hour (all that `hour` and `weekday` depend on).
    /// Two requests equal in every other field and in this bucket get the same decision.
    pub fn time_bucket(&self, time: i64) -> i64 {
        if self.observes_time {
            time
        } else {
            time.div_euclid(3600)
        }
    }

    /// How many policies the set holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The policy ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }

    /// Whether both sets were built from the same files with the same contents.
    pub(crate) fn same_sources(&self, other: &Self) -> bool {
        self.sources == other.sources
    }
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet").field("ids", &self.ids).finish()
    }
}

/// The `*.cedar` files directly in `dir`, sorted by name. Hidden files are skipped: editors
/// leave swap files there, and Kubernetes mounts a ConfigMap's data under `..data`.
/// Symlinks are followed, since that is how a ConfigMap's files appear.
pub(crate) fn policy_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    files_with_extension(dir, "cedar")
}

pub(crate) fn files_with_extension(dir: &Path, extension: &str) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_none_or(|n| n.to_string_lossy().starts_with('.'));
        if hidden || path.extension().is_none_or(|e| e != extension) {
            continue;
        }
        if fs::metadata(&path)?.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a UTF-8 file of at most `limit` bytes.
pub(crate) fn read_limited(path: &Path, name: &str, limit: u64) -> Result<String, PolicyError> {
    let io_error = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = fs::metadata(path).map_err(io_error)?.len();
    if size > limit {
        return Err(PolicyError::TooLarge {
            file: name.to_owned(),
            size,
            limit,
        });
    }
    fs::read_to_string(path).map_err(io_error)
}

/// Parses, renames and validates one file's policies.
fn load_file(validator: &Validator, source: &Source) -> Result<Vec<cedar::Policy>, PolicyError> {
    let file = source.name.as_str();
    let parsed = cedar::PolicySet::from_str(&source.text).map_err(|errors| {
        let first = errors.iter().next();
        PolicyError::Parse {
            at: Location::at_offset(file, &source.text, first.and_then(first_offset)),
            reason: describe(first.map(|e| e as &dyn Diagnostic), errors.iter().count()),
        }
    })?;
    if parsed.num_of_templates() > 0 {
        return Err(PolicyError::Unsupported {
            file: file.to_owned(),
            reason: "policy templates (`?principal`, `?resource`) are not supported".to_owned(),
        });
    }

    let stem = Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Cedar iterates a set in no particular order; sort by source position so ids made from
    // the index, and errors about duplicates, are stable.
    let mut numbered: Vec<(usize, &cedar::Policy)> = parsed
        .policies()
        .map(|p| (source_index(p.id()), p))
        .collect();
    numbered.sort_by_key(|(index, _)| *index);

    let mut seen = HashSet::with_capacity(numbered.len());
    let mut renamed = cedar::PolicySet::new();
    let mut ordered = Vec::with_capacity(numbered.len());
    for (index, policy) in numbered {
        let local = match policy.annotation(ID_ANNOTATION) {
            Some("") => {
                return Err(PolicyError::Unsupported {
                    file: file.to_owned(),
                    reason: format!("policy {index} has an empty `@id`"),
                })
            }
            Some(id) => id.to_owned(),
            None => index.to_string(),
        };
        let id = format!("{stem}.{local}");
        if !seen.insert(id.clone()) {
            return Err(PolicyError::DuplicateId {
                file: file.to_owned(),
                id,
            });
        }
        let policy = policy.new_id(PolicyId::new(&id));
        renamed
            .add(policy.clone())
            .map_err(|_| PolicyError::DuplicateId {
                file: file.to_owned(),
                id,
            })?;
        ordered.push(policy);
    }

    let result = validator.validate(&renamed, ValidationMode::Strict);
    if let Some(first) = result.validation_errors().next() {
        return Err(PolicyError::Validation {
            at: Location::at_offset(file, &source.text, first_offset(first)),
            policy: first.policy_id().to_string(),
            reason: describe(Some(first), result.validation_errors().count()),
        });
    }
    for warning in result.validation_warnings() {
        tracing::warn!(file, policy = %warning.policy_id(), "policy warning: {warning}");
    }
    Ok(ordered)
}

/// The position of a policy in its file, from the id Cedar gave it (`policy0`, `policy1`, …
/// in source order, as `PolicySet::from_str` documents).
fn source_index(id: &PolicyId) -> usize {
    let id: &str = id.as_ref();
    id.strip_prefix(CEDAR_DEFAULT_ID_PREFIX)
        .and_then(|n| n.parse().ok())
        // INVARIANT: Cedar names every policy it parses this way; were that to change, ids
        // made from indexes would still be unique, only no longer positional.
        .unwrap_or(usize::MAX)
}

/// The byte offset of a diagnostic's first labelled span, if it has one.
fn first_offset(diagnostic: &(impl Diagnostic + ?Sized)) -> Option<usize> {
    diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset())
}

/// A diagnostic's message and help, and how many more errors there were.
fn describe(diagnostic: Option<&dyn Diagnostic>, count: usize) -> String {
    let mut reason = diagnostic.map_or_else(|| "invalid policy".to_owned(), ToString::to_string);
    if let Some(help) = diagnostic.and_then(Diagnostic::help) {
        reason.push_str(&format!(" ({help})"));
    }
    if count > 1 {
        reason.push_str(&format!(" (and {} more)", count - 1));
    }
    reason
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]

    use super::*;

    fn request<'a>(scopes: &'a [&'a str]) -> PolicyRequest<'a> {
        PolicyRequest {
            tenant: "tnt_a",
            principal: "agt_1",
            principal_kind: "agent",
            owner: Some("usr_o"),
            actor: None,
            method: "GET",
            route: "/crm/",
            route_tenant: Some("tnt_a"),
            path: "/crm/contacts",
            client_ip: "10.0.0.1".parse().unwrap(),
            time: 1_750_000_000,
            scopes,
            delegation_depth: 0,
        }
    }

    #[test]
    fn ids_come_from_annotations_or_positions() {
        let set = PolicySet::from_str(
            "permit (principal, action, resource);\n\
             @id(\"named\") forbid (principal, action, resource) when { context.hour == 99 };\n\
             permit (principal, action, resource) when { context.weekday == 9 };",
            "dir/base.cedar",
        )
        .unwrap();
        assert_eq!(
            set.ids().collect::<Vec<_>>(),
            ["base.0", "base.2", "base.named"]
        );
        assert_eq!(set.len(), 3);
        let decision = set.decide(&request(&[]));
        assert_eq!(decision.effect, Effect::Allow);
        assert_eq!(decision.policy_ids, ["base.0"]);
        assert!(decision.errors.is_empty());
    }

    #[test]
    fn empty_set_denies() {
        let set = PolicySet::from_str("// nothing yet\n", "empty.cedar").unwrap();
        assert!(set.is_empty());
        let decision = set.decide(&request(&[]));
        assert_eq!(decision.effect, Effect::Deny);
        assert!(decision.policy_ids.is_empty());
    }

    #[test]
    fn forbid_overrides_permit_and_is_reported() {
        let set = PolicySet::from_str(
            "@id(\"all\") permit (principal, action, resource);\n\
             @id(\"no_admin\") forbid (principal, action, resource)\n\
               when { context.scopes.contains(\"admin\") };",
            "p.cedar",
        )
        .unwrap();
        let decision = set.decide(&request(&["admin"]));
        assert_eq!(decision.effect, Effect::Deny);
        assert_eq!(decision.policy_ids, ["p.no_admin"]);
        assert!(set.decide(&request(&["read"])).is_allow());
    }

    #[test]
    fn parse_error_names_file_and_line() {
        let err = PolicySet::from_str(
            "permit (principal, action, resource);\n\npermit (principal, action resource);",
            "broken.cedar",
        )
        .unwrap_err();
        let PolicyError::Parse { at, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(at.file, "broken.cedar");
        assert_eq!(at.line_column.map(|(line, _)| line), Some(3), "{err}");
        assert!(err.to_string().starts_with("`broken.cedar`:3:"), "{err}");
    }

    #[test]
    fn schema_violation_is_refused_with_file_line_and_policy() {
        let err = PolicySet::from_str(
            "@id(\"ok\") permit (principal, action, resource);\n\
             @id(\"typo\") permit (principal, action, resource)\n  when { principal.knid == \"agent\" };",
            "typo.cedar",
        )
        .unwrap_err();
        let PolicyError::Validation { at, policy, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(at.file, "typo.cedar");
        assert_eq!(policy, "typo.typo");
        assert_eq!(at.line_column.map(|(line, _)| line), Some(3), "{err}");
    }

    #[test]
    fn unknown_entity_type_and_action_are_refused() {
        for src in [
            "permit (principal == User::\"x\", action, resource);",
            "permit (principal, action == Warden::Action::\"TRACE\", resource);",
            "permit (principal, action, resource) when { context.nope };",
        ] {
            let err = PolicySet::from_str(src, "bad.cedar").unwrap_err();
            assert!(
                matches!(err, PolicyError::Validation { .. }),
                "{src}: {err}"
            );
        }
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let err = PolicySet::from_str(
            "@id(\"x\") permit (principal, action, resource);\n\
             @id(\"x\") forbid (principal, action, resource);",
            "dup.cedar",
        )
        .unwrap_err();
        assert!(
            matches!(&err, PolicyError::DuplicateId { file, id } if file == "dup.cedar" && id == "dup.x"),
            "{err}"
        );
        // An `@id` that collides with another policy's position is a duplicate too.
        let err = PolicySet::from_str(
            "permit (principal, action, resource);\n\
             @id(\"0\") forbid (principal, action, resource);",
            "dup.cedar",
        )
        .unwrap_err();
        assert!(matches!(err, PolicyError::DuplicateId { .. }), "{err}");
    }

    #[test]
    fn templates_and_empty_ids_are_refused() {
        let err = PolicySet::from_str(
            "permit (principal == ?principal, action, resource);",
            "t.cedar",
        )
        .unwrap_err();
        assert!(matches!(err, PolicyError::Unsupported { .. }), "{err}");
        let err = PolicySet::from_str("@id(\"\") permit (principal, action, resource);", "t.cedar")
            .unwrap_err();
        assert!(matches!(err, PolicyError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn unknown_method_denies_with_reason() {
        let set =
            PolicySet::from_str("permit (principal, action, resource);", "all.cedar").unwrap();
        let decision = set.decide(&PolicyRequest {
            method: "TRACE",
            ..request(&[])
        });
        assert_eq!(decision.effect, Effect::Deny);
        assert!(decision.errors[0].contains("TRACE"), "{decision:?}");
    }

    #[test]
    fn context_and_entities_reach_policies() {
        let set = PolicySet::from_str(
            r#"
            @id("ip") permit (principal, action, resource)
              when { context.client_ip.isInRange(ip("10.0.0.0/8")) };
            @id("owner") permit (principal, action, resource)
              when { principal has owner && principal.owner.kind == "user" };
            @id("member") permit (principal, action == Warden::Action::"GET", resource)
              when { resource has tenant && principal in resource.tenant };
            @id("actor") permit (principal, action, resource)
              when { context has actor && context.actor.kind == "agent" && context.delegation_depth == 2 };
            @id("route") permit (principal, action, resource)
              when { resource.route == "/crm/" && resource.path like "/crm/*" };
            @id("clock") permit (principal, action, resource)
              when { context.hour == 15 && context.weekday == 6 && context.time > 0 };
            "#,
            "ctx.cedar",
        )
        .unwrap();
        let decision = set.decide(&PolicyRequest {
            client_ip: "::ffff:10.9.9.9".parse().unwrap(),
            actor: Some("agt_9"),
            delegation_depth: 2,
            ..request(&[])
        });
        assert_eq!(
            decision.policy_ids,
            [
                "ctx.actor",
                "ctx.clock",
                "ctx.ip",
                "ctx.member",
                "ctx.owner",
                "ctx.route"
            ],
            "{decision:?}"
        );
        assert!(decision.errors.is_empty(), "{decision:?}");

        let decision = set.decide(&PolicyRequest {
            client_ip: "192.168.0.1".parse().unwrap(),
            owner: None,
            route_tenant: Some("tnt_other"),
            route: "/billing/",
            time: 1_750_032_000,
            ..request(&[])
        });
        assert_eq!(decision.effect, Effect::Deny, "{decision:?}");
    }
}

#[cfg(test)]
mod slicing_tests {
    use super::*;
    use std::net::IpAddr;

    /// Policies of every bucket kind, over a few routes, principals and tenants.
    fn mixed() -> String {
        let mut src = String::new();
        for i in 0..40 {
            let route = format!("/r{}/", i % 7);
            src.push_str(&match i % 5 {
                0 => format!("@id(\"p{i}\") permit (principal == Warden::Principal::\"agt_{}\", action, resource) when {{ context.hour > {} }};\n", i % 3, i % 24),
                1 => format!("@id(\"p{i}\") forbid (principal, action, resource) when {{ resource.route == \"{route}\" && context.hour < {} }};\n", i % 24),
                2 => format!("@id(\"p{i}\") forbid (principal in Warden::Tenant::\"tnt_{}\", action == Warden::Action::\"POST\", resource);\n", i % 2),
                3 => format!("@id(\"p{i}\") permit (principal, action, resource) when {{ \"{route}\" == resource.route }};\n"),
                _ => format!("@id(\"p{i}\") permit (principal, action, resource) when {{ context.delegation_depth == {} || resource.route == \"{route}\" }};\n", i % 3),
            });
        }
        src
    }

    #[test]
    fn slicing_decides_exactly_as_the_whole_set() {
        let set =
            PolicySet::from_str(&mixed(), "mixed.cedar").unwrap_or_else(|e| unreachable!("{e}"));
        let authorizer = Authorizer::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap_or_else(|_| unreachable!());
        let mut checked = 0;
        for route in ["/r0/", "/r3/", "/r6/", "/none/"] {
            for principal in ["agt_0", "agt_1", "agt_2"] {
                for tenant in ["tnt_0", "tnt_1"] {
                    for method in ["GET", "POST"] {
                        for hour in [0i64, 9, 23] {
                            for depth in [0u32, 1, 2] {
                                let req = PolicyRequest {
                                    tenant,
                                    principal,
                                    principal_kind: "agent",
                                    owner: None,
                                    actor: None,
                                    method,
                                    route,
                                    route_tenant: None,
                                    path: route,
                                    client_ip: ip,
                                    time: 1_900_000_000 - (1_900_000_000 % 86_400) + hour * 3600,
                                    scopes: &[],
                                    delegation_depth: depth,
                                };
                                let sliced = set.decide(&req);
                                let (request, entities) = request::to_cedar(&set.names, &req)
                                    .unwrap_or_else(|e| unreachable!("{e}"));
                                let whole =
                                    authorizer.is_authorized(&request, &set.whole, &entities);
                                let mut ids: Vec<String> = whole
                                    .diagnostics()
                                    .reason()
                                    .map(ToString::to_string)
                                    .collect();
                                ids.sort();
                                let effect = match whole.decision() {
                                    cedar::Decision::Allow => Effect::Allow,
                                    cedar::Decision::Deny => Effect::Deny,
                                };
                                assert_eq!(
                                    (sliced.effect, &sliced.policy_ids),
                                    (effect, &ids),
                                    "{route} {principal} {tenant} {method} {hour} {depth}"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 432);
    }
}
