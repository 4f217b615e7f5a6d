//! The scope algebra: grammar, coverage and segment-wise intersection.
//!
//! A scope is `segment(:segment)*`, the last segment being the action (`crm:contacts:read`).
//! A segment of `*` stands for exactly one segment. A granted scope *covers* a required one
//! when both have the same number of segments and each granted segment is `*` or equal to
//! the required one. Delegated power is the segment-wise intersection of the parties' sets.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest scope accepted, in bytes.
pub const MAX_SCOPE_LEN: usize = 200;
/// Most segments in one scope.
pub const MAX_SEGMENTS: usize = 8;
/// Most scopes in one set (a request, a ceiling, a token).
pub const MAX_SCOPES: usize = 64;

const WILDCARD: &str = "*";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error("scope `{0}` is empty or has an empty segment")]
    EmptySegment(String),
    #[error("scope `{0}` has a character outside [A-Za-z0-9_.-] in a segment")]
    BadCharacter(String),
    #[error("segment `{1}` of scope `{0}` mixes `*` with other characters")]
    PartialWildcard(String, String),
    #[error("scope `{0}` is longer than {MAX_SCOPE_LEN} bytes or {MAX_SEGMENTS} segments")]
    TooLong(String),
    #[error("more than {MAX_SCOPES} scopes")]
    TooMany,
}

/// One validated scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

impl Scope {
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        if s.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong(truncate(s)));
        }
        let mut count = 0;
        for seg in s.split(':') {
            count += 1;
            if seg.is_empty() {
                return Err(ScopeError::EmptySegment(s.to_owned()));
            }
            if seg == WILDCARD {
                continue;
            }
            if seg.contains('*') {
                return Err(ScopeError::PartialWildcard(s.to_owned(), seg.to_owned()));
            }
            if !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(ScopeError::BadCharacter(s.to_owned()));
            }
        }
        if count > MAX_SEGMENTS {
            return Err(ScopeError::TooLong(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> + Clone {
        self.0.split(':')
    }

    fn segment_count(&self) -> usize {
        self.segments().count()
    }

    /// Whether holding `self` allows what `required` names.
    pub fn covers(&self, required: &Scope) -> bool {
        self.segment_count() == required.segment_count()
            && self
                .segments()
                .zip(required.segments())
                .all(|(g, r)| g == WILDCARD || g == r)
    }

    /// The largest scope both `self` and `other` cover, if any.
    pub fn intersect(&self, other: &Scope) -> Option<Scope> {
        if self.segment_count() != other.segment_count() {
            return None;
        }
        let mut out = Vec::with_capacity(self.segment_count());
        for (a, b) in self.segments().zip(other.segments()) {
            out.push(match (a, b) {
                (WILDCARD, x) | (x, WILDCARD) => x,
                (x, y) if x == y => x,
                _ => return None,
            });
        }
        Some(Scope(out.join(":")))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect::<String>() + "…"
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, ScopeError> {
        Self::parse(s)
    }
}

/// A set of scopes, kept sorted and without duplicates or members covered by another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// Parses the space-separated form of RFC 6749 §3.3.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let mut scopes = Vec::new();
        for part in s.split(' ').filter(|p| !p.is_empty()) {
            if scopes.len() == MAX_SCOPES {
                return Err(ScopeError::TooMany);
            }
            scopes.push(Scope::parse(part)?);
        }
        Ok(Self::from_scopes(scopes))
    }

    pub fn from_scopes(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut all: Vec<Scope> = scopes.into_iter().collect();
        all.sort();
        all.dedup();
        let minimal = all
            .iter()
            .filter(|s| !all.iter().any(|o| o != *s && o.covers(s)))
            .cloned()
            .collect();
        Self(minimal)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn covers(&self, required: &Scope) -> bool {
        self.0.iter().any(|g| g.covers(required))
    }

    /// Whether every member of `other` is covered by this set.
    pub fn covers_all(&self, other: &ScopeSet) -> bool {
        other.0.iter().all(|r| self.covers(r))
    }

    /// The members of `requested` this set does not cover.
    pub fn uncovered<'a>(&self, requested: &'a ScopeSet) -> Vec<&'a Scope> {
        requested.0.iter().filter(|r| !self.covers(r)).collect()
    }

    /// Everything both sets allow.
    pub fn intersect(&self, other: &ScopeSet) -> ScopeSet {
        Self::from_scopes(
            self.0
                .iter()
                .flat_map(|a| other.0.iter().filter_map(move |b| a.intersect(b))),
        )
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(s.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, ScopeError> {
        Self::parse(s)
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(x: &str) -> Scope {
        Scope::parse(x).unwrap_or_else(|e| unreachable!("{e}"))
    }
    fn set(x: &str) -> ScopeSet {
        ScopeSet::parse(x).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn grammar() {
        for ok in [
            "email:send",
            "dns:zone_123:write",
            "crm:*:read",
            "a",
            "*",
            "a.b-c:d",
        ] {
            assert!(Scope::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ":",
            "a:",
            ":a",
            "a::b",
            "a:b*",
            "crm:co*:read",
            "a b",
            "é:x",
            "a/b",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert!(Scope::parse("a:b:c:d:e:f:g:h").is_ok());
        assert!(matches!(
            Scope::parse("a:b:c:d:e:f:g:h:i"),
            Err(ScopeError::TooLong(_))
        ));
        assert!(matches!(
            Scope::parse(&"x".repeat(201)),
            Err(ScopeError::TooLong(_))
        ));
    }

    #[test]
    fn coverage_is_segment_wise_and_length_exact() {
        assert!(s("crm:*:read").covers(&s("crm:contacts:read")));
        assert!(!s("crm:*:read").covers(&s("crm:contacts:write")));
        assert!(!s("crm:*").covers(&s("crm:contacts:read")));
        assert!(!s("crm:contacts:read").covers(&s("crm:*:read")));
        assert!(s("*:*:*").covers(&s("crm:*:read")));
    }

    #[test]
    fn intersection() {
        assert_eq!(
            s("crm:*:read").intersect(&s("*:contacts:*")),
            Some(s("crm:contacts:read"))
        );
        assert_eq!(s("crm:*:read").intersect(&s("crm:*:write")), None);
        assert_eq!(s("a:b").intersect(&s("a:b:c")), None);
        assert_eq!(
            set("crm:*:read email:send").intersect(&set("crm:contacts:* dns:x:write")),
            set("crm:contacts:read")
        );
    }

    #[test]
    fn sets_are_minimal_and_render_space_separated() {
        let x = set("crm:contacts:read  crm:*:read email:send email:send");
        assert_eq!(x.to_string(), "crm:*:read email:send");
        assert!(matches!(
            ScopeSet::parse(&vec!["a:b"; 65].join(" ")),
            Err(ScopeError::TooMany)
        ));
    }

    fn seg() -> impl Strategy<Value = String> {
        prop_oneof![Just("*".to_owned()), "[ab]", Just("c".to_owned())]
    }
    fn scope() -> impl Strategy<Value = Scope> {
        prop::collection::vec(seg(), 1..4).prop_map(|v| Scope(v.join(":")))
    }
    fn scope_set() -> impl Strategy<Value = ScopeSet> {
        prop::collection::vec(scope(), 0..5).prop_map(ScopeSet::from_scopes)
    }

    proptest! {
        #[test]
        fn intersection_is_covered_by_both(a in scope(), b in scope(), r in scope()) {
            if let Some(i) = a.intersect(&b) {
                prop_assert!(a.covers(&i) && b.covers(&i));
                // Anything the intersection covers, both parties cover.
                if i.covers(&r) { prop_assert!(a.covers(&r) && b.covers(&r)); }
            }
            // Anything both cover, the intersection covers.
            if a.covers(&r) && b.covers(&r) {
                prop_assert!(a.intersect(&b).is_some_and(|i| i.covers(&r)));
            }
        }

        #[test]
        fn set_intersection_never_widens(a in scope_set(), b in scope_set(), r in scope()) {
            let i = a.intersect(&b);
            prop_assert!(a.covers_all(&i) && b.covers_all(&i));
            prop_assert_eq!(i.covers(&r), a.covers(&r) && b.covers(&r));
            prop_assert_eq!(&i, &b.intersect(&a));
        }

        #[test]
        fn parse_round_trips(a in scope_set()) {
            prop_assert_eq!(ScopeSet::parse(&a.to_string()), Ok(a));
        }

        #[test]
        fn parser_never_panics(x in ".{0,80}") {
            let _ = ScopeSet::parse(&x);
        }
    }
}
