//! Parsing and validation of `[gateway]`, with the line of every error.

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
    let c = GatewayConfig::parse(GOOD, "warden.toml", None).unwrap_or_else(|e| unreachable!("{e}"));
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
    for workers in ["0", "257"] {
        let bad = GOOD.replace("[gateway]\n", &format!("[gateway]\nworkers = {workers}\n"));
        let e = error_of(&bad);
        assert!(
            e.starts_with("w.toml:2:") && e.contains("workers must be 1 to 256"),
            "{e}"
        );
    }
}

#[test]
fn max_connections_has_a_default_and_a_range() {
    let c = GatewayConfig::parse(GOOD, "w.toml", None).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(c.max_connections, DEFAULT_MAX_CONNECTIONS);
    let twenty = GOOD.replace("[gateway]\n", "[gateway]\nmax_connections = 20\n");
    let c = GatewayConfig::parse(&twenty, "w.toml", None).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(c.max_connections, 20);
    for bad in ["0", "1000001"] {
        let bad = GOOD.replace(
            "[gateway]\n",
            &format!("[gateway]\nmax_connections = {bad}\n"),
        );
        let e = error_of(&bad);
        assert!(
            e.starts_with("w.toml:2:") && e.contains("max_connections must be 1 to 1000000"),
            "{e}"
        );
    }
}

#[test]
fn a_route_tenant_is_kept_with_its_line_until_confirmed() {
    let named = GOOD.replace(
        "audience = \"crm\"\n",
        "audience = \"crm\"\ntenant = \"acme\"\n",
    );
    let c = GatewayConfig::parse(&named, "w.toml", None).unwrap_or_else(|e| unreachable!("{e}"));
    let crm = c.route_for("/crm/x").unwrap_or_else(|| unreachable!());
    assert_eq!(
        crm.tenant,
        Some(RouteTenant::Written {
            value: "acme".into(),
            origin: "w.toml".into(),
            line: 10,
        })
    );
    // Unconfirmed, it serves no tenant at all; the other route serves every tenant.
    assert_eq!(crm.tenant_id(), None);
    assert!(!crm.serves_tenant("acme"));
    let admin = c
        .route_for("/crm/admin/x")
        .unwrap_or_else(|| unreachable!());
    assert!(admin.serves_tenant("tnt_anything"));
    let mut confirmed = crm.clone();
    confirmed.tenant = Some(RouteTenant::Id("tnt_A".into()));
    assert!(confirmed.serves_tenant("tnt_A") && !confirmed.serves_tenant("tnt_B"));
    assert_eq!(confirmed.tenant_id(), Some("tnt_A"));

    let empty = GOOD.replace(
        "audience = \"crm\"\n",
        "audience = \"crm\"\ntenant = \" \"\n",
    );
    let e = error_of(&empty);
    assert!(
        e.starts_with("w.toml:10:") && e.contains("tenant must be"),
        "{e}"
    );
}

#[test]
fn workers_default_to_one_per_cpu() {
    let c = GatewayConfig::parse(GOOD, "w.toml", None).unwrap_or_else(|e| unreachable!("{e}"));
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(c.workers, cpus);
    let three = GOOD.replace("[gateway]\n", "[gateway]\nworkers = 3\n");
    let c = GatewayConfig::parse(&three, "w.toml", None).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(c.workers, 3);
}

#[test]
fn behaviour_is_off_by_default_and_strict_when_on() {
    let c = GatewayConfig::parse(GOOD, "w.toml", None).unwrap_or_else(|e| unreachable!("{e}"));
    assert!(c.behaviour.is_none());
    assert_eq!(c.routes.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1]);
    let on = format!(
        "{GOOD}\n[gateway.behaviour]\nenabled = true\nvelocity = \"downgrade\"\n\
         alert_webhook = \"http://127.0.0.1:9999/hook\"\n"
    );
    let b = GatewayConfig::parse(&on, "w.toml", None)
        .unwrap_or_else(|e| unreachable!("{e}"))
        .behaviour
        .unwrap_or_else(|| unreachable!("enabled"));
    assert_eq!(b.on_velocity, Response::Downgrade);
    assert_eq!(b.on_denied_storm, Response::Throttle, "default");
    assert_eq!(b.window_secs, 60);
    let disabled = format!("{GOOD}\n[gateway.behaviour]\nwindow_secs = 10\n");
    assert!(GatewayConfig::parse(&disabled, "w.toml", None)
        .unwrap_or_else(|e| unreachable!("{e}"))
        .behaviour
        .is_none());

    let lines = GOOD.lines().count();
    let typo = format!("{GOOD}\n[gateway.behaviour]\nenabled = true\nvelocty = \"alert\"\n");
    let e = error_of(&typo);
    assert!(
        e.starts_with(&format!("w.toml:{}:", lines + 4)) && e.contains("velocty"),
        "{e}"
    );
    let bad = format!("{GOOD}\n[gateway.behaviour]\nenabled = true\nnovelty = \"ban\"\n");
    let e = error_of(&bad);
    assert!(
        e.starts_with(&format!("w.toml:{}:", lines + 4)) && e.contains("ban"),
        "{e}"
    );
    let https =
        format!("{GOOD}\n[gateway.behaviour]\nenabled = true\nalert_webhook = \"https://x\"\n");
    let e = error_of(&https);
    assert!(
        e.starts_with(&format!("w.toml:{}:", lines + 2)) && e.contains("alert_webhook"),
        "{e}"
    );
    for (key, value) in [
        ("ewma_alpha", "0.0"),
        ("burst_factor", "1.0"),
        ("window_secs", "0"),
        ("throttle_per_sec", "0"),
        ("max_requests_per_window", "0"),
        ("alert_queue", "0"),
    ] {
        let bad = format!("{GOOD}\n[gateway.behaviour]\nenabled = true\n{key} = {value}\n");
        assert!(error_of(&bad).contains(key), "{key}: {}", error_of(&bad));
    }
}

#[test]
fn the_ops_listener_defaults_to_loopback_and_takes_any_address() {
    let c = GatewayConfig::parse(GOOD, "warden.toml", None).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(
        c.ops_listen,
        "127.0.0.1:9901".parse().unwrap_or_else(|_| unreachable!())
    );
    assert!(c.ops_listen.ip().is_loopback());
    let text = GOOD.replace(
        "listen = \"127.0.0.1:8443\"",
        "listen = \"127.0.0.1:8443\"\nops_listen = \"127.0.0.1:0\"",
    );
    let c =
        GatewayConfig::parse(&text, "warden.toml", None).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(c.ops_listen.port(), 0);
    let bad = GOOD.replace(
        "listen = \"127.0.0.1:8443\"",
        "listen = \"127.0.0.1:8443\"\nops_listen = \"loopback\"",
    );
    assert!(GatewayConfig::parse(&bad, "warden.toml", None).is_err());
}
