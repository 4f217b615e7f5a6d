//! The shared test support (`warden-test`), under the names these tests use.

pub use warden_test::authority::{
    assert_oauth_error, audit_log, issued, Agent, TestAuthority as Harness, ACCESS_TOKEN_TYPE,
    JWT_BEARER, TOKEN_EXCHANGE,
};
pub use warden_test::http::send_cut_short;
pub use warden_test::keys::claims_of;
pub use warden_test::sse::SseReader;
pub use warden_test::wait::eventually_async;
pub use warden_test::ADMIN;
