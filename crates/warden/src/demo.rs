//! `warden demo`: Warden end to end on temporary ports and a temporary data directory —
//! an agent's own token, then an agent acting for a person (delegation grant, token
//! exchange), a revocation that ends it, and the audit log that recorded it all. Each step
//! prints what it did and whether it held; the exit code is 0 only if every step held.

use std::net::SocketAddr;

use anyhow::{bail, Context as _};
use serde_json::Value;
use warden_api::admin::{Call, CreateGrant, CreatePrincipal, CreateTenant, Reason};
use warden_core::jwks::{Jwk, JwkSet};
use warden_core::token::verify_access_token;
use warden_core::{KeySet, SigningKey, Validation};

use crate::admin_client::AdminClient;
use crate::cmd::{unix_now, Outcome};
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

pub async fn run() -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
    println!("Warden demo: data in {}\n", dir.path().display());
    let running = serve::start(
        dir.path(),
        ServeOptions {
            database: None,
            audit_stdout: false,
            witnesses: serve::Witnesses::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: None,
            token_ttl_secs: None,
            config: None,
            gateway_listen: None,
            gateway_ops_listen: None,
            max_connections: None,
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
        .and_then(|m| {
            crate::json::field(m, "token_endpoint")
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let jwks_uri = meta
        .as_ref()
        .ok()
        .and_then(|m| {
            crate::json::field(m, "jwks_uri")
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    steps.record(
        "discovery: RFC 8414 metadata",
        meta.map(|m| {
            format!(
                "issuer {}\ntoken_endpoint {token_endpoint}\njwks_uri {jwks_uri}",
                crate::json::field(&m, "issuer")
            )
        }),
    );

    let tenant = admin
        .call(Call::CreateTenant(CreateTenant {
            name: "demo".into(),
            max_token_ttl_secs: None,
        }))
        .await;
    let tenant_id = tenant
        .as_ref()
        .ok()
        .and_then(|t| crate::json::field(t, "id").as_str().map(str::to_owned))
        .unwrap_or_default();
    steps.record(
        "tenant `demo` created",
        tenant.map(|t| format!("id {}", crate::json::field(&t, "id"))),
    );

    let agent_key = SigningKey::generate(&mut rand_core::OsRng);
    let agent = admin
        .call(Call::CreatePrincipal(
            tenant_id.clone(),
            CreatePrincipal {
                kind: "agent".into(),
                name: "mail-agent".into(),
                owner: None,
                scopes: Some("crm:contacts:read email:send".into()),
                audiences: None,
                public_key: Some(Jwk::from_public_key(&agent_key.public_key(), None)),
            },
        ))
        .await;
    let agent_id = agent
        .as_ref()
        .ok()
        .and_then(|a| crate::json::field(a, "id").as_str().map(str::to_owned))
        .unwrap_or_default();
    steps.record(
        "agent created with its own Ed25519 key (private key never leaves the agent)",
        agent.map(|a| {
            format!(
                "id {}\nscope ceiling {}",
                crate::json::field(&a, "id"),
                crate::json::field(&a, "scopes")
            )
        }),
    );

    let issued = async {
        let assertion = client_assertion(&agent_id, &token_endpoint, &agent_key, unix_now())?;
        match request_token(
            &http,
            &token_endpoint,
            &assertion,
            Some("crm:contacts:read"),
            None,
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
        match request_token(&http, &token_endpoint, &first_assertion, None, None, None).await? {
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

    delegation(
        &mut steps,
        &http,
        &admin,
        &tenant_id,
        &agent_id,
        &agent_key,
        &token_endpoint,
        &url,
    )
    .await;

    let ops = ops_endpoints(&http, &url, &running.ops_url).await;
    steps.record(
        "ops endpoints on their own listener: ready, counting, and not public",
        ops,
    );

    let _ = running.shutdown.send(());
    let _ = running.task.await;
    let audit = (|| {
        let text = std::fs::read_to_string(dir.path().join("audit.pub.jwk"))?;
        let jwk: Jwk = serde_json::from_str(&text)?;
        let keys = warden_audit::KeyRing::new().with(jwk.to_public_key()?);
        let report = warden_audit::verify_dir(&dir.path().join("audit"), &keys)?;
        anyhow::Ok(format!(
            "{} entries, {} signed checkpoint(s); head {}",
            report.entries,
            report.checkpoints,
            report.head.to_b64()
        ))
    })();
    steps.record(
        "audit log verifies: hash chain and signed checkpoints (`warden audit verify`)",
        audit,
    );
    println!();
    if steps.failed == 0 {
        println!("All {} steps held.", steps.n);
        Ok(Outcome::Done)
    } else {
        println!("{} of {} steps failed.", steps.failed, steps.n);
        Ok(Outcome::CheckFailed)
    }
}

/// A person delegates to the agent, the agent acts for them, and revoking the person ends it.
#[expect(
    clippy::too_many_arguments,
    reason = "one step of the walk-through, with everything it shows"
)]
async fn delegation(
    steps: &mut Steps,
    http: &reqwest::Client,
    admin: &AdminClient,
    tenant_id: &str,
    agent_id: &str,
    agent_key: &SigningKey,
    token_endpoint: &str,
    url: &str,
) {
    let user_key = SigningKey::generate(&mut rand_core::OsRng);
    let user = async {
        let u = admin
            .call(Call::CreatePrincipal(
                tenant_id.to_owned(),
                CreatePrincipal {
                    kind: "user".into(),
                    name: "ann".into(),
                    owner: None,
                    scopes: Some("crm:contacts:read crm:contacts:write".into()),
                    audiences: None,
                    public_key: Some(Jwk::from_public_key(&user_key.public_key(), None)),
                },
            ))
            .await?;
        let id = crate::json::field(&u, "id")
            .as_str()
            .unwrap_or_default()
            .to_owned();
        admin
            .call(Call::CreateGrant(CreateGrant {
                user: id.clone(),
                agent: agent_id.to_owned(),
                scopes: "crm:contacts:read crm:contacts:write".into(),
                expires_in: None,
            }))
            .await?;
        let assertion = client_assertion(&id, token_endpoint, &user_key, unix_now())?;
        match request_token(http, token_endpoint, &assertion, None, None, None).await? {
            TokenOutcome::Issued(t) => anyhow::Ok((id, t.access_token)),
            TokenOutcome::Refused {
                error, description, ..
            } => bail!("{error}: {description}"),
        }
    }
    .await;
    let (user_id, user_token) = match &user {
        Ok((id, t)) => (id.clone(), t.clone()),
        Err(_) => (String::new(), String::new()),
    };
    steps.record(
        "user `ann` (own key) grants mail-agent to act for her, and signs in",
        user.map(|(id, _)| format!("user {id}; grant: crm:contacts:read crm:contacts:write")),
    );

    let form = |extra: &[(&str, &str)]| -> anyhow::Result<Vec<(String, String)>> {
        let assertion = client_assertion(agent_id, token_endpoint, agent_key, unix_now())?;
        let mut f = vec![
            (
                "client_assertion_type".to_owned(),
                crate::oauth_client::JWT_BEARER.to_owned(),
            ),
            ("client_assertion".to_owned(), assertion),
        ];
        f.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Ok(f)
    };
    let post = |path: String, body: Vec<(String, String)>| async move {
        let v: Value = http
            .post(format!("{url}{path}"))
            .form(&body)
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(v)
    };
    let exchanged = async {
        let v = post(
            "/oauth2/token".into(),
            form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("subject_token", &user_token),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
            ])?,
        )
        .await?;
        let Some(t) = crate::json::field(&v, "access_token").as_str() else { bail!("exchange refused: {v}") };
        let claims: warden_core::AccessClaims =
            warden_core::jws::UnverifiedToken::parse(t)?.claims_unverified()?;
        let actor = claims.act.as_ref().map(|a| a.sub.as_str());
        if claims.sub != user_id || actor != Some(agent_id) || claims.scope != "crm:contacts:read" {
            bail!("unexpected delegated token: {claims:?}");
        }
        anyhow::Ok((t.to_owned(), format!("sub {} act {{sub: {agent_id}}} scope `{}` — ann's ∩ the agent's ceiling ∩ the grant", claims.sub, claims.scope)))
    }
    .await;
    let delegated = exchanged
        .as_ref()
        .map(|(t, _)| t.clone())
        .unwrap_or_default();
    steps.record(
        "agent exchanges ann's token to act for her (RFC 8693): never more than she holds",
        exchanged.map(|(_, d)| d),
    );

    let introspect = |token: String| async move {
        let v = post("/oauth2/introspect".into(), form(&[("token", &token)])?).await?;
        anyhow::Ok(crate::json::field(&v, "active").as_bool() == Some(true))
    };
    let revoked = async {
        if !introspect(delegated.clone()).await? {
            bail!("the delegated token is not active before the revocation");
        }
        admin
            .call(Call::RevokePrincipal(
                user_id.clone(),
                Reason {
                    reason: Some("demo".into()),
                },
            ))
            .await?;
        if introspect(delegated.clone()).await? {
            bail!("the delegated token is still active after ann was revoked");
        }
        anyhow::Ok("introspection (RFC 7662): active before, inactive after; gateways get the same event over the revocation stream".to_owned())
    }
    .await;
    steps.record(
        "revoking ann ends the agent's delegated token too (cascade)",
        revoked,
    );
}

/// `/readyz` and `/metrics` answer on the ops listener, and `/metrics` is not on the public
/// port.
async fn ops_endpoints(http: &reqwest::Client, url: &str, ops: &str) -> anyhow::Result<String> {
    let ready = http.get(format!("{ops}/readyz")).send().await?;
    if ready.status() != reqwest::StatusCode::OK {
        bail!("{ops}/readyz answered {}", ready.status());
    }
    let metrics = http
        .get(format!("{ops}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let issued = metrics
        .lines()
        .find(|l| {
            l.starts_with("warden_authority_tokens_issued_total{grant_type=\"client_credentials\"}")
        })
        .unwrap_or("no issuance counted");
    let public = http.get(format!("{url}/metrics")).send().await?.status();
    if public != reqwest::StatusCode::NOT_FOUND {
        bail!("{url}/metrics answered {public}, not 404");
    }
    Ok(format!("{ops}/readyz 200, {url}/metrics 404\n{issued}"))
}

async fn discover(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let m: Value = http
        .get(format!("{url}/.well-known/oauth-authorization-server"))
        .send()
        .await?
        .json()
        .await?;
    if crate::json::field(&m, "issuer").as_str() != Some(url) {
        bail!(
            "metadata issuer {} is not {url}",
            crate::json::field(&m, "issuer")
        );
    }
    Ok(m)
}
