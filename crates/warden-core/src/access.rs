//! What verification established about an access token, typed: who it speaks for, in which
//! tenant, with which scopes, through which delegation chain, from which networks, bound to
//! which key. A [`VerifiedAccess`] is made only from the claims of a token whose signature
//! and registered claims were checked ([`crate::VerifiedToken::access`]); nothing here
//! parses a token or checks a signature.
//!
//! The principal kind of an id is decided here, once, for every component: an id whose
//! prefix names no kind reads as an agent, the least trusted kind (see [`principal_kind`]).

use std::net::IpAddr;

use crate::claims::{AccessClaims, Actor};
use crate::id::{PrincipalId, PrincipalKind, TenantId};
use crate::scope::ScopeSet;
use crate::token::VerifiedToken;

/// Why verified claims do not make a [`VerifiedAccess`]: the signature held, but a claim
/// Warden gives meaning to does not parse. The token is refused, never read loosely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("token subject `{0}` is not a principal id")]
    Subject(String),
    #[error("token tenant `{0}` is not a tenant id")]
    Tenant(String),
    #[error("token actor `{0}` is not a principal id")]
    Actor(String),
    #[error("token scope: {0}")]
    Scope(String),
    #[error("token allowed_ips is malformed")]
    AllowedIps,
}

/// What a verified access token grants, read once from its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccess {
    principal: PrincipalId,
    tenant: TenantId,
    scopes: ScopeSet,
    chain: DelegationChain,
    allowed_ips: Option<Vec<Network>>,
    cnf: Option<String>,
}

impl VerifiedAccess {
    /// Reads verified claims. Private to the crate: the only way in from outside is
    /// [`VerifiedToken::access`], after the signature and registered claims were checked.
    fn from_claims(c: &AccessClaims) -> Result<Self, AccessError> {
        let principal =
            PrincipalId::parse(&c.sub).map_err(|_| AccessError::Subject(c.sub.clone()))?;
        let tenant =
            TenantId::parse(&c.tenant).map_err(|_| AccessError::Tenant(c.tenant.clone()))?;
        let scopes = ScopeSet::parse(&c.scope).map_err(|e| AccessError::Scope(e.to_string()))?;
        let chain = DelegationChain::from_act(c.act.as_ref())?;
        let allowed_ips = match &c.allowed_ips {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|e| Network::parse(e))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(AccessError::AllowedIps)?,
            ),
        };
        Ok(Self {
            principal,
            tenant,
            scopes,
            chain,
            allowed_ips,
            cnf: c.cnf.as_ref().map(|c| c.jkt.clone()),
        })
    }

    /// Whom the token speaks for (`sub`).
    pub fn principal(&self) -> &PrincipalId {
        &self.principal
    }

    /// The principal's kind, from its id.
    pub fn kind(&self) -> PrincipalKind {
        self.principal.kind()
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn scopes(&self) -> &ScopeSet {
        &self.scopes
    }

    /// Who acts for the principal, outermost first.
    pub fn chain(&self) -> &DelegationChain {
        &self.chain
    }

    /// Every principal the token names: the principal, then each actor, outermost first.
    pub fn parties(&self) -> impl Iterator<Item = &PrincipalId> {
        std::iter::once(&self.principal).chain(self.chain.actors())
    }

    /// `allowed_ips`, parsed; `None` when the token has no restriction.
    pub fn allowed_ips(&self) -> Option<&[Network]> {
        self.allowed_ips.as_deref()
    }

    /// Whether `ip` may present the token: always, without `allowed_ips`.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.allowed_ips
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|n| n.contains(ip)))
    }

    /// The thumbprint of the key the token is bound to (RFC 9449 `cnf.jkt`).
    pub fn cnf(&self) -> Option<&str> {
        self.cnf.as_deref()
    }
}

impl VerifiedToken<AccessClaims> {
    /// What the token grants, typed. The signature and registered claims were checked by
    /// `verify`; this reads the rest strictly.
    pub fn access(&self) -> Result<VerifiedAccess, AccessError> {
        VerifiedAccess::from_claims(self.claims())
    }
}

/// A token's delegation chain (RFC 8693 §4.1): the parties acting for the principal, the
/// current actor (the outermost `act`) first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelegationChain(Vec<PrincipalId>);

impl DelegationChain {
    /// Walks the `act` nesting of claims not read into a chain, such as those of a token
    /// about to be signed, outermost first. Nothing is parsed.
    pub fn walk(act: Option<&Actor>) -> impl Iterator<Item = &Actor> {
        std::iter::successors(act, |a| a.act.as_deref())
    }

    fn from_act(act: Option<&Actor>) -> Result<Self, AccessError> {
        let mut actors = Vec::new();
        let mut cur = act;
        while let Some(a) = cur {
            actors.push(PrincipalId::parse(&a.sub).map_err(|_| AccessError::Actor(a.sub.clone()))?);
            cur = a.act.as_deref();
        }
        Ok(Self(actors))
    }

    /// Levels of delegation: 0 for a token the principal uses itself.
    pub fn depth(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    /// The party acting now (the outermost `act`), if the token is delegated.
    pub fn current(&self) -> Option<&PrincipalId> {
        self.0.first()
    }

    /// Every actor, outermost first.
    pub fn actors(&self) -> impl Iterator<Item = &PrincipalId> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An address range of `allowed_ips`: a CIDR, or one address. An address of the other
/// family is never inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `a.b.c.d/n`, `x::y/n`, or a bare address (the whole prefix); `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?)
            }
            None => {
                let a = s.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The kind an id's prefix names, with the restrictive reading for any other id: an agent,
/// the kind that policies restrict most (agents read only unless a person granted more), so
/// an id of no known kind can never pass for a user or a service.
pub fn principal_kind(id: &str) -> PrincipalKind {
    match id.split_once('_').map(|(prefix, _)| prefix) {
        Some("usr") => PrincipalKind::User,
        Some("svc") => PrincipalKind::Service,
        // INVARIANT: every prefix but `usr` and `svc`, known or not, is read as an agent.
        _ => PrincipalKind::Agent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::claims::{Audience, Confirmation};

    const AGENT: &str = "agt_AAAAAAAAAAAAAAAAAAAAAA";
    const USER: &str = "usr_BBBBBBBBBBBBBBBBBBBBBB";
    const OTHER: &str = "agt_CCCCCCCCCCCCCCCCCCCCCC";

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://warden.example".into(),
            sub: USER.into(),
            aud: Audience::One("warden".into()),
            exp: 1_000,
            iat: 900,
            nbf: 900,
            jti: "j1".into(),
            client_id: AGENT.into(),
            tenant: "tnt_TTTTTTTTTTTTTTTTTTTTTT".into(),
            scope: "crm:read crm:write".into(),
            act: Some(Actor {
                sub: AGENT.into(),
                act: Some(Box::new(Actor {
                    sub: OTHER.into(),
                    act: None,
                })),
            }),
            cnf: Some(Confirmation {
                jkt: "thumb".into(),
            }),
            allowed_ips: Some(vec!["10.0.0.0/8".into(), "2001:db8::1".into()]),
            max_uses: None,
        }
    }

    #[test]
    fn claims_read_into_typed_access_and_the_chain_walks_outermost_first() {
        let a = VerifiedAccess::from_claims(&claims()).unwrap();
        assert_eq!(a.principal().as_str(), USER);
        assert_eq!(a.kind(), PrincipalKind::User);
        assert_eq!(a.tenant().as_str(), "tnt_TTTTTTTTTTTTTTTTTTTTTT");
        assert_eq!(a.scopes().iter().count(), 2);
        assert_eq!(a.chain().depth(), 2);
        assert_eq!(a.chain().current().map(PrincipalId::as_str), Some(AGENT));
        let walk: Vec<&str> = a.chain().actors().map(PrincipalId::as_str).collect();
        assert_eq!(walk, [AGENT, OTHER]);
        assert_eq!(a.cnf(), Some("thumb"));
        assert!(a.allows_ip("10.1.2.3".parse().unwrap()));
        assert!(a.allows_ip("2001:db8::1".parse().unwrap()));
        assert!(!a.allows_ip("11.0.0.1".parse().unwrap()));
        assert!(!a.allows_ip("2001:db8::2".parse().unwrap()));
        let mut plain = claims();
        plain.act = None;
        plain.allowed_ips = None;
        let a = VerifiedAccess::from_claims(&plain).unwrap();
        assert!(a.chain().is_empty() && a.chain().current().is_none());
        assert_eq!(a.chain().depth(), 0);
        assert!(a.allows_ip("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn a_claim_that_does_not_parse_refuses_the_access() {
        let edits: [fn(&mut AccessClaims); 5] = [
            |c| c.sub = "bob".into(),
            |c| c.tenant = "acme".into(),
            |c| c.scope = "bad scope!".into(),
            |c| {
                if let Some(a) = c.act.as_mut() {
                    a.sub = "agt_short".into();
                }
            },
            |c| c.allowed_ips = Some(vec!["10.0.0.0/8".into(), "10.0.0.0/33".into()]),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut c = claims();
            edit(&mut c);
            assert!(VerifiedAccess::from_claims(&c).is_err(), "edit {i}");
        }
    }

    #[test]
    fn networks_parse_strictly_and_never_cross_families() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/+8",
            "::/129",
            "host",
            "10.0.0.0/8/8",
        ] {
            assert!(Network::parse(bad).is_none(), "{bad}");
        }
        let all4 = Network::parse("0.0.0.0/0").unwrap();
        assert!(all4.contains("203.0.113.9".parse().unwrap()));
        assert!(!all4.contains("::ffff:203.0.113.9".parse().unwrap()));
        let one = Network::parse("203.0.113.9").unwrap();
        assert!(one.contains("203.0.113.9".parse().unwrap()));
        assert!(!one.contains("203.0.113.8".parse().unwrap()));
        let host_bits = Network::parse("10.1.2.3/8").unwrap();
        assert!(host_bits.contains("10.200.0.1".parse().unwrap()));
        let v6 = Network::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn kinds_from_prefixes_and_the_restrictive_reading_for_the_rest() {
        assert_eq!(principal_kind("usr_x"), PrincipalKind::User);
        assert_eq!(principal_kind("svc_x"), PrincipalKind::Service);
        assert_eq!(principal_kind("agt_x"), PrincipalKind::Agent);
        for odd in ["tnt_x", "agt", "usr", "", "USR_x", "usrx_y"] {
            assert_eq!(principal_kind(odd), PrincipalKind::Agent, "{odd}");
        }
    }
}
