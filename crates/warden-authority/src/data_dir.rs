//! The data directory of an all-in-one deployment: the SQLite database, the master key file
//! (unless `WARDEN_MASTER_KEY` supplies it), the bootstrap admin token, and the address file
//! that admin commands read to find the running server.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::{OsRng, RngCore as _};
use serde::{Deserialize, Serialize};
use warden_core::crypto::SealingKey;
use warden_core::jwks::Jwk;
use warden_core::SigningKey;
use zeroize::Zeroizing;

pub const MASTER_KEY_ENV: &str = "WARDEN_MASTER_KEY";
const MASTER_KEY_FILE: &str = "master.key";
const ADMIN_TOKEN_FILE: &str = "admin.token";
const SERVER_FILE: &str = "server.json";
const DATABASE_FILE: &str = "warden.db";
const AUDIT_DIR: &str = "audit";
const AUDIT_KEY_FILE: &str = "audit.key";
/// The audit key's public half, for `warden audit verify`; pin a copy elsewhere, since anyone
/// who can rewrite the log can rewrite this file too.
pub const AUDIT_PUBLIC_KEY_FILE: &str = "audit.pub.jwk";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("`{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} must hold 32 bytes as unpadded base64url (43 characters)")]
    BadMasterKey(String),
    #[error("`{0}` is readable by group or others; run `chmod 600` on it")]
    Permissions(PathBuf),
    #[error("`{0}` cannot be opened with this master key: is WARDEN_MASTER_KEY (or master.key) the one it was created with?")]
    BadAuditKey(PathBuf),
    #[error("no running server recorded in `{0}`; start one with `warden serve`")]
    NoServer(PathBuf),
}

/// Where a running server can be reached; written at start, removed at clean shutdown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInfo {
    pub authority_url: String,
    /// The ops listener (`/healthz`, `/readyz`, `/metrics`); absent in a file an older
    /// server wrote.
    #[serde(default)]
    pub ops_url: Option<String>,
    pub pid: u32,
}

pub struct DataDir {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    }
}

impl DataDir {
    /// Creates the directory (mode 0700) if needed.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, DataDirError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io(&root))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).map_err(io(&root))?;
        Ok(Self { root })
    }

    /// Opens an existing directory without creating anything.
    pub fn existing(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join(DATABASE_FILE)
    }

    /// The master key: from `env_value` (the `WARDEN_MASTER_KEY` variable) when set, else
    /// from `master.key`, created on first use with mode 0600.
    pub fn master_key(&self, env_value: Option<&str>) -> Result<SealingKey, DataDirError> {
        if let Some(v) = env_value {
            return decode_master(v.trim(), MASTER_KEY_ENV);
        }
        let path = self.root.join(MASTER_KEY_FILE);
        let text = read_or_create_secret(&path, || {
            let mut k = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(k.as_mut());
            URL_SAFE_NO_PAD.encode(k.as_ref())
        })?;
        decode_master(text.trim(), &path.display().to_string())
    }

    pub fn audit_dir(&self) -> PathBuf {
        self.root.join(AUDIT_DIR)
    }

    /// The key that signs audit checkpoints: sealed under the master key in `audit.key`
    /// (0600), created on first use; its public half is written to `audit.pub.jwk`.
    pub fn audit_key(&self, master: &SealingKey) -> Result<SigningKey, DataDirError> {
        const CONTEXT: &[u8] = b"warden audit checkpoint key";
        let path = self.root.join(AUDIT_KEY_FILE);
        let text = read_or_create_secret(&path, || {
            let key = SigningKey::generate(&mut OsRng);
            URL_SAFE_NO_PAD.encode(master.seal(&mut OsRng, key.to_bytes().as_ref(), CONTEXT))
        })?;
        let bad = || DataDirError::BadAuditKey(path.clone());
        let sealed = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
        let secret = master.open(&sealed, CONTEXT).map_err(|_| bad())?;
        let key = SigningKey::from_bytes(&secret).map_err(|_| bad())?;
        let public = self.root.join(AUDIT_PUBLIC_KEY_FILE);
        let jwk = Jwk::from_public_key(&key.public_key(), Some(key.public_key().thumbprint()));
        fs::write(&public, serde_json::to_vec_pretty(&jwk).unwrap_or_default())
            .map_err(io(&public))?;
        Ok(key)
    }

    /// The bootstrap admin token, created on first use with mode 0600.
    pub fn admin_token(&self) -> Result<Zeroizing<String>, DataDirError> {
        let path = self.root.join(ADMIN_TOKEN_FILE);
        read_or_create_secret(&path, || {
            let mut raw = [0u8; 32];
            OsRng.fill_bytes(&mut raw);
            format!("wadm_{}", URL_SAFE_NO_PAD.encode(raw))
        })
        .map(|t| Zeroizing::new(t.trim().to_owned()))
    }

    /// Reads the admin token without creating one.
    pub fn read_admin_token(&self) -> Result<Zeroizing<String>, DataDirError> {
        let path = self.root.join(ADMIN_TOKEN_FILE);
        let t = fs::read_to_string(&path).map_err(|_| DataDirError::NoServer(self.root.clone()))?;
        Ok(Zeroizing::new(t.trim().to_owned()))
    }

    pub fn write_server_info(&self, info: &ServerInfo) -> Result<(), DataDirError> {
        let path = self.root.join(SERVER_FILE);
        let tmp = self.root.join(".server.json.tmp");
        let json = serde_json::to_vec_pretty(info).unwrap_or_default();
        fs::write(&tmp, json).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    pub fn server_info(&self) -> Result<ServerInfo, DataDirError> {
        let path = self.root.join(SERVER_FILE);
        let text = fs::read(&path).map_err(|_| DataDirError::NoServer(self.root.clone()))?;
        serde_json::from_slice(&text).map_err(|_| DataDirError::NoServer(self.root.clone()))
    }

    pub fn remove_server_info(&self) {
        let _ = fs::remove_file(self.root.join(SERVER_FILE));
    }
}

fn decode_master(text: &str, source: &str) -> Result<SealingKey, DataDirError> {
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| DataDirError::BadMasterKey(source.to_owned()))?,
    );
    SealingKey::from_bytes(&bytes).map_err(|_| DataDirError::BadMasterKey(source.to_owned()))
}

/// Reads a secret file, refusing one others can read; creates it (0600, exclusively) if absent.
fn read_or_create_secret(
    path: &Path,
    make: impl FnOnce() -> String,
) -> Result<String, DataDirError> {
    match fs::metadata(path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(DataDirError::Permissions(path.to_owned()));
            }
            fs::read_to_string(path).map_err(io(path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = make();
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io(path))?;
            f.write_all(value.as_bytes()).map_err(io(path))?;
            f.sync_all().map_err(io(path))?;
            Ok(value)
        }
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_created_private_and_stable() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let d = DataDir::create(dir.path().join("data"))?;
        let k1 = d.master_key(None)?;
        let k2 = d.master_key(None)?;
        assert_eq!(k1.as_bytes(), k2.as_bytes());
        let mode = fs::metadata(d.path().join(MASTER_KEY_FILE))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(*d.admin_token()?, *d.admin_token()?);

        fs::set_permissions(
            d.path().join(ADMIN_TOKEN_FILE),
            fs::Permissions::from_mode(0o644),
        )?;
        assert!(matches!(d.admin_token(), Err(DataDirError::Permissions(_))));
        assert!(matches!(
            d.master_key(Some("short")),
            Err(DataDirError::BadMasterKey(_))
        ));
        let env = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert_eq!(d.master_key(Some(&env))?.as_bytes(), &[7u8; 32]);
        Ok(())
    }
}
