//! Warden's pure core: identities, the scope algebra, token claims, EdDSA compact JWS, JWKS,
//! DPoP proofs and the revocation view.
//!
//! This crate performs no I/O and owns no clock or randomness of its own: time arrives as a
//! [`time::Clock`], randomness as an RNG parameter. Every cryptographic operation lives in
//! [`crypto`]; everything else calls it.

pub mod access;
pub mod authorization_code;
pub mod authorize;
pub mod claims;
pub mod crypto;
pub mod dpop;
pub mod id;
pub mod jwks;
pub mod jws;
pub mod pkce;
pub mod redirect_uri;
pub mod replay;
pub mod revocation;
pub mod scope;
pub mod time;
pub mod token;

pub use access::{DelegationChain, VerifiedAccess};
pub use claims::{AccessClaims, Actor, AssertionClaims, Audience};
pub use crypto::{PublicKey, SigningKey};
pub use id::{ClientId, PrincipalId, PrincipalKind, TenantId};
pub use redirect_uri::RedirectUri;
pub use scope::{Scope, ScopeSet};
pub use token::{KeySet, TokenError, Validation, VerifiedToken};
