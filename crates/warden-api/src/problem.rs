//! Error bodies: RFC 9457 problem+json from the admin API, RFC 6749 §5.2 from the token
//! endpoint.

use serde::{Deserialize, Serialize};

/// An admin API refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type", default = "about_blank")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(default)]
    pub detail: String,
}

fn about_blank() -> String {
    "about:blank".into()
}

/// A token endpoint refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthError {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
}
