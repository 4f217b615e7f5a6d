//! Where people sign in: enrollment by invitation, sign-in with a TOTP code, and the account
//! page with their sessions. Server-rendered pages that work without JavaScript, under a
//! Content-Security-Policy that allows nothing but this origin's stylesheet and forms, never
//! framed; every form is checked against forgery; no page says whether an account exists.

mod account;
mod enroll;
mod forms;
mod pages;
mod session;
mod signin;
mod throttle;
mod totp;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use enroll::{invite_digest, INVITE_PREFIX};
pub use forms::random_token;
pub use session::SessionPolicy;
pub use throttle::SignInThrottle;
pub use totp::TotpSealer;

use crate::Authority;

pub fn routes() -> Router<Arc<Authority>> {
    Router::new()
        .route("/enroll/{token}", get(enroll::show).post(enroll::submit))
        .route("/signin", get(signin::show).post(signin::submit))
        .route("/signout", post(account::sign_out))
        .route("/account", get(account::show))
        .route(
            "/account/sessions/{id}/signout",
            post(account::sign_out_session),
        )
        .route(
            "/account/sessions/signout-others",
            post(account::sign_out_others),
        )
        .route("/assets/warden.css", get(pages::stylesheet))
}
