//! `warden.toml`'s `[gateway]` table: parsed strictly (unknown keys are errors), then
//! validated; every error names the line it comes from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use warden_core::Scope;

use crate::behaviour::{BehaviourConfig, Response};

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
    /// Where `/healthz`, `/metrics` and the `/_warden` admin API are served.
    #[serde(default)]
    ops_listen: Option<SocketAddr>,
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
    /// Threads serving requests, each with its own event loop (default: one per CPU).
    #[serde(default)]
    workers: Option<usize>,
    /// Client connections held open at once; one more is answered 503 and closed.
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    behaviour: Option<toml::Spanned<RawBehaviour>>,
    #[serde(default)]
    route: Vec<toml::Spanned<RawRoute>>,
}

/// `[gateway.behaviour]`: off unless `enabled = true`; every other key has a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBehaviour {
    #[serde(default)]
    enabled: bool,
    window_secs: Option<i64>,
    ewma_alpha: Option<f64>,
    burst_factor: Option<f64>,
    burst_min_requests: Option<u32>,
    max_requests_per_window: Option<u32>,
    mature_after_windows: Option<u32>,
    /// Refused requests in one window that make a storm (`denied_storm` is the response).
    denied_storm_threshold: Option<u32>,
    velocity: Option<Response>,
    new_network: Option<Response>,
    novelty: Option<Response>,
    denied_storm: Option<Response>,
    downgrade_secs: Option<i64>,
    throttle_secs: Option<i64>,
    throttle_per_sec: Option<u32>,
    max_identities: Option<usize>,
    idle_secs: Option<i64>,
    alert_webhook: Option<String>,
    alert_queue: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: String,
    upstream: toml::Spanned<String>,
    audience: toml::Spanned<String>,
    #[serde(default)]
    scopes: BTreeMap<String, toml::Spanned<String>>,
    /// The tenant the route belongs to: its id (`tnt_…`) or its name.
    #[serde(default)]
    tenant: Option<toml::Spanned<String>>,
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
    /// Position in [`GatewayConfig::routes`].
    pub index: usize,
    pub prefix: String,
    pub upstream: Upstream,
    pub audience: String,
    /// Required scope per method; a method not listed is refused.
    pub scopes: BTreeMap<String, Scope>,
    /// Only this tenant's tokens pass (the `tenant` phase), whatever the policies say.
    pub tenant: Option<RouteTenant>,
    pub rate: Option<(u32, u32)>,
    pub fail_mode: FailMode,
    pub step_up: bool,
}

/// A route's `tenant`: as the file writes it, until the authority confirms which tenant
/// that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTenant {
    /// An id or a name, not yet confirmed; where it is written, for the error if it is not.
    Written {
        value: String,
        origin: String,
        line: usize,
    },
    /// The id of a tenant the authority confirmed exists.
    Id(String),
}

impl Route {
    /// The route's tenant id, once confirmed.
    pub fn tenant_id(&self) -> Option<&str> {
        match &self.tenant {
            Some(RouteTenant::Id(id)) => Some(id),
            _ => None,
        }
    }

    /// Whether a token of `tenant` may use the route. A tenant never confirmed serves no one:
    /// a route meant for one tenant must not fall open to all.
    pub fn serves_tenant(&self, tenant: &str) -> bool {
        match &self.tenant {
            None => true,
            Some(RouteTenant::Id(id)) => id == tenant,
            Some(RouteTenant::Written { .. }) => false,
        }
    }
}

/// An upstream base URL, split and parsed once at load.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: hyper::http::uri::Scheme,
    pub authority: hyper::http::uri::Authority,
    /// The `Host` header the upstream gets.
    pub host: hyper::header::HeaderValue,
    /// Path prefix of the upstream URL, without a trailing slash.
    pub base_path: String,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// The operators' listener (`/healthz`, `/metrics`, `/_warden`), apart from the public
    /// one so that neither the figures nor the admin API are reachable by clients.
    pub ops_listen: SocketAddr,
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
    /// Threads serving requests, each with its own single-threaded event loop.
    pub workers: usize,
    /// Client connections open at once, across all workers.
    pub max_connections: usize,
    /// Behavioural defence; `None` when off.
    pub behaviour: Option<BehaviourConfig>,
    pub routes: Vec<Route>,
}

/// Most serving threads a gateway runs.
pub const MAX_WORKERS: usize = 256;

/// Client connections a gateway holds at once unless `max_connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Most client connections a gateway may be configured to hold.
pub const MAX_CONNECTIONS: usize = 1_000_000;

/// Longest internal-token lifetime allowed.
pub const MAX_INTERNAL_TTL: i64 = 60;

impl GatewayConfig {
    /// Loopback: the ops endpoints are for the host's own agents (a Prometheus scraper, a
    /// sidecar, an operator's shell) unless a deployment says otherwise.
    pub const DEFAULT_OPS_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9901);

    /// Parses and validates `text`; `origin` names it in errors (usually the file path).
    /// `authority`, when given (the all-in-one server, or `--authority`), overrides the file's.
    pub fn parse(text: &str, origin: &str, authority: Option<&str>) -> Result<Self, ConfigError> {
        let line_of = |offset: usize| {
            text.as_bytes()
                .get(..offset)
                .unwrap_or(text.as_bytes())
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
        let workers = match g.workers {
            None => std::thread::available_parallelism().map_or(1, usize::from),
            Some(n) if (1..=MAX_WORKERS).contains(&n) => n,
            Some(_) => {
                return Err(invalid(
                    gw_span,
                    format!("workers must be 1 to {MAX_WORKERS}"),
                ))
            }
        };
        let max_connections = g.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if !(1..=MAX_CONNECTIONS).contains(&max_connections) {
            return Err(invalid(
                gw_span,
                format!("max_connections must be 1 to {MAX_CONNECTIONS}"),
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
            let tenant = match r.tenant {
                None => None,
                Some(t) if t.get_ref().trim().is_empty() => {
                    return Err(bad_at(
                        t.span().start,
                        "tenant must be a tenant id (`tnt_…`) or a tenant's name".into(),
                    ))
                }
                Some(t) => Some(RouteTenant::Written {
                    line: line_of(t.span().start),
                    origin: origin.to_owned(),
                    value: t.into_inner(),
                }),
            };
            routes.push(Route {
                index: 0,
                prefix: r.prefix,
                upstream,
                audience: r.audience.into_inner(),
                scopes,
                tenant,
                rate,
                fail_mode: r.fail_mode,
                step_up: r.step_up,
            });
        }
        // Longest prefix first, so the first match is the longest.
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        for (i, r) in routes.iter_mut().enumerate() {
            r.index = i;
        }
        let behaviour = match g.behaviour {
            None => None,
            Some(spanned) => {
                let at = spanned.span().start;
                behaviour_config(spanned.into_inner())
                    .map_err(|reason| invalid(at, format!("behaviour: {reason}")))?
            }
        };
        Ok(Self {
            listen: g
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
            ops_listen: g.ops_listen.unwrap_or(Self::DEFAULT_OPS_LISTEN),
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
            workers,
            max_connections,
            behaviour,
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

/// Validates `[gateway.behaviour]`; `None` when it is not enabled.
fn behaviour_config(b: RawBehaviour) -> Result<Option<BehaviourConfig>, String> {
    if !b.enabled {
        return Ok(None);
    }
    let d = BehaviourConfig::default();
    let in_range = |name: &str, v: i64, lo: i64, hi: i64| {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{name} must be {lo} to {hi}"))
        }
    };
    let window_secs = in_range(
        "window_secs",
        b.window_secs.unwrap_or(d.window_secs),
        1,
        86_400,
    )?;
    let ewma_alpha = b.ewma_alpha.unwrap_or(d.ewma_alpha);
    if !(ewma_alpha > 0.0 && ewma_alpha <= 1.0) {
        return Err("ewma_alpha must be above 0 and at most 1".into());
    }
    let burst_factor = b.burst_factor.unwrap_or(d.burst_factor);
    if !(burst_factor > 1.0 && burst_factor <= 1_000.0) {
        return Err("burst_factor must be above 1 and at most 1000".into());
    }
    let positive = |name: &str, v: Option<u32>, default: u32| match v.unwrap_or(default) {
        0 => Err(format!("{name} must be positive")),
        n => Ok(n),
    };
    let max_requests_per_window = match b.max_requests_per_window {
        Some(0) => {
            return Err("max_requests_per_window must be positive (omit it for no cap)".into())
        }
        v => v,
    };
    if let Some(url) = &b.alert_webhook {
        if !url.starts_with("http://") {
            return Err(format!(
                "alert_webhook: `{url}` must be an http:// URL (terminate TLS in a sidecar)"
            ));
        }
        url.parse::<hyper::Uri>()
            .map_err(|_| format!("alert_webhook: `{url}` is not a URL"))?;
    }
    let alert_queue = b.alert_queue.unwrap_or(d.alert_queue);
    if !(1..=1_000_000).contains(&alert_queue) {
        return Err("alert_queue must be 1 to 1000000".into());
    }
    let max_identities = b.max_identities.unwrap_or(d.max_identities);
    if !(16..=100_000_000).contains(&max_identities) {
        return Err("max_identities must be 16 to 100000000".into());
    }
    Ok(Some(BehaviourConfig {
        window_secs,
        ewma_alpha,
        burst_factor,
        burst_min_requests: positive(
            "burst_min_requests",
            b.burst_min_requests,
            d.burst_min_requests,
        )?,
        max_requests_per_window,
        mature_after_windows: positive(
            "mature_after_windows",
            b.mature_after_windows,
            d.mature_after_windows,
        )?,
        denied_storm: positive(
            "denied_storm_threshold",
            b.denied_storm_threshold,
            d.denied_storm,
        )?,
        on_velocity: b.velocity.unwrap_or(d.on_velocity),
        on_new_network: b.new_network.unwrap_or(d.on_new_network),
        on_novelty: b.novelty.unwrap_or(d.on_novelty),
        on_denied_storm: b.denied_storm.unwrap_or(d.on_denied_storm),
        downgrade_secs: in_range(
            "downgrade_secs",
            b.downgrade_secs.unwrap_or(d.downgrade_secs),
            1,
            30 * 86_400,
        )?,
        throttle_secs: in_range(
            "throttle_secs",
            b.throttle_secs.unwrap_or(d.throttle_secs),
            1,
            30 * 86_400,
        )?,
        throttle_per_sec: positive("throttle_per_sec", b.throttle_per_sec, d.throttle_per_sec)?,
        max_identities,
        idle_secs: in_range(
            "idle_secs",
            b.idle_secs.unwrap_or(d.idle_secs),
            window_secs,
            365 * 86_400,
        )?,
        alert_webhook: b.alert_webhook,
        alert_queue,
    }))
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
        .clone();
    if uri.query().is_some() {
        return Err(format!("`{url}` must not have a query"));
    }
    let host = hyper::header::HeaderValue::from_str(authority.as_str())
        .map_err(|_| format!("`{url}`: the host is not a header value"))?;
    Ok(Upstream {
        scheme: hyper::http::uri::Scheme::HTTP,
        authority,
        host,
        base_path: uri.path().trim_end_matches('/').to_owned(),
    })
}

#[cfg(test)]
mod tests;
