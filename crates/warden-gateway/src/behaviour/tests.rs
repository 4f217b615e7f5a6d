//! The detectors and the state machine, without a gateway.

use super::*;

const T: i64 = 1_900_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| unreachable!())
}

fn obs<'a>(method: &'a str, route: usize, client: &'a str) -> Observation<'a> {
    Observation {
        identity: "agt_A",
        jti: "j1",
        token_expires: T + 100_000,
        route,
        route_prefix: "/crm/",
        method,
        client_ip: ip(client),
    }
}

fn cfg() -> BehaviourConfig {
    BehaviourConfig {
        burst_factor: 4.0,
        burst_min_requests: 10,
        mature_after_windows: 5,
        denied_storm: 5,
        on_velocity: Response::Throttle,
        on_new_network: Response::Downgrade,
        on_novelty: Response::Alert,
        on_denied_storm: Response::Quarantine,
        ..BehaviourConfig::default()
    }
}

/// `windows` windows of `per_window` GETs on route 0 from one network.
fn steady(b: &Behaviour, windows: i64, per_window: u32) -> i64 {
    let mut now = T;
    for _ in 0..windows {
        for _ in 0..per_window {
            let a = b.observe(&obs("GET", 0, "203.0.113.7"), now);
            assert_eq!(a.verdict, Verdict::Allow);
            assert!(a.findings.is_empty(), "{:?}", a.findings);
        }
        now += 60;
    }
    now
}

#[test]
fn a_burst_over_the_learned_baseline_throttles_from_the_crossing_request() {
    let b = Behaviour::new(cfg());
    let now = steady(&b, 8, 3);
    // Baseline 3: the 13th request is more than 4 × 3.
    for i in 1..=12 {
        let a = b.observe(&obs("GET", 0, "203.0.113.7"), now);
        assert_eq!((i, a.verdict), (i, Verdict::Allow));
    }
    let a = b.observe(&obs("GET", 0, "203.0.113.7"), now);
    assert_eq!(a.findings.len(), 1);
    assert_eq!(a.findings[0].anomaly, Anomaly::Velocity);
    assert!(matches!(a.verdict, Verdict::Throttled { .. }));
    // Next second: one request per second.
    let a = b.observe(&obs("GET", 0, "203.0.113.7"), now + 1);
    assert_eq!(a.verdict, Verdict::Allow);
    assert!(a.findings.is_empty(), "reported once per window");
    let a = b.observe(&obs("GET", 0, "203.0.113.7"), now + 1);
    assert!(matches!(a.verdict, Verdict::Throttled { .. }));
    assert_eq!(b.restrictions(now + 1).len(), 1);
    assert_eq!(b.lift("agt_A", now + 1).len(), 1);
    assert_eq!(
        b.observe(&obs("GET", 0, "203.0.113.7"), now + 1).verdict,
        Verdict::Allow
    );
    assert!(b.restrictions(now + 1).is_empty());
}

#[test]
fn an_immature_identity_is_only_held_to_the_absolute_cap() {
    let b = Behaviour::new(BehaviourConfig {
        max_requests_per_window: Some(50),
        ..cfg()
    });
    for _ in 0..50 {
        assert!(b
            .observe(&obs("GET", 0, "203.0.113.7"), T)
            .findings
            .is_empty());
    }
    let a = b.observe(&obs("GET", 0, "203.0.113.7"), T);
    assert_eq!(a.findings[0].anomaly, Anomaly::Velocity);
    assert!(a.findings[0].detail.contains("cap of 50"));
}

#[test]
fn a_flagged_window_does_not_become_the_baseline() {
    let b = Behaviour::new(BehaviourConfig {
        on_velocity: Response::Alert,
        ..cfg()
    });
    let mut now = steady(&b, 8, 3);
    for _ in 0..200 {
        b.observe(&obs("GET", 0, "203.0.113.7"), now);
    }
    now += 60;
    // Still judged against a baseline of 3, not 200.
    let found: usize = (0..13)
        .map(|_| b.observe(&obs("GET", 0, "203.0.113.7"), now).findings.len())
        .sum();
    assert_eq!(found, 1);
}

#[test]
fn idle_windows_decay_the_baseline() {
    let mut s = IdentityState::new(T);
    let c = cfg();
    s.count = 10;
    s.roll(T + 60, &c);
    assert!((s.baseline - 10.0).abs() < 1e-9);
    s.count = 0;
    s.roll(T + 60 + 60 * 3, &c);
    // One empty window folded, two idle ones decayed: 10 × 0.8³.
    assert!(
        (s.baseline - 10.0 * 0.8f64.powi(3)).abs() < 1e-9,
        "{}",
        s.baseline
    );
    assert_eq!(s.windows, 4);
}

#[test]
fn a_new_network_for_a_mature_identity_triggers_its_response() {
    let b = Behaviour::new(cfg());
    // Learned while immature.
    assert!(b
        .observe(&obs("POST", 0, "203.0.113.7"), T)
        .findings
        .is_empty());
    let now = steady(&b, 6, 2);
    // Same /24: nothing.
    assert!(b
        .observe(&obs("GET", 0, "203.0.113.200"), now)
        .findings
        .is_empty());
    let a = b.observe(&obs("GET", 0, "198.51.100.9"), now);
    assert_eq!(a.findings.len(), 1);
    assert_eq!(a.findings[0].anomaly, Anomaly::NewNetwork);
    assert!(a.findings[0].detail.contains("198.51.100.0/24"));
    assert!(matches!(
        a.findings[0].imposed,
        Some(Imposed::Downgrade { .. })
    ));
    assert_eq!(a.verdict, Verdict::Allow, "GET is safe");
    let a = b.observe(&obs("POST", 0, "198.51.100.9"), now);
    assert!(matches!(a.verdict, Verdict::ReadOnly { .. }));
    assert!(a.findings.is_empty(), "the network is known now");
    // Downgrades end on their own.
    let later = now + 901;
    assert_eq!(
        b.observe(&obs("POST", 0, "198.51.100.9"), later).verdict,
        Verdict::Allow
    );
}

#[test]
fn network_keys_are_slash_24_and_slash_48() {
    assert_eq!(network_key(ip("10.1.2.3")), network_key(ip("10.1.2.250")));
    assert_ne!(network_key(ip("10.1.2.3")), network_key(ip("10.1.3.3")));
    assert_eq!(
        network_key(ip("::ffff:10.1.2.3")),
        network_key(ip("10.1.2.9"))
    );
    assert_eq!(
        network_key(ip("2001:db8:1::1")),
        network_key(ip("2001:db8:1:ffff::2"))
    );
    assert_ne!(
        network_key(ip("2001:db8:1::1")),
        network_key(ip("2001:db8:2::1"))
    );
    assert_eq!(network_name(ip("2001:db8:1::1")), "2001:db8:1::/48");
}

#[test]
fn novelty_counts_only_once_the_baseline_is_mature() {
    let b = Behaviour::new(cfg());
    // While learning, new routes are simply learned.
    assert!(b
        .observe(&obs("POST", 1, "203.0.113.7"), T)
        .findings
        .is_empty());
    let now = steady(&b, 6, 2);
    assert!(b
        .observe(&obs("POST", 1, "203.0.113.7"), now)
        .findings
        .is_empty());
    let a = b.observe(&obs("DELETE", 1, "203.0.113.7"), now);
    assert_eq!(a.findings[0].anomaly, Anomaly::Novelty);
    assert_eq!(a.findings[0].imposed, None, "alert only");
    assert_eq!(a.verdict, Verdict::Allow);
    assert!(b
        .observe(&obs("DELETE", 1, "203.0.113.7"), now)
        .findings
        .is_empty());
}

#[test]
fn a_denied_storm_quarantines_the_token_and_it_is_refused_locally() {
    let b = Behaviour::new(cfg());
    for _ in 0..4 {
        assert!(b.record_denial("agt_A", "j1", T + 500, T).is_none());
    }
    let f = b.record_denial("agt_A", "j1", T + 500, T);
    let f = f.unwrap_or_else(|| unreachable!("storm expected"));
    assert_eq!(f.anomaly, Anomaly::DeniedStorm);
    assert_eq!(
        f.imposed,
        Some(Imposed::Quarantine {
            jti: "j1".into(),
            until: T + 500
        })
    );
    assert!(b.record_denial("agt_A", "j1", T + 500, T).is_none(), "once");
    assert_eq!(
        b.observe(&obs("GET", 0, "203.0.113.7"), T).verdict,
        Verdict::Quarantined
    );
    // Another token of the same identity is not quarantined.
    let other = Observation {
        jti: "j2",
        ..obs("GET", 0, "203.0.113.7")
    };
    assert_eq!(b.observe(&other, T).verdict, Verdict::Allow);
    // Past the token's expiry the entry is forgotten.
    assert!(b.restrictions(T + 500).is_empty());
}

#[test]
fn off_disables_a_detector() {
    let b = Behaviour::new(BehaviourConfig {
        on_denied_storm: Response::Off,
        ..cfg()
    });
    for _ in 0..50 {
        assert!(b.record_denial("agt_A", "j1", T + 500, T).is_none());
    }
}

#[test]
fn memory_is_bounded_and_idle_identities_are_swept() {
    let b = Behaviour::new(BehaviourConfig {
        max_identities: 16,
        idle_secs: 100,
        ..cfg()
    });
    let names: Vec<String> = (0..200).map(|i| format!("agt_{i}")).collect();
    for n in &names {
        b.observe(
            &Observation {
                identity: n,
                ..obs("GET", 0, "203.0.113.7")
            },
            T,
        );
    }
    assert!(b.tracked() <= 16, "{}", b.tracked());
    assert!(b.untracked_total() > 0);
    // A restricted identity survives the sweep; idle ones do not.
    let tracked = names
        .iter()
        .find(|n| b.shard(n).contains_key(n.as_str()))
        .cloned()
        .unwrap_or_default();
    for _ in 0..5 {
        b.record_denial(&tracked, "j1", T + 10_000, T);
    }
    b.sweep(T + 101);
    assert_eq!(b.tracked(), 1);
    assert_eq!(b.restrictions(T + 101).len(), 1);
}
