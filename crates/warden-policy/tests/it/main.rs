//! warden-policy's one integration-test binary: the shipped example policies and their
//! tests, loading from directories, hot reload and the policy test runner, all through the
//! crate's public API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod examples;
mod loading;
mod reload;
mod runner;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use warden_policy::PolicyRequest;

/// Monday 2025-06-16 11:00 UTC.
pub const MONDAY_11: i64 = 1_750_071_600;
/// Sunday 2025-06-15 15:06:40 UTC.
pub const SUNDAY_15: i64 = 1_750_000_000;

/// The example policy set shipped at the repository root.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// A user of `tnt_acme` reading its own tenant's CRM route on a Monday morning.
pub fn request<'a>(scopes: &'a [&'a str]) -> PolicyRequest<'a> {
    PolicyRequest {
        tenant: "tnt_acme",
        principal: "usr_alice",
        principal_kind: "user",
        owner: None,
        actor: None,
        method: "GET",
        route: "/crm/",
        route_tenant: Some("tnt_acme"),
        path: "/crm/contacts/42",
        client_ip: IpAddr::from([203, 0, 113, 7]),
        time: MONDAY_11,
        scopes,
        delegation_depth: 0,
    }
}

/// Writes `files` (name, contents) into a fresh temporary directory.
pub fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}
