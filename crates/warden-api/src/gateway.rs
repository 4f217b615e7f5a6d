//! The calls a gateway makes to the authority, and the enrollment that makes it a principal.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use warden_core::jwks::Jwk;

/// `PUT /admin/v1/gateway-keys/{kid}`: publish the key of the gateway's internal tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterGatewayKey {
    /// The gateway's name, for operators.
    pub gateway: String,
    pub public_key: Jwk,
    pub ttl_secs: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisteredGatewayKey {
    pub kid: String,
    pub expires_at: i64,
}

/// `POST /admin/v1/activity`: principal id → the last time the gateway let one of its tokens
/// through.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    pub used: HashMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageAccepted {
    pub accepted: u64,
}

/// `POST /admin/v1/gateways`: enroll a gateway as a service principal of the system tenant
/// with the scope `warden:gateway` and the given public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollGateway {
    pub name: String,
    pub public_key: Jwk,
}

/// What enrollment answers: the principal the gateway now is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolledGateway {
    pub client_id: String,
    pub tenant: String,
    pub scopes: String,
}

/// The part of a tenant's record a gateway reads to confirm a route's tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantRef {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub disabled: bool,
}
