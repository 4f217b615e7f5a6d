//! A principal's credential file: its client id and private Ed25519 key, as `warden admin
//! create` and `warden gateway enroll` write it and `--credentials FILE` reads it. The file
//! is created mode 0600 and refused when others may read it, as ssh refuses a private key.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use warden_core::claims::{AssertionClaims, Audience};
use warden_core::id::random_token_id;
use warden_core::jwks::Jwk;
use warden_core::{jws, SigningKey};
use zeroize::Zeroizing;

/// How long a client assertion is valid: long enough for one request.
const ASSERTION_TTL_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read `{0}`: {1}")]
    Read(String, std::io::Error),
    #[error("cannot write `{0}`: {1}")]
    Write(String, std::io::Error),
    #[error("`{0}` may be read by others (mode {1:o}); make it 0600")]
    Exposed(String, u32),
    #[error("`{0}` is not a credential file: {1}")]
    Format(String, String),
    #[error("cannot sign a client assertion: {0}")]
    Sign(String),
}

/// A principal's credentials. The private key never leaves this value but as a signature.
pub struct Credentials {
    client_id: String,
    issuer: Option<String>,
    key: SigningKey,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    private_key: PrivateJwk,
}

#[derive(Serialize, Deserialize)]
struct PrivateJwk {
    kty: String,
    crv: String,
    x: String,
    d: String,
}

impl Drop for PrivateJwk {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.d);
    }
}

impl Credentials {
    pub fn new(client_id: String, issuer: Option<String>, key: SigningKey) -> Self {
        Self {
            client_id,
            issuer,
            key,
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The authority the credentials were made at, when the file names it.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The public half, as registered with the authority.
    pub fn public_jwk(&self) -> Jwk {
        Jwk::from_public_key(&self.key.public_key(), None)
    }

    /// An RFC 7523 client assertion for `token_endpoint`, valid for a minute from `now`.
    pub fn assertion(&self, token_endpoint: &str, now: i64) -> Result<String, CredentialsError> {
        let claims = AssertionClaims {
            iss: self.client_id.clone(),
            sub: self.client_id.clone(),
            aud: Audience::One(token_endpoint.to_owned()),
            exp: now + ASSERTION_TTL_SECS,
            iat: Some(now),
            nbf: None,
            jti: random_token_id(&mut rand_core::OsRng),
        };
        jws::encode("JWT", None, &claims, &self.key)
            .map_err(|e| CredentialsError::Sign(e.to_string()))
    }

    /// Reads a credential file, refusing one that others may read.
    pub fn read(path: &Path) -> Result<Self, CredentialsError> {
        let shown = path.display().to_string();
        let meta = fs::metadata(path).map_err(|e| CredentialsError::Read(shown.clone(), e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialsError::Exposed(shown, mode));
        }
        let text = Zeroizing::new(
            fs::read_to_string(path).map_err(|e| CredentialsError::Read(shown.clone(), e))?,
        );
        Self::parse(&text).map_err(|why| CredentialsError::Format(shown, why))
    }

    /// Parses a credential file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let jwk = &file.private_key;
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            return Err("the private key is not an Ed25519 OKP JWK".into());
        }
        let d = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(jwk.d.as_bytes())
                .map_err(|_| "`d` is not base64url".to_owned())?,
        );
        let key = SigningKey::from_bytes(&d).map_err(|e| format!("`d`: {e}"))?;
        if Jwk::from_public_key(&key.public_key(), None).x != jwk.x {
            return Err("`x` does not match `d`".into());
        }
        if warden_core::PrincipalId::parse(&file.client_id).is_err() {
            return Err(format!(
                "client_id `{}` is not a principal id",
                file.client_id
            ));
        }
        Ok(Self {
            client_id: file.client_id,
            issuer: file.issuer,
            key,
        })
    }

    /// The file's text: client id, issuer and private key.
    pub fn to_json(&self) -> Result<Zeroizing<String>, CredentialsError> {
        let public = self.public_jwk();
        let file = File {
            client_id: self.client_id.clone(),
            issuer: self.issuer.clone(),
            private_key: PrivateJwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: public.x,
                d: URL_SAFE_NO_PAD.encode(self.key.to_bytes().as_ref()),
            },
        };
        serde_json::to_string_pretty(&file)
            .map(Zeroizing::new)
            .map_err(|e| CredentialsError::Sign(e.to_string()))
    }

    /// Writes the file, created exclusively with mode 0600: an existing file is never
    /// overwritten, so no credential is lost by a mistyped path.
    pub fn write_new(&self, path: &Path) -> Result<(), CredentialsError> {
        let shown = path.display().to_string();
        let text = self.to_json()?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| CredentialsError::Write(shown.clone(), e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| CredentialsError::Write(shown, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        let id = warden_core::PrincipalId::generate(
            warden_core::PrincipalKind::Service,
            &mut rand_core::OsRng,
        );
        Credentials::new(
            id.to_string(),
            Some("http://127.0.0.1:1".into()),
            SigningKey::generate(&mut rand_core::OsRng),
        )
    }

    #[test]
    fn a_written_file_reads_back_and_is_private() {
        let dir = std::env::temp_dir().join(format!(
            "warden-api-{}",
            random_token_id(&mut rand_core::OsRng)
        ));
        fs::create_dir(&dir).unwrap();
        let path = dir.join("c.json");
        let c = sample();
        c.write_new(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = Credentials::read(&path).unwrap();
        assert_eq!(back.client_id(), c.client_id());
        assert_eq!(back.public_jwk().x, c.public_jwk().x);
        assert!(matches!(
            c.write_new(&path),
            Err(CredentialsError::Write(..))
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Credentials::read(&path),
            Err(CredentialsError::Exposed(_, 0o644))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_whose_halves_disagree_or_that_names_no_principal_is_refused() {
        let c = sample();
        let text = c.to_json().unwrap();
        let other = sample().public_jwk().x;
        let mismatched = text.replace(&c.public_jwk().x, &other);
        assert!(Credentials::parse(&mismatched)
            .unwrap_err()
            .contains("does not match"));
        let bad_id = text.replace(c.client_id(), "someone");
        assert!(Credentials::parse(&bad_id)
            .unwrap_err()
            .contains("not a principal id"));
        let extra = text.replacen('{', "{\"admin_token\": \"x\",", 1);
        assert!(Credentials::parse(&extra)
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn an_assertion_names_the_client_and_the_endpoint() {
        let c = sample();
        let a = c
            .assertion("http://127.0.0.1:1/oauth2/token", 1_000)
            .unwrap();
        let claims: AssertionClaims = jws::UnverifiedToken::parse(&a)
            .unwrap()
            .claims_unverified()
            .unwrap();
        assert_eq!((claims.iss.as_str(), claims.exp), (c.client_id(), 1_060));
    }
}
