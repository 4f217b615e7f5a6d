//! `/metrics` on the ops listener: the gateway's figures as Prometheus text, encoded by
//! `prometheus-client`. The one counter the request path moves ([`Decisions`]) is made at
//! start with every label set it can take, so a decision costs one atomic add and no lookup
//! or allocation; every other figure already lives where it is kept (caches, the revocation
//! feed, the connection cap) and is read only when scraped.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;

use crate::http_client::{full, Body};
use crate::Gateway;

/// What Prometheus is told the answer is (OpenMetrics text, what `prometheus-client` writes).
pub const CONTENT_TYPE_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every phase a pipeline decision can be refused in ([`crate::Deny::phase`]), plus
/// `forward` for an allowed one.
const PHASES: [&str; 14] = [
    "request",
    "verify",
    "possession",
    "revocation",
    "spend",
    "route",
    "tenant",
    "scope",
    "network",
    "policy",
    "rate",
    "audit",
    "behaviour",
    "forward",
];

type DecisionLabels = [(&'static str, &'static str); 2];

/// `warden_gateway_decisions_total{decision, phase}`: one handle per label set, made once.
pub(crate) struct Decisions {
    family: Family<DecisionLabels, Counter>,
    allowed: Counter,
    denied: [Counter; PHASES.len()],
}

impl Decisions {
    pub(crate) fn new() -> Self {
        let family = Family::<DecisionLabels, Counter>::default();
        let handle = |decision, phase| {
            family
                .get_or_create(&[("decision", decision), ("phase", phase)])
                .clone()
        };
        let allowed = handle("allow", "forward");
        let denied = PHASES.map(|phase| handle("deny", phase));
        Self {
            family,
            allowed,
            denied,
        }
    }

    pub(crate) fn allowed(&self) {
        self.allowed.inc();
    }

    /// A refusal in `phase`; a phase this table does not know counts as `request`, so a new
    /// [`crate::Deny`] variant is still counted before it is named here.
    pub(crate) fn denied(&self, phase: &str) {
        let at = PHASES.iter().position(|p| *p == phase).unwrap_or(0);
        if let Some(c) = self.denied.get(at) {
            c.inc();
        }
    }
}

/// One figure read at scrape time.
#[derive(Debug)]
enum Value {
    Gauge(i64),
    Ratio(f64),
    /// Named without its `_total`, which the encoder appends.
    Counter(u64),
}

#[derive(Debug)]
struct Figure {
    name: &'static str,
    help: &'static str,
    value: Value,
}

/// The figures of one scrape, taken before encoding so the registry holds no borrow.
#[derive(Debug)]
struct Figures(Vec<Figure>);

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            match f.value {
                Value::Gauge(v) => {
                    let m = ConstGauge::new(v);
                    m.encode(encoder.encode_descriptor(f.name, f.help, None, m.metric_type())?)?;
                }
                Value::Ratio(v) => {
                    let m = ConstGauge::new(v);
                    m.encode(encoder.encode_descriptor(f.name, f.help, None, m.metric_type())?)?;
                }
                Value::Counter(v) => {
                    let m = ConstCounter::new(v);
                    m.encode(encoder.encode_descriptor(f.name, f.help, None, m.metric_type())?)?;
                }
            }
        }
        Ok(())
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Gateway {
    /// The figures as they stand now.
    fn figures(&self) -> Vec<Figure> {
        let r = &self.revocations;
        let gauge = |name, help, v: i64| Figure {
            name,
            help,
            value: Value::Gauge(v),
        };
        let counter = |name, help, v: u64| Figure {
            name,
            help,
            value: Value::Counter(v),
        };
        let mut figures = vec![
            gauge(
                "warden_gateway_revocation_view_fresh",
                "1 while the revocation view is within its staleness bound",
                i64::from(r.is_fresh()),
            ),
            Figure {
                name: "warden_gateway_revocation_view_age_seconds",
                help: "time since the revocation stream last spoke (-1: never)",
                value: Value::Ratio(r.age().map_or(-1.0, |a| a.as_secs_f64())),
            },
            gauge(
                "warden_gateway_revocation_cursor",
                "sequence number of the last revocation applied",
                r.cursor(),
            ),
            gauge(
                "warden_gateway_revocation_entries",
                "revocations held in memory",
                count(r.entries()),
            ),
            counter(
                "warden_gateway_revocation_reconnects",
                "revocation stream reconnections",
                r.reconnects(),
            ),
            counter(
                "warden_gateway_audit_checkpoint_regressions",
                "authority audit checkpoints refused because their log had gone back (cut or rewritten)",
                r.checkpoint_regressions(),
            ),
            gauge(
                "warden_gateway_verified_tokens_cached",
                "verified tokens in the cache",
                count(self.tokens.len()),
            ),
            gauge(
                "warden_gateway_dpop_proofs_remembered",
                "DPoP proofs remembered against replay",
                count(self.dpop_proofs_remembered()),
            ),
            gauge(
                "warden_gateway_identities_cached",
                "identities whose decisions and internal tokens are cached",
                count(self.identities.len()),
            ),
            counter(
                "warden_gateway_audit_dropped",
                "decisions not audited on fail-open routes",
                self.audit.dropped_total(),
            ),
            gauge(
                "warden_gateway_connections_open",
                "client connections open",
                count(self.connections.open()),
            ),
            gauge(
                "warden_gateway_connections_max",
                "client connections allowed open at once",
                count(self.connections.max()),
            ),
            counter(
                "warden_gateway_connections_refused",
                "client connections answered 503 at the connection cap",
                self.connections.refused_total(),
            ),
        ];
        if let Some(log) = &self.audit_log {
            let stats = log.stats();
            figures.extend([
                gauge(
                    "warden_gateway_audit_log_writable",
                    "1 while the chained audit log can write, 0 during an outage",
                    i64::from(log.status().is_writable()),
                ),
                gauge(
                    "warden_gateway_audit_log_durable_entries",
                    "entries durable in the chained audit log",
                    i64::try_from(log.durable_seq().0).unwrap_or(i64::MAX),
                ),
                counter(
                    "warden_gateway_audit_log_outages",
                    "times the chained audit log went down",
                    stats.outages,
                ),
                counter(
                    "warden_gateway_audit_witness_failures",
                    "checkpoints a witness of the chained audit log did not take",
                    log.witness_failures(),
                ),
            ]);
        }
        if let (Some(b), Some(a)) = (&self.behaviour, &self.alerts) {
            figures.extend([
                gauge(
                    "warden_gateway_behaviour_identities",
                    "identities whose behaviour is tracked",
                    count(b.tracked()),
                ),
                counter(
                    "warden_gateway_behaviour_untracked",
                    "requests not observed because the identity table was full",
                    b.untracked_total(),
                ),
                gauge(
                    "warden_gateway_behaviour_restrictions",
                    "restrictions in force",
                    count(b.restrictions(self.now()).len()),
                ),
                counter(
                    "warden_gateway_alerts_raised",
                    "behaviour anomalies reported",
                    a.raised_total(),
                ),
                counter(
                    "warden_gateway_alerts_dropped",
                    "alerts lost to a full alert queue",
                    a.dropped_total(),
                ),
                counter(
                    "warden_gateway_alerts_delivered",
                    "alerts the webhook accepted",
                    a.delivered_total(),
                ),
                counter(
                    "warden_gateway_alerts_failed",
                    "alerts the webhook did not accept",
                    a.failed_total(),
                ),
                counter(
                    "warden_gateway_quarantine_revocations",
                    "quarantines carried out at the authority (the acting principal revoked)",
                    a.revoked_total(),
                ),
                counter(
                    "warden_gateway_quarantine_revocations_failed",
                    "quarantines the authority could not be told of (the token refused here only)",
                    a.revoke_failed_total(),
                ),
            ]);
        }
        figures
    }

    /// The exposition text of every figure and the decision counters.
    pub(crate) fn metrics_text(&self) -> String {
        let mut registry = Registry::default();
        registry.register(
            "warden_gateway_decisions",
            "pipeline decisions, by decision and the phase that made it",
            self.decisions.family.clone(),
        );
        registry.register_collector(Box::new(Figures(self.figures())));
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            // Writing to a String fails only if an encoder does; say so rather than answer
            // half a scrape.
            tracing::error!(error = %e, "metrics encoding failed");
            text.clear();
        }
        text
    }

    /// `GET /metrics`.
    pub(crate) fn metrics(&self) -> Response<Body> {
        let mut res = Response::new(full(self.metrics_text()));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decision_lands_on_its_own_label_set() {
        let d = Decisions::new();
        d.allowed();
        d.denied("scope");
        d.denied("scope");
        d.denied("no-such-phase");
        let mut registry = Registry::default();
        registry.register("warden_gateway_decisions", "help", d.family.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let line = |labels: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("warden_gateway_decisions_total{{{labels}}} "))
                })
                .map(str::to_owned)
        };
        assert_eq!(
            line("decision=\"allow\",phase=\"forward\"").as_deref(),
            Some("1")
        );
        assert_eq!(
            line("decision=\"deny\",phase=\"scope\"").as_deref(),
            Some("2")
        );
        assert_eq!(
            line("decision=\"deny\",phase=\"request\"").as_deref(),
            Some("1")
        );
        // Made at start: a phase nothing was refused in reads 0, not absent.
        assert_eq!(
            line("decision=\"deny\",phase=\"policy\"").as_deref(),
            Some("0")
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
