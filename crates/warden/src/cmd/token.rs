//! The agent's side: `warden keygen` makes its key pair, `warden token` signs a client
//! assertion with it and prints the access token, `warden dpop-proof` makes the proofs that
//! accompany a DPoP-bound token. None of them uses the admin token.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;
use warden_authority::data_dir::DataDir;

use super::{print, unix_now, Common, Outcome};
use crate::keyfile;
use crate::oauth_client::{discover_token_endpoint, obtain_token, Client};

#[derive(Debug, clap::Args)]
pub(super) struct DpopProofArgs {
    /// The key the token is bound to (private JWK, as `warden keygen` writes).
    #[arg(long)]
    key: PathBuf,
    #[arg(long, default_value = "GET")]
    method: String,
    /// The request's URL as the client addresses it (query ignored).
    #[arg(long)]
    url: String,
    /// The access token the proofs accompany (their `ath`).
    #[arg(long)]
    token: Option<String>,
    /// How many distinct proofs (each is single-use), e.g. for load tests.
    #[arg(long, default_value_t = 1)]
    count: usize,
}

#[derive(Debug, clap::Args)]
pub(super) struct KeygenArgs {
    /// Private key file to create.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub(super) struct TokenArgs {
    #[arg(long)]
    client_id: String,
    /// Private key file (as written by `warden keygen`).
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    scope: Option<String>,
    #[arg(long)]
    resource: Option<String>,
    /// Obtain this many distinct tokens (one per line), e.g. for load tests.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Bind the token to this key (DPoP, RFC 9449): a private JWK as `warden keygen` writes.
    #[arg(long)]
    dpop_key: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// Prints `count` proofs, one per line.
pub(super) fn dpop_proof(args: DpopProofArgs) -> anyhow::Result<Outcome> {
    let DpopProofArgs {
        key,
        method,
        url,
        token,
        count,
    } = args;
    let key = keyfile::read_private(&key)?;
    if warden_core::dpop::normalize_htu(&url).is_none() {
        anyhow::bail!("--url `{url}` must be an absolute http(s) URL");
    }
    let method = method.to_ascii_uppercase();
    let now = unix_now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        let proof = crate::oauth_client::dpop_proof(&key, &method, &url, token.as_deref(), now)?;
        writeln!(out, "{proof}")?;
    }
    out.flush()?;
    Ok(Outcome::Done)
}

/// Writes the private key (mode 0600) and the public key beside it, as `FILE.pub`.
pub(super) fn keygen(args: KeygenArgs) -> anyhow::Result<Outcome> {
    let KeygenArgs { out, common } = args;
    let public_path = public_path_for(&out);
    let jwk = keyfile::generate(&out, &public_path)?;
    if common.json {
        print(
            &json!({ "private_key_file": out, "public_key_file": public_path, "public_key": jwk }),
            true,
        );
    } else {
        println!(
            "private key: {} (mode 0600; keep it with the agent)",
            out.display()
        );
        println!("public key:  {}", public_path.display());
    }
    Ok(Outcome::Done)
}

fn public_path_for(private: &Path) -> PathBuf {
    let mut name = private
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".pub");
    private.with_file_name(name)
}

/// One token, or with `--count N` N distinct tokens one per line.
pub(super) async fn token(args: TokenArgs) -> anyhow::Result<Outcome> {
    let TokenArgs {
        client_id,
        key,
        scope,
        resource,
        count,
        dpop_key,
        common,
    } = args;
    let info = DataDir::existing(&common.data_dir).server_info()?;
    let http = reqwest::Client::new();
    let endpoint = discover_token_endpoint(&http, &info.authority_url).await?;
    let key = std::sync::Arc::new(keyfile::read_private(&key)?);
    let dpop_key = dpop_key
        .map(|f| keyfile::read_private(&f))
        .transpose()?
        .map(std::sync::Arc::new);
    if count <= 1 {
        let client = Client {
            id: &client_id,
            key: &key,
            dpop_key: dpop_key.as_deref(),
        };
        let t = obtain_token(
            &http,
            &endpoint,
            &client,
            scope.as_deref(),
            resource.as_deref(),
            unix_now(),
        )
        .await?;
        if common.json {
            print(
                &json!({ "access_token": t.access_token, "token_type": t.token_type, "expires_in": t.expires_in, "scope": t.scope }),
                true,
            );
        } else {
            println!("{}", t.access_token);
        }
        return Ok(Outcome::Done);
    }
    // Many distinct tokens (load tests): 32 requests in flight.
    let mut set = tokio::task::JoinSet::new();
    let mut tokens = Vec::with_capacity(count);
    let mut next = 0;
    while tokens.len() < count {
        while next < count && set.len() < 32 {
            next += 1;
            let (http, endpoint, key, client_id) = (
                http.clone(),
                endpoint.clone(),
                key.clone(),
                client_id.clone(),
            );
            let (scope, resource) = (scope.clone(), resource.clone());
            let dpop_key = dpop_key.clone();
            set.spawn(async move {
                let client = Client {
                    id: &client_id,
                    key: &key,
                    dpop_key: dpop_key.as_deref(),
                };
                obtain_token(
                    &http,
                    &endpoint,
                    &client,
                    scope.as_deref(),
                    resource.as_deref(),
                    unix_now(),
                )
                .await
                .map(|t| t.access_token)
            });
        }
        match set.join_next().await {
            Some(r) => tokens.push(r??),
            None => break,
        }
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for t in tokens {
        writeln!(out, "{t}")?;
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::public_path_for;

    #[test]
    fn the_public_key_sits_beside_the_private_one() {
        assert_eq!(
            public_path_for(Path::new("keys/agent.jwk")),
            Path::new("keys/agent.jwk.pub")
        );
    }
}
