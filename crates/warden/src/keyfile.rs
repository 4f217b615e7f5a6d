//! Agent key files: a private OKP JWK (mode 0600) and its public half, as `warden keygen`
//! writes them and `warden principal create --public-key` and `warden token` read them.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use warden_core::jwks::Jwk;
use warden_core::SigningKey;
use zeroize::Zeroizing;

#[derive(Serialize, Deserialize)]
struct PrivateJwk {
    kty: String,
    crv: String,
    x: String,
    d: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

/// Writes a new private JWK to `private_path` (created exclusively, mode 0600) and its public
/// half to `public_path`; returns the public JWK.
pub fn generate(private_path: &Path, public_path: &Path) -> anyhow::Result<Jwk> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let public = Jwk::from_public_key(&key.public_key(), None);
    let private = PrivateJwk {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        x: public.x.clone(),
        d: URL_SAFE_NO_PAD.encode(key.to_bytes().as_ref()),
        kid: None,
    };
    let secret = Zeroizing::new(serde_json::to_string_pretty(&private)?);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(private_path)
        .with_context(|| format!("cannot create `{}`", private_path.display()))?;
    f.write_all(secret.as_bytes())?;
    fs::write(public_path, serde_json::to_string_pretty(&public)?)
        .with_context(|| format!("cannot write `{}`", public_path.display()))?;
    Ok(public)
}

pub fn read_private(path: &Path) -> anyhow::Result<SigningKey> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let jwk: PrivateJwk = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a private OKP JWK", path.display()))?;
    if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
        bail!("`{}` is not an Ed25519 key", path.display());
    }
    let d = URL_SAFE_NO_PAD
        .decode(&jwk.d)
        .context("`d` is not base64url")?;
    let key = SigningKey::from_bytes(&d).context("`d` is not a 32-byte Ed25519 seed")?;
    if Jwk::from_public_key(&key.public_key(), None).x != jwk.x {
        bail!("`{}`: `x` does not match `d`", path.display());
    }
    Ok(key)
}

/// Reads a public JWK, refusing a file that holds a private key: it must never be sent.
pub fn read_public(path: &Path) -> anyhow::Result<Jwk> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("`{}` is not JSON", path.display()))?;
    if value.get("d").is_some() {
        bail!(
            "`{}` holds a private key; pass the public key file instead",
            path.display()
        );
    }
    let jwk: Jwk = serde_json::from_value(value)
        .with_context(|| format!("`{}` is not a JWK", path.display()))?;
    jwk.to_public_key()
        .with_context(|| format!("`{}` is refused", path.display()))?;
    Ok(jwk)
}
