//! What every form post goes through: a bounded urlencoded body with each field once, a
//! browser's word that it comes from this origin, and a token that a forging page cannot
//! know — the session's own once signed in, before that one held in a cookie of its own
//! (double submit), which another site can neither read nor set on this host.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cookie::{Cookie, SameSite};
use rand_core::{OsRng, RngCore as _};
use warden_core::crypto::constant_time_eq;

use super::pages;
use crate::http::{media_type, read_body};
use crate::server::ClientAddr;
use crate::Authority;

/// Largest form body read.
const MAX_FORM_BYTES: usize = 8 * 1024;

/// Holds the token of forms shown before sign-in.
pub const CSRF_COOKIE: &str = "__Host-warden_csrf";

/// A fresh random token (256 bits, base64url).
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The value of the cookie `name` the request carries.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` for a `__Host-` cookie: this host only, every path, never to scripts, and
/// only over a secure context. `max_age` none: a session cookie; zero: deleted.
pub fn set_cookie(
    name: &str,
    value: &str,
    same_site: SameSite,
    max_age: Option<i64>,
) -> HeaderValue {
    let mut c = Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(same_site);
    if let Some(secs) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(secs));
    }
    HeaderValue::from_str(&c.build().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The pre-session token of this browser, or a new one with the `Set-Cookie` that gives it.
pub fn pre_session_token(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, CSRF_COOKIE).filter(|t| t.len() == 43) {
        Some(t) => (t, None),
        None => {
            let t = random_token();
            let set = set_cookie(CSRF_COOKIE, &t, SameSite::Strict, None);
            (t, Some(set))
        }
    }
}

/// A form's fields, once the post passed the origin check and the body is sound.
pub struct Form(HashMap<String, String>);

impl Form {
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    /// Whether the form carries `expected` as its `csrf` field.
    pub fn carries(&self, expected: &str) -> bool {
        !expected.is_empty() && constant_time_eq(self.get("csrf").as_bytes(), expected.as_bytes())
    }

    /// Whether the form's `csrf` field is the token in this browser's pre-session cookie.
    pub fn carries_pre_session(&self, headers: &HeaderMap) -> bool {
        cookie(headers, CSRF_COOKIE).is_some_and(|t| self.carries(&t))
    }
}

/// A form post as the handlers take it: where it came from and what it says.
pub struct Posted {
    pub headers: HeaderMap,
    pub peer: Option<IpAddr>,
    pub form: Form,
}

/// Takes a form post apart and reads its form ([`read`]); else the page to answer with.
pub async fn posted(a: &Authority, req: Request) -> Result<Posted, Response> {
    let (parts, body) = req.into_parts();
    let peer = parts.extensions.get::<ClientAddr>().map(|c| c.0.ip());
    let form = read(a, &parts.headers, body).await?;
    Ok(Posted {
        headers: parts.headers,
        peer,
        form,
    })
}

/// Reads a posted form: `400` for another media type, a body too large, or a field given
/// twice; `403` for a post a browser says comes from another site.
async fn read(a: &Authority, headers: &HeaderMap, body: Body) -> Result<Form, Response> {
    if !from_this_origin(a, headers) {
        return Err(pages::message(
            StatusCode::FORBIDDEN,
            "This form came from another site",
            "For your safety it was not accepted. Open the page on this site and send it from there.",
        ));
    }
    let bad = || {
        pages::message(
            StatusCode::BAD_REQUEST,
            "That form could not be read",
            "Go back, reload the page and send it again.",
        )
    };
    if media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(bad());
    }
    let bytes = read_body(headers, body, MAX_FORM_BYTES)
        .await
        .map_err(|_| bad())?;
    let mut fields = HashMap::new();
    for (k, v) in form_urlencoded::parse(&bytes) {
        if fields.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(bad());
        }
    }
    Ok(Form(fields))
}

/// A browser names where a post comes from (`Sec-Fetch-Site`, `Origin`); a post it says
/// comes from elsewhere is refused. A client that sends neither is not a browser a page
/// could drive, and still needs the form's token.
fn from_this_origin(a: &Authority, headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        if site != "same-origin" {
            return false;
        }
    }
    match value("origin") {
        Some(origin) => origin == a.config.issuer_origin(),
        None => true,
    }
}
