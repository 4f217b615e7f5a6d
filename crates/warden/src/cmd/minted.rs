//! What `warden admin create` and `warden gateway enroll` share: a principal made with a
//! fresh key whose private half goes to a credential file. The file is checked before
//! anything is created at the authority, so that no principal is left without its key.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use warden_core::jwks::Jwk;
use warden_core::SigningKey;

use crate::admin_client::AdminClient;

/// A key for a principal yet to be created, and where its credential file will go.
pub(super) struct Minting {
    key: SigningKey,
    out: PathBuf,
}

/// What the authority made of the principal.
pub(super) struct Minted {
    pub client_id: String,
    pub tenant: Value,
    pub scopes: Value,
}

impl Minting {
    /// Refuses an existing `out` (a credential file is never overwritten), then makes a key.
    pub(super) fn begin(out: &Path) -> anyhow::Result<Self> {
        if out.exists() {
            anyhow::bail!("`{}` exists; choose another --out", out.display());
        }
        Ok(Self {
            key: SigningKey::generate(&mut rand_core::OsRng),
            out: out.to_owned(),
        })
    }

    /// The public half, to register with the principal.
    pub(super) fn public_key(&self) -> Jwk {
        Jwk::from_public_key(&self.key.public_key(), None)
    }

    /// Writes the credential file (mode 0600) for the principal made, and shows it.
    pub(super) fn finish(
        self,
        admin: &AdminClient,
        made: Minted,
        json: bool,
    ) -> anyhow::Result<()> {
        let credentials = warden_api::Credentials::new(
            made.client_id.clone(),
            Some(admin.api().authority().to_owned()),
            self.key,
        );
        credentials.write_new(&self.out)?;
        super::print(
            &json!({
                "client_id": made.client_id,
                "tenant": made.tenant,
                "scopes": made.scopes,
                "credentials": self.out.display().to_string(),
            }),
            json,
        );
        Ok(())
    }
}
