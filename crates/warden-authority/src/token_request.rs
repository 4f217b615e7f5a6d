//! A token request, parsed once from its form: how the client authenticates, and the grant
//! it asks for with that grant's parameters, typed (one variant per grant).
//!
//! Parsing refuses nothing by itself. What is malformed keeps its refusal ([`Param`]) and is
//! refused where the endpoint first needs it: the grant type after the honeytoken check,
//! a grant's parameters after the client has authenticated, each at its step of the grant.
//! So an unauthenticated caller learns nothing of its parameters, and when several things
//! are wrong the refusal is the one it has always been.
//!
//! This module must not look anything up or decide whether a token is issued: the grants
//! do.

use std::collections::HashMap;

use axum::http::HeaderMap;
use warden_core::ScopeSet;

use crate::client_auth::ClientAuthentication;
use crate::error::OAuthError;

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A parameter's value, or the refusal its value earns when the grant comes to it.
pub type Param<T> = Result<T, OAuthError>;

/// A token request: the client's credentials and the grant it asks for.
pub struct TokenRequest<'f> {
    pub client: ClientAuthentication<'f>,
    pub grant: Param<Grant<'f>>,
}

/// The grant a request asks for, one variant per `grant_type`.
#[expect(
    clippy::large_enum_variant,
    reason = "one per request, built once and moved into its grant: a box would only add an allocation"
)]
pub enum Grant<'f> {
    /// RFC 6749 §4.4.
    ClientCredentials(ClientCredentialsRequest<'f>),
    /// RFC 8693.
    Exchange(ExchangeRequest<'f>),
}

pub struct ClientCredentialsRequest<'f> {
    /// `scope`: within the client's ceiling; none asks for all of it.
    pub scope: Param<Option<ScopeSet>>,
    /// `resource` (RFC 8707): the audience; none asks for the default one.
    pub resource: Option<&'f str>,
}

pub struct ExchangeRequest<'f> {
    /// `subject_token`, refused unless it, `subject_token_type`, `requested_token_type` and
    /// the absence of `actor_token` are as Warden takes them.
    pub subject_token: Param<&'f str>,
    /// `scope`: within what the subject token and the client hold; none asks for all of it.
    pub scope: Param<Option<ScopeSet>>,
    /// `resource` or `audience` (not both): one of the subject token's audiences.
    pub target: Param<Option<&'f str>>,
    /// `expires_in`: a shorter lifetime, in seconds.
    pub expires_in: Param<Option<i64>>,
    /// `max_uses`: only 1, a single-use token.
    pub max_uses: Param<Option<u32>>,
}

impl<'f> TokenRequest<'f> {
    pub fn parse(headers: &HeaderMap, form: &'f HashMap<String, String>) -> Self {
        Self {
            client: ClientAuthentication::parse(headers, form),
            grant: Grant::parse(form),
        }
    }
}

impl<'f> Grant<'f> {
    fn parse(form: &'f HashMap<String, String>) -> Param<Self> {
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => Ok(Self::ClientCredentials(ClientCredentialsRequest {
                scope: scope(form),
                resource: form.get("resource").map(String::as_str),
            })),
            Some(TOKEN_EXCHANGE) => Ok(Self::Exchange(ExchangeRequest::parse(form))),
            Some(other) => Err(OAuthError::unsupported_grant_type(format!(
                "grant_type `{}` is not supported",
                truncate(other)
            ))),
            None => Err(OAuthError::invalid_request("grant_type is missing")),
        }
    }
}

impl<'f> ExchangeRequest<'f> {
    fn parse(form: &'f HashMap<String, String>) -> Self {
        Self {
            subject_token: subject_token(form),
            scope: scope(form),
            target: match (form.get("resource"), form.get("audience")) {
                (Some(_), Some(_)) => Err(OAuthError::invalid_target(
                    "send resource or audience, not both",
                )),
                (Some(r), None) | (None, Some(r)) => Ok(Some(r.as_str())),
                (None, None) => Ok(None),
            },
            expires_in: form
                .get("expires_in")
                .map(|asked| {
                    asked.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        OAuthError::invalid_request("expires_in must be a positive integer")
                    })
                })
                .transpose(),
            max_uses: match form.get("max_uses").map(String::as_str) {
                None => Ok(None),
                Some("1") => Ok(Some(1)),
                Some(_) => Err(OAuthError::invalid_request("max_uses may only be 1")),
            },
        }
    }
}

fn subject_token(form: &HashMap<String, String>) -> Param<&str> {
    let subject_token = form
        .get("subject_token")
        .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
    match form.get("subject_token_type").map(String::as_str) {
        Some(ACCESS_TOKEN_TYPE) => {}
        Some(other) => {
            return Err(OAuthError::invalid_request(format!(
                "subject_token_type `{}` is not supported; use `{ACCESS_TOKEN_TYPE}`",
                truncate(other)
            )))
        }
        None => return Err(OAuthError::invalid_request("subject_token_type is missing")),
    }
    if form
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::invalid_request(format!(
            "requested_token_type must be `{ACCESS_TOKEN_TYPE}`"
        )));
    }
    if form.contains_key("actor_token") {
        return Err(OAuthError::invalid_request(
            "actor_token is not used: the authenticated client is the actor",
        ));
    }
    Ok(subject_token)
}

fn scope(form: &HashMap<String, String>) -> Param<Option<ScopeSet>> {
    form.get("scope")
        .map(|s| ScopeSet::parse(s).map_err(|e| OAuthError::invalid_scope(e.to_string())))
        .transpose()
}

/// The requested scopes, which must lie entirely within `available`: asking for more is
/// refused, never silently narrowed. Without a request, all of `available`.
pub fn within(
    requested: Option<ScopeSet>,
    available: &ScopeSet,
    whose: &str,
) -> Result<ScopeSet, OAuthError> {
    let scopes = match requested {
        Some(requested) => {
            let outside = available.uncovered(&requested);
            if !outside.is_empty() {
                let names: Vec<&str> = outside.iter().map(|s| s.as_str()).collect();
                return Err(OAuthError::invalid_scope(format!(
                    "outside {whose}: `{}`",
                    names.join(" ")
                )));
            }
            requested
        }
        None => available.clone(),
    };
    if scopes.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "no scope requested and {whose} holds none"
        )));
    }
    Ok(scopes)
}

/// A value from the request, cut short for an error message.
pub fn truncate(s: &str) -> String {
    if s.len() <= 64 {
        s.to_owned()
    } else {
        s.chars().take(64).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{header, HeaderValue};

    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_grant_type_is_refused_only_when_asked_for() {
        let headers = HeaderMap::new();
        let none = form(&[]);
        let request = TokenRequest::parse(&headers, &none);
        assert_eq!(request.grant.err().map(|e| e.code), Some("invalid_request"));
        let other = form(&[("grant_type", "password")]);
        let request = TokenRequest::parse(&headers, &other);
        assert_eq!(
            request.grant.err().map(|e| e.code),
            Some("unsupported_grant_type")
        );
    }

    #[test]
    fn a_malformed_parameter_keeps_its_refusal_for_its_step() {
        let f = form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", "t"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("resource", "a"),
            ("audience", "b"),
            ("expires_in", "-1"),
            ("max_uses", "1"),
        ]);
        let request = TokenRequest::parse(&HeaderMap::new(), &f);
        let Ok(Grant::Exchange(x)) = request.grant else {
            panic!("an exchange");
        };
        assert_eq!(x.subject_token.ok(), Some("t"));
        assert_eq!(x.target.err().map(|e| e.code), Some("invalid_target"));
        assert_eq!(x.expires_in.err().map(|e| e.code), Some("invalid_request"));
        assert_eq!(x.max_uses.ok(), Some(Some(1)));
        assert!(matches!(x.scope, Ok(None)));
    }

    #[test]
    fn the_claimed_client_comes_from_the_credentials_sent() {
        let mut headers = HeaderMap::new();
        // `agt_x%3A1:secret`: the id is form-decoded, as RFC 6749 §2.3.1 asks.
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWd0X3glM0ExOnNlY3JldA=="),
        );
        let f = form(&[("client_id", "agt_other")]);
        let request = TokenRequest::parse(&headers, &f);
        assert_eq!(request.client.claimed_id(), Some("agt_x:1"));
        // Malformed Basic credentials claim nobody, whatever `client_id` says.
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        let request = TokenRequest::parse(&headers, &f);
        assert_eq!(request.client.claimed_id(), None);
        let request = TokenRequest::parse(&HeaderMap::new(), &f);
        assert_eq!(request.client.claimed_id(), Some("agt_other"));
    }
}
