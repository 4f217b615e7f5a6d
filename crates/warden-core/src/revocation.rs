//! Revocation events as the authority streams them, and the in-memory view a gateway (or the
//! authority itself) checks every token against.
//!
//! Revoking a principal ends every token issued before the revocation in which it appears,
//! as `sub` or at any level of the `act` chain: revoking a user ends the tokens of every agent
//! acting for them, and revoking an agent ends those of the sub-agents it delegated to. The
//! cascade is a property of the check, so it needs no fan-out at revocation time.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::claims::{AccessClaims, Actor};

/// What an event revokes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RevokedTarget {
    Principal {
        principal: String,
    },
    Token {
        jti: String,
    },
    /// A honeytoken principal: a credential bound to no real power, planted to be stolen. Any
    /// token naming it is refused and reported, whenever it was issued.
    Honeytoken {
        principal: String,
    },
    /// A delegation grant: `agent` may no longer act for `user`.
    Grant {
        grant: String,
        user: String,
        agent: String,
    },
    /// A disabled tenant: every token of the tenant issued before the event is dead.
    Tenant {
        tenant: String,
    },
}

/// One event of the revocation stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEvent {
    /// Position in the authority's log; a subscriber resumes after the last one it applied.
    pub seq: i64,
    #[serde(flatten)]
    pub target: RevokedTarget,
    /// Tokens with `iat` before this are dead (principal and grant events).
    pub issued_before: i64,
    /// No token the event affects lives past this; the event can then be forgotten.
    pub horizon: i64,
    #[serde(default)]
    pub reason: Option<String>,
    pub created_at: i64,
}

/// Why [`RevocationView::check`] refused a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// A honeytoken was used: refuse, and raise a high-severity alert.
    Honeytoken(String),
    Token,
    Principal(String),
    Grant {
        user: String,
        agent: String,
    },
    Tenant(String),
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Reads like any revocation: the presenter must not learn it was a trap.
            Self::Honeytoken(_) => f.write_str("token was revoked"),
            Self::Token => f.write_str("token was revoked"),
            Self::Principal(p) => write!(f, "principal {p} was revoked"),
            Self::Grant { user, agent } => {
                write!(f, "delegation from {user} to {agent} was revoked")
            }
            Self::Tenant(t) => write!(f, "tenant {t} was disabled"),
        }
    }
}

/// What a cut-off in force applies to, borrowed from the claims: the owned [`Revoked`] is
/// built only for the one that refuses, not for every cut-off looked at.
#[derive(Debug, Clone, Copy)]
enum Cut<'c> {
    Tenant(&'c str),
    Principal(&'c str),
    Grant(&'c str, &'c str),
}

impl Cut<'_> {
    fn revoked(self) -> Revoked {
        match self {
            Self::Tenant(t) => Revoked::Tenant(t.to_owned()),
            Self::Principal(p) => Revoked::Principal(p.to_owned()),
            Self::Grant(user, agent) => Revoked::Grant {
                user: user.to_owned(),
                agent: agent.to_owned(),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Cutoff {
    issued_before: i64,
    horizon: i64,
}

impl Cutoff {
    fn merge(&mut self, other: Cutoff) {
        self.issued_before = self.issued_before.max(other.issued_before);
        self.horizon = self.horizon.max(other.horizon);
    }
}

/// Revocations in force, as of the event at [`Self::cursor`].
#[derive(Debug, Default)]
pub struct RevocationView {
    cursor: i64,
    principals: HashMap<String, Cutoff>,
    grants: HashMap<(String, String), Cutoff>,
    tenants: HashMap<String, Cutoff>,
    tokens: HashMap<String, i64>,
    honeytokens: std::collections::HashSet<String>,
}

impl RevocationView {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `seq` of the last event applied.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Applies an event; events at or before the cursor are already in the view.
    pub fn apply(&mut self, event: &RevocationEvent) {
        if event.seq <= self.cursor {
            return;
        }
        self.cursor = event.seq;
        let cutoff = Cutoff {
            issued_before: event.issued_before,
            horizon: event.horizon,
        };
        match &event.target {
            RevokedTarget::Principal { principal } => {
                self.principals
                    .entry(principal.clone())
                    .and_modify(|c| c.merge(cutoff))
                    .or_insert(cutoff);
            }
            RevokedTarget::Grant { user, agent, .. } => {
                self.grants
                    .entry((user.clone(), agent.clone()))
                    .and_modify(|c| c.merge(cutoff))
                    .or_insert(cutoff);
            }
            RevokedTarget::Honeytoken { principal } => {
                self.honeytokens.insert(principal.clone());
            }
            RevokedTarget::Tenant { tenant } => {
                self.tenants
                    .entry(tenant.clone())
                    .and_modify(|c| c.merge(cutoff))
                    .or_insert(cutoff);
            }
            RevokedTarget::Token { jti } => {
                let horizon = self.tokens.entry(jti.clone()).or_insert(event.horizon);
                *horizon = (*horizon).max(event.horizon);
            }
        }
    }

    /// Whether a token is revoked: by `jti`, by any principal in its chain, or by any
    /// delegation link in its chain.
    pub fn check(&self, claims: &AccessClaims) -> Result<(), Revoked> {
        if let Some(p) = self.honeytoken_in(claims) {
            return Err(Revoked::Honeytoken(p.to_owned()));
        }
        if self.tokens.contains_key(&claims.jti) {
            return Err(Revoked::Token);
        }
        match self
            .cutoffs(claims)
            .into_iter()
            .find(|(issued_before, _)| claims.iat < *issued_before)
        {
            Some((_, cut)) => Err(cut.revoked()),
            None => Ok(()),
        }
    }

    /// The earliest `iat` at which a token with these claims would pass [`Self::check`]: the
    /// claims' own `iat` when nothing in force cuts it off, later when a cut-off lies ahead
    /// (a revocation in the current second, say). An issuer stamps that instant, or refuses,
    /// rather than hand out a token that is dead on arrival. `Err` when no `iat` would pass
    /// (a revoked `jti`, a honeytoken).
    pub fn issuable_from(&self, claims: &AccessClaims) -> Result<i64, Revoked> {
        if let Some(p) = self.honeytoken_in(claims) {
            return Err(Revoked::Honeytoken(p.to_owned()));
        }
        if self.tokens.contains_key(&claims.jti) {
            return Err(Revoked::Token);
        }
        Ok(self
            .cutoffs(claims)
            .into_iter()
            .map(|(issued_before, _)| issued_before)
            .fold(claims.iat, i64::max))
    }

    /// Every cut-off in force that applies to the claims, with what it revokes, in the order
    /// [`Self::check`] reports them: tenant, subject, actors, delegation links.
    fn cutoffs<'c>(&self, claims: &'c AccessClaims) -> Vec<(i64, Cut<'c>)> {
        let mut found = Vec::new();
        if let Some(c) = self.tenants.get(&claims.tenant) {
            found.push((c.issued_before, Cut::Tenant(&claims.tenant)));
        }
        if self.principals.is_empty() && self.grants.is_empty() {
            return found;
        }
        let mut subject = claims.sub.as_str();
        if let Some(c) = self.principals.get(subject) {
            found.push((c.issued_before, Cut::Principal(subject)));
        }
        // Outermost first: the current actor, then the ones before it (RFC 8693 §4.1).
        let actors: Vec<&Actor> =
            std::iter::successors(claims.act.as_ref(), |a| a.act.as_deref()).collect();
        for a in &actors {
            if let Some(c) = self.principals.get(&a.sub) {
                found.push((c.issued_before, Cut::Principal(&a.sub)));
            }
        }
        if self.grants.is_empty() {
            return found;
        }
        // Delegation runs from the subject to the innermost actor, then outwards.
        for a in actors.iter().rev() {
            if let Some(c) = self.grants.get(&(subject.to_owned(), a.sub.clone())) {
                found.push((c.issued_before, Cut::Grant(subject, &a.sub)));
            }
            subject = &a.sub;
        }
        found
    }

    /// The honeytoken principal a token names, as subject or actor, if any. Also for tokens
    /// that fail other checks (expired ones): a honeytoken's use is reported regardless.
    pub fn honeytoken_in<'c>(&self, claims: &'c AccessClaims) -> Option<&'c str> {
        if self.honeytokens.is_empty() {
            return None;
        }
        std::iter::once(claims.sub.as_str())
            .chain(
                std::iter::successors(claims.act.as_ref(), |a| a.act.as_deref())
                    .map(|a| a.sub.as_str()),
            )
            .find(|p| self.honeytokens.contains(*p))
    }

    /// Whether `principal` is a honeytoken (a client authenticating as it is an attack).
    pub fn is_honeytoken(&self, principal: &str) -> bool {
        self.honeytokens.contains(principal)
    }

    /// Forgets what no live token can be affected by any more.
    pub fn prune(&mut self, now: i64) {
        self.principals.retain(|_, c| c.horizon >= now);
        self.grants.retain(|_, c| c.horizon >= now);
        self.tenants.retain(|_, c| c.horizon >= now);
        self.tokens.retain(|_, horizon| *horizon >= now);
    }

    /// Entries held, for metrics.
    pub fn len(&self) -> usize {
        self.principals.len()
            + self.grants.len()
            + self.tenants.len()
            + self.tokens.len()
            + self.honeytokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Audience;

    fn token(sub: &str, chain: &[&str], iat: i64) -> AccessClaims {
        let act = chain.iter().rev().fold(None, |inner, s| {
            Some(Actor {
                sub: (*s).into(),
                act: inner.map(Box::new),
            })
        });
        AccessClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: Audience::One("a".into()),
            exp: iat + 900,
            iat,
            nbf: iat,
            jti: format!("j-{sub}-{}", chain.len()),
            client_id: chain.first().copied().unwrap_or(sub).into(),
            tenant: "t".into(),
            scope: "x:read".into(),
            act,
            cnf: None,
            allowed_ips: None,
            max_uses: None,
        }
    }

    #[test]
    fn a_disabled_tenant_ends_its_tokens_issued_before_and_only_those() {
        let mut v = RevocationView::new();
        v.apply(&event(1, RevokedTarget::Tenant { tenant: "t".into() }, 100));
        let mut other = token("usr_a", &[], 50);
        other.tenant = "u".into();
        assert_eq!(v.check(&other), Ok(()));
        assert_eq!(
            v.check(&token("usr_a", &["agt_b"], 99)),
            Err(Revoked::Tenant("t".into()))
        );
        assert_eq!(v.check(&token("usr_a", &[], 100)), Ok(()));
        assert_eq!(
            Revoked::Tenant("t".into()).to_string(),
            "tenant t was disabled"
        );
        v.prune(100 + 901);
        assert!(v.is_empty());
    }

    #[test]
    fn issuable_from_is_the_first_iat_past_every_cutoff() {
        let mut v = RevocationView::new();
        let t = token("usr_a", &["agt_b"], 100);
        assert_eq!(v.issuable_from(&t), Ok(100));
        v.apply(&event(
            1,
            RevokedTarget::Principal {
                principal: "agt_b".into(),
            },
            101,
        ));
        v.apply(&event(2, RevokedTarget::Tenant { tenant: "t".into() }, 102));
        assert_eq!(v.issuable_from(&t), Ok(102));
        let mut later = t.clone();
        later.iat = 102;
        assert_eq!(v.check(&later), Ok(()));
        later.iat = 101;
        assert_eq!(v.check(&later), Err(Revoked::Tenant("t".into())));
        v.apply(&event(3, RevokedTarget::Token { jti: t.jti.clone() }, 0));
        assert_eq!(v.issuable_from(&t), Err(Revoked::Token));
    }

    fn event(seq: i64, target: RevokedTarget, issued_before: i64) -> RevocationEvent {
        RevocationEvent {
            seq,
            target,
            issued_before,
            horizon: issued_before + 900,
            reason: None,
            created_at: issued_before,
        }
    }

    #[test]
    fn revoking_a_user_ends_every_chain_they_appear_in() {
        let mut v = RevocationView::new();
        let own = token("usr_a", &[], 100);
        let delegated = token("usr_a", &["agt_b", "agt_c"], 100);
        let unrelated = token("usr_z", &["agt_b"], 100);
        v.apply(&event(
            1,
            RevokedTarget::Principal {
                principal: "usr_a".into(),
            },
            150,
        ));
        assert_eq!(v.check(&own), Err(Revoked::Principal("usr_a".into())));
        assert_eq!(v.check(&delegated), Err(Revoked::Principal("usr_a".into())));
        assert_eq!(v.check(&unrelated), Ok(()));
        // Tokens issued after the revocation are not affected.
        assert_eq!(v.check(&token("usr_a", &["agt_b"], 150)), Ok(()));
    }

    #[test]
    fn revoking_an_agent_reaches_its_sub_agents() {
        let mut v = RevocationView::new();
        v.apply(&event(
            1,
            RevokedTarget::Principal {
                principal: "agt_b".into(),
            },
            150,
        ));
        assert!(v.check(&token("usr_a", &["agt_c", "agt_b"], 100)).is_err());
        assert!(v.check(&token("agt_b", &[], 100)).is_err());
        assert_eq!(v.check(&token("usr_a", &["agt_c"], 100)), Ok(()));
    }

    #[test]
    fn a_revoked_grant_ends_only_that_link() {
        let mut v = RevocationView::new();
        let grant = RevokedTarget::Grant {
            grant: "dlg_1".into(),
            user: "usr_a".into(),
            agent: "agt_b".into(),
        };
        v.apply(&event(1, grant, 150));
        // `chain` is outermost first: agt_b acted for usr_a, then handed down to agt_c.
        assert!(v.check(&token("usr_a", &["agt_c", "agt_b"], 100)).is_err());
        assert!(v.check(&token("usr_a", &["agt_b"], 100)).is_err());
        // usr_a → agt_c → agt_b does not rest on the usr_a → agt_b link.
        assert_eq!(v.check(&token("usr_a", &["agt_b", "agt_c"], 100)), Ok(()));
        assert_eq!(v.check(&token("usr_a", &["agt_c"], 100)), Ok(()));
        assert_eq!(v.check(&token("usr_x", &["agt_b"], 100)), Ok(()));
    }

    #[test]
    fn a_honeytoken_is_refused_wherever_it_appears_and_never_forgotten() {
        let mut v = RevocationView::new();
        v.apply(&event(
            1,
            RevokedTarget::Honeytoken {
                principal: "agt_h".into(),
            },
            0,
        ));
        let as_subject = token("agt_h", &[], 5_000);
        let as_actor = token("usr_a", &["agt_h"], 5_000);
        assert_eq!(
            v.check(&as_subject),
            Err(Revoked::Honeytoken("agt_h".into()))
        );
        assert_eq!(v.check(&as_actor), Err(Revoked::Honeytoken("agt_h".into())));
        assert_eq!(
            Revoked::Honeytoken("agt_h".into()).to_string(),
            Revoked::Token.to_string()
        );
        assert_eq!(v.check(&token("usr_a", &["agt_b"], 5_000)), Ok(()));
        v.prune(i64::MAX - 1);
        assert!(v.is_honeytoken("agt_h"));
    }

    #[test]
    fn events_apply_once_and_prune_at_their_horizon() {
        let mut v = RevocationView::new();
        let t = token("agt_x", &[], 100);
        v.apply(&event(5, RevokedTarget::Token { jti: t.jti.clone() }, 0));
        assert_eq!(v.check(&t), Err(Revoked::Token));
        v.apply(&event(
            3,
            RevokedTarget::Principal {
                principal: "agt_x".into(),
            },
            999,
        ));
        assert_eq!(v.cursor(), 5, "an older event is not applied twice");
        v.prune(901);
        assert!(v.is_empty());
    }
}
