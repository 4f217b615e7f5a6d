//! What one audit entry says: who did what to which resource, and what Warden decided.
//!
//! This module owns the entry's JSON shape only; it does not number, chain or store entries
//! (that is [`crate::log`]).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The position of an entry in the log, starting at 1. Checkpoints do not take a number
/// from this sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What sort of event an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An authentication or authorization decision (gateway, token endpoint).
    Decision,
    /// A principal, client or key was created, changed, suspended or deleted.
    Lifecycle,
    /// A token was issued.
    Issuance,
    /// A token was exchanged (RFC 8693), typically adding to the `act` chain.
    Exchange,
    /// A token, grant or key was revoked.
    Revocation,
    /// A human approved or refused a pending request.
    Approval,
    /// Something that needs an operator's attention (replay, tampering, lockout).
    Alert,
}

/// The outcome of the decision an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Decision {
    #[serde(rename = "allow")]
    Allow,
    #[serde(rename = "deny")]
    Deny,
    /// The entry records an event, not a decision.
    #[default]
    #[serde(rename = "n/a")]
    NotApplicable,
}

/// One audit record as the caller states it. Unknown fields are refused when an entry is
/// read back, so a log cannot carry data that readers silently drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Unix milliseconds at which the event happened, from the caller's clock.
    pub time: i64,
    pub kind: Kind,
    /// The principal that acted (the token's `sub`, or the admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The principal or object acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The delegation chain, outermost actor first, as in the token's nested `act` claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub act: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// What was attempted, e.g. `token.issue`, `GET`, `client.delete`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default)]
    pub decision: Decision,
    /// Why: the named phases or policies that decided, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Entry {
    /// An entry with only the required fields set.
    pub fn new(time: i64, kind: Kind, action: impl Into<String>) -> Self {
        Self {
            time,
            kind,
            actor: None,
            subject: None,
            act: Vec::new(),
            jti: None,
            action: action.into(),
            resource: None,
            decision: Decision::NotApplicable,
            reasons: Vec::new(),
            client_ip: None,
            request_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_fields() {
        let mut e = Entry::new(1_750_000_000_000, Kind::Decision, "GET");
        e.decision = Decision::Deny;
        e.act = vec!["agent:a".into(), "user:u".into()];
        e.client_ip = Some("10.0.0.1".parse().unwrap());
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""decision":"deny""#), "{json}");
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
        let extra = json.replace(r#""kind""#, r#""extra":1,"kind""#);
        assert!(serde_json::from_str::<Entry>(&extra).is_err());
        let na: Entry =
            serde_json::from_str(r#"{"time":1,"kind":"lifecycle","action":"x"}"#).unwrap();
        assert_eq!(na.decision, Decision::NotApplicable);
        assert!(serde_json::to_string(&na).unwrap().contains(r#""n/a""#));
    }
}
