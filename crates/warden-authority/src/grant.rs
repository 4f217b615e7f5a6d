//! What a grant hands to the issue path: the claims of the token to issue and the grant
//! that decided them ([`Issue`]). Grants decide; [`crate::issue`] signs, records and
//! answers.

use warden_core::claims::AccessClaims;

use crate::token_request::ACCESS_TOKEN_TYPE;

/// A token a grant decided to issue.
pub struct Issue {
    pub claims: AccessClaims,
    pub by: GrantType,
}

/// The grant that decided an [`Issue`]; it names the token in the answer and in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    ClientCredentials,
    Exchange,
}

impl GrantType {
    /// RFC 8693 §2.2.1 `issued_token_type`, for an exchange only.
    pub fn issued_token_type(self) -> Option<&'static str> {
        match self {
            Self::ClientCredentials => None,
            Self::Exchange => Some(ACCESS_TOKEN_TYPE),
        }
    }

    /// The audit entry's kind and action for a token this grant issued.
    pub fn audit_action(self) -> (warden_audit::Kind, &'static str) {
        match self {
            Self::ClientCredentials => (warden_audit::Kind::Issuance, "token.issue"),
            Self::Exchange => (warden_audit::Kind::Exchange, "token.exchange"),
        }
    }
}
