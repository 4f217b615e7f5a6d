//! `warden.toml`'s `[gateway]` table: parsed strictly (unknown keys are errors), then
//! validated; every error names the line it comes from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use warden_core::Scope;

pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read `{0}`: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{origin}:{line}: {reason}")]
    Invalid {
        origin: String,
        line: usize,
        reason: String,
    },
}

/// What happens to requests on a route when a safety net fails: the audit queue cannot take
/// the decision, or the revocation view is older than its staleness bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    #[default]
    Closed,
    Open,
}

/// Which proxy calls the forward-auth endpoint, and so which headers carry the original
/// request. Exactly one convention is trusted: accepting several would let a client add the
/// headers of another convention that its proxy passes through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForwardAuth {
    /// nginx `auth_request`: `X-Original-Method` and `X-Original-URI`; refusals are mapped to
    /// 401 or 403, the only statuses nginx passes on (the real one is in `X-Warden-Status`).
    #[default]
    Nginx,
    /// Traefik ForwardAuth: `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Traefik,
    /// Envoy ext_authz (HTTP): the request's own method, the original path after the prefix.
    Envoy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    gateway: toml::Spanned<RawGateway>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    #[serde(default)]
    listen: Option<SocketAddr>,
    /// Base URL of the authority (its JWKS, and where the gateway registers its key).
    #[serde(default)]
    authority: Option<String>,
    /// `iss` of accepted tokens (default: `authority`).
    #[serde(default)]
    issuer: Option<String>,
    /// `aud` an external token must carry (default `warden`).
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    policy_dir: Option<PathBuf>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    internal_token_ttl_secs: Option<i64>,
    #[serde(default)]
    jwks_refresh_secs: Option<u64>,
    #[serde(default)]
    jwks_min_refresh_secs: Option<u64>,
    #[serde(default)]
    token_cache_entries: Option<usize>,
    #[serde(default)]
    audit_queue: Option<usize>,
    #[serde(default)]
    audit_log: Option<PathBuf>,
    #[serde(default)]
    upstream_timeout_ms: Option<u64>,
    #[serde(default)]
    request_timeout_ms: Option<u64>,
    #[serde(default)]
    max_header_bytes: Option<usize>,
    #[serde(default)]
    header_read_timeout_ms: Option<u64>,
    #[serde(default)]
    authz_path: Option<String>,
    #[serde(default)]
    forward_auth: ForwardAuth,
    /// The gateway's URL as clients address it (DPoP proofs name it in `htu`); default
    /// `http://` + the request's Host.
    #[serde(default)]
    public_url: Option<String>,
    /// Past this without a word from the authority's revocation stream, the view is stale.
    #[serde(default)]
    revocation_max_staleness_ms: Option<u64>,
    #[serde(default)]
    dpop_max_skew_secs: Option<i64>,
    /// One-time values (DPoP proof `jti`s, single-use tokens) remembered at once.
    #[serde(default)]
    replay_cache_entries: Option<usize>,
    #[serde(default)]
    route: Vec<toml::Spanned<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: String,
    upstream: toml::Spanned<String>,
    audience: toml::Spanned<String>,
    #[serde(default)]
    scopes: BTreeMap<String, toml::Spanned<String>>,
    #[serde(default)]
    tenant: Option<String>,
    /// Per-identity requests per second (GCRA); absent means unlimited.
    #[serde(default)]
    rate: Option<u32>,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default)]
    fail_mode: FailMode,
    /// Marks the route for step-up approval (enforced by the step-up feature).
    #[serde(default)]
    step_up: bool,
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: String,
    pub upstream: Upstream,
    pub audience: String,
    /// Required scope per method; a method not listed is refused.
    pub scopes: BTreeMap<String, Scope>,
    pub tenant: Option<String>,
    pub rate: Option<(u32, u32)>,
    pub fail_mode: FailMode,
    pub step_up: bool,
}

/// An upstream base URL, split once at load.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: String,
    pub authority: String,
    /// Path prefix of the upstream URL, without a trailing slash.
    pub base_path: String,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub authority: String,
    pub issuer: String,
    pub audience: String,
    pub policy_dir: Option<PathBuf>,
    pub trusted_proxies: Vec<IpNet>,
    pub internal_token_ttl_secs: i64,
    pub jwks_refresh: Duration,
    pub jwks_min_refresh: Duration,
    pub token_cache_entries: usize,
    pub audit_queue: usize,
    pub audit_log: Option<PathBuf>,
    pub upstream_timeout: Duration,
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_token_bytes: usize,
    pub authz_path: String,
    /// Forward auth answers only peers in `trusted_proxies`, in this convention.
    pub forward_auth: ForwardAuth,
    pub public_url: Option<String>,
    pub revocation_max_staleness: Duration,
    pub dpop_max_skew_secs: i64,
    pub replay_cache_entries: usize,
    pub routes: Vec<Route>,
}

/// Longest internal-token lifetime allowed.
pub const MAX_INTERNAL_TTL: i64 = 60;

impl GatewayConfig {
    /// Parses and validates `text`; `origin` names it in errors (usually the file path).
    /// `authority`, when given (the all-in-one server, or `--authority`), overrides the file's.
    pub fn parse(text: &str, origin: &str, authority: Option<&str>) -> Result<Self, ConfigError> {
        let line_of = |offset: usize| {
            text.as_bytes()[..offset.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        };
        let invalid = |offset: usize, reason: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            line: line_of(offset),
            reason,
        };
        let file: File = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            invalid(offset, e.message().to_owned())
        })?;
        let gw_span = file.gateway.span().start;
        let g = file.gateway.into_inner();
        let authority = authority
            .map(str::to_owned)
            .or(g.authority)
            .ok_or_else(|| {
                invalid(
                    gw_span,
                    "`authority` (the authority's base URL) is required".into(),
                )
            })?;
        check_url(&authority).map_err(|r| invalid(gw_span, format!("authority: {r}")))?;
        let audience = g.audience.unwrap_or_else(|| "warden".into());
        let mut trusted_proxies = Vec::new();
        for p in &g.trusted_proxies {
            let net = p
                .parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        gw_span,
                        format!("trusted_proxies: `{p}` is not an IP or CIDR"),
                    )
                })?;
            trusted_proxies.push(net);
        }
        let internal_token_ttl_secs = g.internal_token_ttl_secs.unwrap_or(MAX_INTERNAL_TTL);
        if !(1..=MAX_INTERNAL_TTL).contains(&internal_token_ttl_secs) {
            return Err(invalid(
                gw_span,
                format!("internal_token_ttl_secs must be 1 to {MAX_INTERNAL_TTL}"),
            ));
        }
        if let Some(u) = &g.public_url {
            check_url(u).map_err(|r| invalid(gw_span, format!("public_url: {r}")))?;
        }
        let dpop_max_skew_secs = g.dpop_max_skew_secs.unwrap_or(60);
        if !(1..=300).contains(&dpop_max_skew_secs) {
            return Err(invalid(
                gw_span,
                "dpop_max_skew_secs must be 1 to 300".into(),
            ));
        }
        let authz_path = g.authz_path.unwrap_or_else(|| "/authz".into());
        if !authz_path.starts_with('/') {
            return Err(invalid(gw_span, "authz_path must start with `/`".into()));
        }
        let mut routes: Vec<Route> = Vec::new();
        for spanned in g.route {
            let at = spanned.span().start;
            let r = spanned.into_inner();
            let bad_at = |offset: usize, reason: String| {
                invalid(offset, format!("route `{}`: {reason}", r.prefix))
            };
            let bad = |reason: String| bad_at(at, reason);
            if !r.prefix.starts_with('/') {
                return Err(bad("prefix must start with `/`".into()));
            }
            if routes.iter().any(|x| x.prefix == r.prefix) {
                return Err(bad("prefix is defined twice".into()));
            }
            if r.audience.get_ref().is_empty() || *r.audience.get_ref() == audience {
                return Err(bad_at(r.audience.span().start, format!(
                    "audience must be set and differ from the gateway's own `{audience}`, or an internal token could be replayed at the edge"
                )));
            }
            let upstream = parse_upstream(r.upstream.get_ref())
                .map_err(|e| bad_at(r.upstream.span().start, format!("upstream: {e}")))?;
            if r.scopes.is_empty() {
                return Err(bad(
                    "no method is allowed: add [gateway.route.scopes]".into()
                ));
            }
            let mut scopes = BTreeMap::new();
            for (method, scope) in &r.scopes {
                let m = method.to_ascii_uppercase();
                if !METHODS.contains(&m.as_str()) {
                    return Err(bad_at(
                        scope.span().start,
                        format!("`{method}` is not an HTTP method"),
                    ));
                }
                let s = Scope::parse(scope.get_ref())
                    .map_err(|e| bad_at(scope.span().start, format!("scope for {m}: {e}")))?;
                scopes.insert(m, s);
            }
            let rate = match (r.rate, r.burst) {
                (None, None) => None,
                (Some(0), _) | (_, Some(0)) => {
                    return Err(bad("rate and burst must be positive".into()))
                }
                (Some(rate), burst) => Some((rate, burst.unwrap_or(rate))),
                (None, Some(_)) => return Err(bad("burst without rate".into())),
            };
            routes.push(Route {
                prefix: r.prefix,
                upstream,
                audience: r.audience.into_inner(),
                scopes,
                tenant: r.tenant,
                rate,
                fail_mode: r.fail_mode,
                step_up: r.step_up,
            });
        }
        // Longest prefix first, so the first match is the longest.
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(Self {
            listen: g
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
            issuer: g.issuer.unwrap_or_else(|| authority.clone()),
            authority,
            audience,
            policy_dir: g.policy_dir,
            trusted_proxies,
            internal_token_ttl_secs,
            jwks_refresh: Duration::from_secs(g.jwks_refresh_secs.unwrap_or(60)),
            jwks_min_refresh: Duration::from_secs(g.jwks_min_refresh_secs.unwrap_or(5)),
            token_cache_entries: g.token_cache_entries.unwrap_or(100_000),
            audit_queue: g.audit_queue.unwrap_or(65_536),
            audit_log: g.audit_log,
            upstream_timeout: Duration::from_millis(g.upstream_timeout_ms.unwrap_or(30_000)),
            request_timeout: Duration::from_millis(g.request_timeout_ms.unwrap_or(60_000)),
            header_read_timeout: Duration::from_millis(g.header_read_timeout_ms.unwrap_or(10_000)),
            max_header_bytes: g.max_header_bytes.unwrap_or(16 * 1024).max(8192),
            max_token_bytes: warden_core::jws::MAX_TOKEN_BYTES,
            authz_path,
            forward_auth: g.forward_auth,
            public_url: g.public_url,
            revocation_max_staleness: Duration::from_millis(
                g.revocation_max_staleness_ms.unwrap_or(10_000).max(100),
            ),
            dpop_max_skew_secs,
            replay_cache_entries: g.replay_cache_entries.unwrap_or(1_000_000).max(1),
            routes,
        })
    }

    pub fn load(path: &std::path::Path, authority: Option<&str>) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        Self::parse(&text, &path.display().to_string(), authority)
    }

    /// The route whose prefix is the longest match for `path`.
    pub fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| path.starts_with(&r.prefix))
    }
}

fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
        return Err(format!(
            "`{url}` must be an http(s) URL without a trailing slash"
        ));
    }
    Ok(())
}

fn parse_upstream(url: &str) -> Result<Upstream, String> {
    let uri: hyper::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| format!("`{url}` has no scheme"))?;
    if scheme != "http" {
        return Err(format!(
            "`{url}`: only http upstreams are supported (terminate TLS in a sidecar)"
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{url}` has no host"))?
        .to_string();
    if uri.query().is_some() {
        return Err(format!("`{url}` must not have a query"));
    }
    Ok(Upstream {
        scheme: scheme.to_owned(),
        authority,
        base_path: uri.path().trim_end_matches('/').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[gateway]
listen = "127.0.0.1:8443"
authority = "http://127.0.0.1:8080"

[[gateway.route]]
prefix = "/crm/"
upstream = "http://127.0.0.1:9001"
audience = "crm"
[gateway.route.scopes]
GET = "crm:contacts:read"
POST = "crm:contacts:write"

[[gateway.route]]
prefix = "/crm/admin/"
upstream = "http://127.0.0.1:9002/base/"
audience = "crm-admin"
rate = 10
[gateway.route.scopes]
GET = "crm:admin:read"
"#;

    #[test]
    fn parses_and_matches_the_longest_prefix() {
        let c =
            GatewayConfig::parse(GOOD, "warden.toml", None).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            c.route_for("/crm/admin/x").map(|r| r.audience.as_str()),
            Some("crm-admin")
        );
        assert_eq!(
            c.route_for("/crm/x").map(|r| r.audience.as_str()),
            Some("crm")
        );
        assert!(c.route_for("/other").is_none());
        let admin = c.route_for("/crm/admin/").unwrap_or_else(|| unreachable!());
        assert_eq!(admin.upstream.base_path, "/base");
        assert_eq!(admin.rate, Some((10, 10)));
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
    }

    fn error_of(text: &str) -> String {
        match GatewayConfig::parse(text, "w.toml", None) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn invalid_config_names_line_and_reason() {
        let e = error_of(&GOOD.replace("audience = \"crm\"", "audience = \"warden\""));
        assert!(e.starts_with("w.toml:9:"), "{e}");
        let typo = GOOD.replace(
            "upstream = \"http://127.0.0.1:9001\"",
            "upstrem = \"http://127.0.0.1:9001\"",
        );
        let e = error_of(&typo);
        assert!(e.starts_with("w.toml:") && e.contains("upstrem"), "{e}");
        let bad_scope = GOOD.replace("crm:contacts:write", "crm::write");
        let e = error_of(&bad_scope);
        assert!(e.starts_with("w.toml:12:") && e.contains("POST"), "{e}");
        let bad_method = GOOD.replace("POST =", "FETCH =");
        assert!(error_of(&bad_method).contains("`FETCH` is not an HTTP method"));
        let same_aud = GOOD.replace("audience = \"crm\"", "audience = \"warden\"");
        assert!(error_of(&same_aud).contains("differ"));
        let https = GOOD.replace("http://127.0.0.1:9001", "ftp://x");
        assert!(error_of(&https).contains("upstream"));
        assert!(error_of("[gateway]\nlisten = \"nope\"\n").starts_with("w.toml:2:"));
        assert!(error_of("[gateway]\n").contains("authority"));
    }
}
