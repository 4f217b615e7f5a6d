//! The scopes that confer power in Warden itself, and the audience of admin tokens.

/// Every tenant, every call but a gateway's.
pub const ADMIN: &str = "warden:admin";
/// Every call within the token's own tenant.
pub const TENANT_ADMIN: &str = "warden:tenant:admin";
/// Revoking principals, delegation grants and tokens of the token's own tenant.
pub const REVOKE: &str = "warden:revoke";
/// Reading the token's own tenant's access report.
pub const AUDIT_READ: &str = "warden:audit:read";
/// What a gateway needs: key registration, the revocation stream, usage reports and the
/// principal revocations a quarantine raises; nothing else.
pub const GATEWAY: &str = "warden:gateway";
/// Introspecting any token of the caller's tenant at the token endpoint's side.
pub const INTROSPECT: &str = "warden:introspect";

/// Every scope that confers a power somewhere in Warden: granting one needs it.
pub const RESERVED: [&str; 6] = [ADMIN, TENANT_ADMIN, REVOKE, AUDIT_READ, GATEWAY, INTROSPECT];

/// The path under the issuer that admin tokens name as their audience.
pub const ADMIN_PATH: &str = "/admin/v1";

/// The name of the tenant Warden's own service principals (gateways) live in.
pub const SYSTEM_TENANT: &str = "warden-system";

/// The audience (RFC 8707 `resource`) of tokens for the admin API of `issuer`.
pub fn admin_audience(issuer: &str) -> String {
    format!("{}{ADMIN_PATH}", issuer.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_admin_audience_is_the_issuer_and_the_api_path() {
        assert_eq!(
            super::admin_audience("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/admin/v1"
        );
    }
}
