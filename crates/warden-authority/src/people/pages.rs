//! The pages, as compile-time templates (`templates/`), and the headers every page is sent
//! with.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Nothing runs, loads or frames but what this origin serves: no script at all, the one
/// stylesheet, forms posted here only.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("../../assets/warden.css");

#[derive(Template)]
#[template(path = "message.html")]
pub struct Message<'a> {
    pub heading: &'a str,
    pub text: &'a str,
    pub link: Option<&'a str>,
    pub link_text: &'a str,
}

#[derive(Template)]
#[template(path = "enroll.html")]
pub struct Enroll<'a> {
    pub name: &'a str,
    pub token: &'a str,
    pub secret: &'a str,
    pub otpauth: &'a str,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignIn<'a> {
    pub tenant: &'a str,
    pub name: &'a str,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
}

pub struct SessionRow {
    pub id: String,
    pub signed_in: String,
    pub last_seen: String,
    pub browser: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct Account<'a> {
    pub name: &'a str,
    pub tenant: &'a str,
    pub sessions: Vec<SessionRow>,
    pub csrf: &'a str,
}

/// `template` as an HTML page with `status` and the page headers.
pub fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => with_page_headers((status, html).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            let fallback = "<!doctype html><title>Warden</title><p>Something went wrong on our side. Try again in a moment.</p>";
            with_page_headers((StatusCode::INTERNAL_SERVER_ERROR, fallback).into_response())
        }
    }
}

/// A page that says one thing in words.
pub fn message(status: StatusCode, heading: &str, text: &str) -> Response {
    page(
        status,
        &Message {
            heading,
            text,
            link: None,
            link_text: "",
        },
    )
}

/// A page that says one thing and links on.
pub fn message_with_link(
    status: StatusCode,
    heading: &str,
    text: &str,
    href: &str,
    link_text: &str,
) -> Response {
    page(
        status,
        &Message {
            heading,
            text,
            link: Some(href),
            link_text,
        },
    )
}

pub fn with_page_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // `no-referrer` would make a browser send `Origin: null` with this page's own forms.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    res
}

pub async fn stylesheet() -> Response {
    let mut res = STYLESHEET.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}
