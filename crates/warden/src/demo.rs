//! `warden demo`: the foundation end to end on temporary ports and a temporary data
//! directory. Each step prints what it did and whether it held; the exit code is 0 only if
//! every step held.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use warden_core::jwks::{Jwk, JwkSet};
use warden_core::token::verify_access_token;
use warden_core::{KeySet, SigningKey, Validation};

use crate::admin_client::AdminClient;
use crate::cli::unix_now;
use crate::oauth_client::{client_assertion, request_token, TokenOutcome};
use crate::serve::{self, ServeOptions};

struct Steps {
    n: usize,
    failed: usize,
}

impl Steps {
    fn record(&mut self, title: &str, outcome: anyhow::Result<String>) {
        self.n += 1;
        match outcome {
            Ok(detail) => {
                println!("[{}] ok    {title}", self.n);
                for line in detail.lines() {
                    println!("          {line}");
                }
            }
            Err(e) => {
                self.failed += 1;
                println!("[{}] FAIL  {title}\n          {e:#}", self.n);
            }
        }
    }
}

pub async fn run() -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
    println!("Warden demo: data in {}\n", dir.path().display());
    let running = serve::start(
        dir.path(),
        ServeOptions {
            database: None,
            audit_stdout: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: None,
            token_ttl_secs: None,
            config: None,
            gateway_listen: None,
        },
    )
    .await?;
    let url = running.authority_url.clone();
    let admin = AdminClient::new(&url, &running.admin_token);
    let http = reqwest::Client::new();
    let mut steps = Steps { n: 0, failed: 0 };
    steps.record("authority started on a temporary port", Ok(url.clone()));

    let meta = discover(&http, &url).await;
    let token_endpoint = meta
        .as_ref()
        .ok()
        .and_then(|m| m["token_endpoint"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let jwks_uri = meta
        .as_ref()
        .ok()
        .and_then(|m| m["jwks_uri"].as_str().map(str::to_owned))
        .unwrap_or_default();
    steps.record(
        "discovery: RFC 8414 metadata",
        meta.map(|m| {
            format!(
                "issuer {}\ntoken_endpoint {token_endpoint}\njwks_uri {jwks_uri}",
                m["issuer"]
            )
        }),
    );

    let tenant = admin
        .post("/tenants", Some(&json!({ "name": "demo" })))
        .await;
    let tenant_id = tenant
        .as_ref()
        .ok()
        .and_then(|t| t["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    steps.record(
        "tenant `demo` created",
        tenant.map(|t| format!("id {}", t["id"])),
    );

    let agent_key = SigningKey::generate(&mut rand_core::OsRng);
    let agent = admin
        .post(
            &format!("/tenants/{tenant_id}/principals"),
            Some(&json!({
                "kind": "agent",
                "name": "mail-agent",
                "scopes": "crm:contacts:read email:send",
                "public_key": Jwk::from_public_key(&agent_key.public_key(), None),
            })),
        )
        .await;
    let agent_id = agent
        .as_ref()
        .ok()
        .and_then(|a| a["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    steps.record(
        "agent created with its own Ed25519 key (private key never leaves the agent)",
        agent.map(|a| format!("id {}\nscope ceiling {}", a["id"], a["scopes"])),
    );

    let issued = async {
        let assertion = client_assertion(&agent_id, &token_endpoint, &agent_key, unix_now())?;
        match request_token(
            &http,
            &token_endpoint,
            &assertion,
            Some("crm:contacts:read"),
            None,
        )
        .await?
        {
            TokenOutcome::Issued(t) => Ok((t, assertion)),
            TokenOutcome::Refused {
                error, description, ..
            } => bail!("{error}: {description}"),
        }
    }
    .await;
    let (token, first_assertion) = match &issued {
        Ok((t, a)) => (t.access_token.clone(), a.clone()),
        Err(_) => (String::new(), String::new()),
    };
    steps.record(
        "token obtained: client_credentials with private_key_jwt (RFC 7523)",
        issued.map(|(t, _)| {
            format!(
                "scope `{}`, expires in {} s\n{}…",
                t.scope,
                t.expires_in,
                &t.access_token.chars().take(60).collect::<String>()
            )
        }),
    );

    let verified = async {
        let jwks: JwkSet = http.get(&jwks_uri).send().await?.json().await?;
        let keys = KeySet::from_jwks(&jwks)?;
        let validation = Validation::access_token(&url, vec!["warden".into()]);
        let t = verify_access_token(&token, &keys, &validation, unix_now())?;
        let c = t.claims();
        if c.sub != agent_id || c.scope != "crm:contacts:read" {
            bail!("claims do not name the agent and the granted scope: {c:?}");
        }
        Ok(format!(
            "{} keys published; verified with kid {}\nsub {}  aud {:?}  scope `{}`  exp-iat {} s",
            keys.len(),
            t.kid().unwrap_or("?"),
            c.sub,
            c.aud,
            c.scope,
            c.exp - c.iat
        ))
    }
    .await;
    steps.record(
        "token verified against the published JWKS (EdDSA, strict)",
        verified,
    );

    let refused = async {
        let assertion = client_assertion(&agent_id, &token_endpoint, &agent_key, unix_now())?;
        match request_token(
            &http,
            &token_endpoint,
            &assertion,
            Some("crm:contacts:delete"),
            None,
        )
        .await?
        {
            TokenOutcome::Issued(_) => bail!("a scope outside the ceiling was granted"),
            TokenOutcome::Refused {
                status,
                error,
                description,
            } if error == "invalid_scope" => Ok(format!("{status} {error}: {description}")),
            TokenOutcome::Refused {
                error, description, ..
            } => {
                bail!("refused for the wrong reason: {error}: {description}")
            }
        }
    }
    .await;
    steps.record(
        "scope outside the ceiling (crm:contacts:delete) refused",
        refused,
    );

    let replay = async {
        match request_token(&http, &token_endpoint, &first_assertion, None, None).await? {
            TokenOutcome::Issued(_) => bail!("a replayed client assertion was accepted"),
            TokenOutcome::Refused {
                status,
                error,
                description,
            } if error == "invalid_client" => Ok(format!("{status} {error}: {description}")),
            TokenOutcome::Refused {
                error, description, ..
            } => {
                bail!("refused for the wrong reason: {error}: {description}")
            }
        }
    }
    .await;
    steps.record(
        "replayed client assertion refused (jti is single use)",
        replay,
    );

    let _ = running.shutdown.send(());
    let _ = running.task.await;
    println!();
    if steps.failed == 0 {
        println!("All {} steps held.", steps.n);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} of {} steps failed.", steps.failed, steps.n);
        Ok(ExitCode::FAILURE)
    }
}

async fn discover(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let m: Value = http
        .get(format!("{url}/.well-known/oauth-authorization-server"))
        .send()
        .await?
        .json()
        .await?;
    if m["issuer"].as_str() != Some(url) {
        bail!("metadata issuer {} is not {url}", m["issuer"]);
    }
    Ok(m)
}
