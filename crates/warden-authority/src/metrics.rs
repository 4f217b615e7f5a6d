//! The authority's Prometheus figures, encoded by `prometheus-client` for `/metrics` on the
//! ops listener ([`crate::readiness::ops_router`]): tokens issued (by grant) and refused (by
//! OAuth error code), token-endpoint latency by grant, store latency by operation, revocation
//! stream subscribers; and, read at scrape time, the audit log's state and queue depth and
//! the revocation cursor.
//!
//! Every label set a request can move is made at start, so the token path takes a handle it
//! already holds: no lookup, no allocation.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::grant::GrantType;
use crate::Authority;

/// What Prometheus is told the answer is (OpenMetrics text, what `prometheus-client` writes).
pub const CONTENT_TYPE_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The OAuth error codes the token endpoint answers with ([`crate::error::OAuthError`]).
const ERROR_CODES: [&str; 10] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "invalid_scope",
    "invalid_target",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_dpop_proof",
    "temporarily_unavailable",
    "server_error",
];

type Labels = [(&'static str, &'static str); 1];

/// A token request's grant, as far as it was read: `none` when the request was refused
/// before its grant was known (a malformed body, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantLabel {
    ClientCredentials,
    Exchange,
    None,
}

impl GrantLabel {
    const ALL: [Self; 3] = [Self::ClientCredentials, Self::Exchange, Self::None];

    fn name(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Exchange => "token_exchange",
            Self::None => "none",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::ClientCredentials => 0,
            Self::Exchange => 1,
            Self::None => 2,
        }
    }
}

impl From<GrantType> for GrantLabel {
    fn from(g: GrantType) -> Self {
        match g {
            GrantType::ClientCredentials => Self::ClientCredentials,
            GrantType::Exchange => Self::Exchange,
        }
    }
}

/// A store operation whose latency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// A client and its tenant, on a client-cache miss.
    ClientLookup,
    /// A batch of client-assertion `jti`s.
    RecordJtis,
    /// The readiness probe.
    Readiness,
}

impl StoreOp {
    const ALL: [Self; 3] = [Self::ClientLookup, Self::RecordJtis, Self::Readiness];

    fn name(self) -> &'static str {
        match self {
            Self::ClientLookup => "client_lookup",
            Self::RecordJtis => "record_jtis",
            Self::Readiness => "readiness",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::ClientLookup => 0,
            Self::RecordJtis => 1,
            Self::Readiness => 2,
        }
    }
}

fn token_histogram() -> Histogram {
    // 0.5 ms to about 8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

fn store_histogram() -> Histogram {
    // 0.1 ms to about 1.6 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The authority's counters and histograms, with a handle per label set.
pub struct Metrics {
    issued: Family<Labels, Counter>,
    issued_by: [Counter; 3],
    refused: Family<Labels, Counter>,
    token_seconds: HistogramFamily,
    token_seconds_by: [Histogram; 3],
    store_seconds: HistogramFamily,
    store_seconds_by: [Histogram; 3],
    subscribers: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let issued = Family::<Labels, Counter>::default();
        let issued_by =
            GrantLabel::ALL.map(|g| issued.get_or_create(&[("grant_type", g.name())]).clone());
        let refused = Family::<Labels, Counter>::default();
        // Made now, so every code reads 0 before its first refusal; the guard is let go.
        for code in ERROR_CODES {
            drop(refused.get_or_create(&[("error", code)]));
        }
        let token_seconds: HistogramFamily = Family::new_with_constructor(token_histogram);
        let token_seconds_by = GrantLabel::ALL.map(|g| {
            token_seconds
                .get_or_create(&[("grant_type", g.name())])
                .clone()
        });
        let store_seconds: HistogramFamily = Family::new_with_constructor(store_histogram);
        let store_seconds_by = StoreOp::ALL.map(|op| {
            store_seconds
                .get_or_create(&[("operation", op.name())])
                .clone()
        });
        Self {
            issued,
            issued_by,
            refused,
            token_seconds,
            token_seconds_by,
            store_seconds,
            store_seconds_by,
            subscribers: Gauge::default(),
        }
    }
}

impl Metrics {
    /// A token request answered: issued (`error` is `None`) or refused with `error`, after
    /// `took`.
    pub fn token_answered(&self, grant: GrantLabel, error: Option<&'static str>, took: Duration) {
        let at = grant.index();
        match error {
            None => {
                if let Some(c) = self.issued_by.get(at) {
                    c.inc();
                }
            }
            // Refusals are what an attacker multiplies, never a label of its choosing: the
            // code is one of ours, `&'static`.
            Some(code) => {
                self.refused.get_or_create(&[("error", code)]).inc();
            }
        }
        if let Some(h) = self.token_seconds_by.get(at) {
            h.observe(took.as_secs_f64());
        }
    }

    /// The histogram of `op`, for a component that times its own store calls.
    pub fn store_histogram(&self, op: StoreOp) -> Histogram {
        self.store_seconds_by
            .get(op.index())
            .cloned()
            .unwrap_or_else(store_histogram)
    }

    /// One more revocation stream subscriber, until the guard is dropped.
    pub fn subscribed(&self) -> Subscribed {
        self.subscribers.inc();
        Subscribed(self.subscribers.clone())
    }
}

/// Held by a revocation stream for as long as it is open.
pub struct Subscribed(Gauge<i64, AtomicI64>);

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A figure read at scrape time.
#[derive(Debug)]
enum Value {
    Gauge(i64),
    /// Named without its `_total`, which the encoder appends.
    Counter(u64),
}

#[derive(Debug)]
struct Figures(Vec<(&'static str, &'static str, Value)>);

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in &self.0 {
            match value {
                Value::Gauge(v) => {
                    let m = ConstGauge::new(*v);
                    m.encode(encoder.encode_descriptor(name, help, None, m.metric_type())?)?;
                }
                Value::Counter(v) => {
                    let m = ConstCounter::new(*v);
                    m.encode(encoder.encode_descriptor(name, help, None, m.metric_type())?)?;
                }
            }
        }
        Ok(())
    }
}

/// The exposition text of `a`'s figures, ending in `# EOF`.
pub fn text(a: &Arc<Authority>) -> String {
    let m = &a.metrics;
    let log = a.audit_log();
    let stats = log.stats();
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let figures = Figures(vec![
        (
            "warden_audit_writable",
            "1 when the audit log can write, 0 during an outage",
            Value::Gauge(i64::from(log.status().is_writable())),
        ),
        (
            "warden_audit_outages",
            "times the audit log could not write and refused entries",
            Value::Counter(stats.outages),
        ),
        (
            "warden_audit_failed_writes",
            "audit writes (batches and recovery probes) that failed",
            Value::Counter(stats.failed_writes),
        ),
        (
            "warden_audit_refused_entries",
            "audit entries refused while the log could not write",
            Value::Counter(stats.refused_entries),
        ),
        (
            "warden_audit_durable_entries",
            "entries durable in the audit log",
            Value::Gauge(i64::try_from(log.durable_seq().0).unwrap_or(i64::MAX)),
        ),
        (
            "warden_audit_witness_failures",
            "checkpoints an audit witness did not take or was not delivered",
            Value::Counter(log.witness_failures()),
        ),
        (
            "warden_audit_queue_depth",
            "audit entries queued and not yet durable",
            Value::Gauge(count(log.queued())),
        ),
        (
            "warden_revocation_cursor",
            "the newest revocation event this authority has applied",
            Value::Gauge(a.revocations.head()),
        ),
    ]);
    let mut registry = Registry::default();
    registry.register(
        "warden_authority_tokens_issued",
        "tokens issued, by grant type",
        m.issued.clone(),
    );
    registry.register(
        "warden_authority_token_refusals",
        "token requests refused, by OAuth error code",
        m.refused.clone(),
    );
    registry.register_with_unit(
        "warden_authority_token_request_duration",
        "time to answer a token request, by grant type (none: refused before the grant was read)",
        Unit::Seconds,
        m.token_seconds.clone(),
    );
    registry.register_with_unit(
        "warden_authority_store_duration",
        "time a store operation took, by operation",
        Unit::Seconds,
        m.store_seconds.clone(),
    );
    registry.register(
        "warden_authority_revocation_subscribers",
        "revocation streams open (gateways and other subscribers)",
        m.subscribers.clone(),
    );
    registry.register_collector(Box::new(figures));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "metrics encoding failed");
        out.clear();
    }
    out
}

/// The subscriber gauge's value, for tests.
#[cfg(test)]
fn subscribers(m: &Metrics) -> i64 {
    m.subscribers.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(m: &Metrics) -> String {
        let mut registry = Registry::default();
        registry.register("issued", "h", m.issued.clone());
        registry.register("refused", "h", m.refused.clone());
        registry.register_with_unit("took", "h", Unit::Seconds, m.token_seconds.clone());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn answers_are_counted_by_grant_and_error_code() {
        let m = Metrics::default();
        m.token_answered(
            GrantLabel::ClientCredentials,
            None,
            Duration::from_millis(3),
        );
        m.token_answered(
            GrantLabel::None,
            Some("invalid_request"),
            Duration::from_millis(1),
        );
        m.token_answered(
            GrantLabel::Exchange,
            Some("invalid_grant"),
            Duration::from_millis(1),
        );
        let text = encode(&m);
        for line in [
            "issued_total{grant_type=\"client_credentials\"} 1\n",
            "issued_total{grant_type=\"token_exchange\"} 0\n",
            "refused_total{error=\"invalid_request\"} 1\n",
            "refused_total{error=\"invalid_grant\"} 1\n",
            "refused_total{error=\"invalid_client\"} 0\n",
            "took_seconds_count{grant_type=\"client_credentials\"} 1\n",
            "took_seconds_bucket{le=\"0.004\",grant_type=\"client_credentials\"} 1\n",
            "took_seconds_bucket{le=\"0.002\",grant_type=\"client_credentials\"} 0\n",
        ] {
            assert!(text.contains(line), "no {line:?} in {text}");
        }
    }

    #[test]
    fn a_subscriber_counts_while_its_guard_lives() {
        let m = Metrics::default();
        let a = m.subscribed();
        let b = m.subscribed();
        assert_eq!(subscribers(&m), 2);
        drop(a);
        assert_eq!(subscribers(&m), 1);
        drop(b);
        assert_eq!(subscribers(&m), 0);
    }
}
