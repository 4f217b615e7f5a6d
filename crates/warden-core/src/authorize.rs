//! The authorization request of the code flow (OAuth 2.1 §4.1.1, OpenID Connect Core
//! §3.1.2.1), checked against the client it names, and the redirects that answer it.
//!
//! What may be sent back to a redirect URI is decided first: until the client is known and
//! the `redirect_uri` is byte for byte one it registered, nothing is (RFC 6749 §4.1.2.1), so
//! an unknown client or a foreign URI can never turn the authority into an open redirector.
//! Every later fault goes back to the client as an OAuth error with its `state` and, against
//! mix-up, the authority's `iss` (RFC 9207).

use crate::pkce::CodeChallenge;
use crate::redirect_uri::RedirectUri;
use crate::scope::ScopeSet;
use crate::ClientId;

/// Longest `state` or `nonce` accepted, in bytes.
pub const MAX_OPAQUE_LEN: usize = 512;

/// A request that passed every check: what the person is asked to approve, and what the
/// code will be bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: ClientId,
    /// As the client sent it; it is one the client registered.
    pub redirect_uri: String,
    pub scope: ScopeSet,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: CodeChallenge,
}

/// Why a request is refused, and where the refusal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Shown to the person only: the client or its redirect URI cannot be trusted.
    Unredirectable(String),
    /// Sent to the client at its registered redirect URI.
    Redirect(ErrorRedirect),
}

/// An OAuth error answer (RFC 6749 §4.1.2.1) on its way to a verified redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRedirect {
    pub redirect_uri: String,
    /// `invalid_request`, `unsupported_response_type`, `invalid_scope`,
    /// `request_not_supported`, `request_uri_not_supported`, `access_denied`, …
    pub error: &'static str,
    pub description: String,
    pub state: Option<String>,
}

impl ErrorRedirect {
    /// The `Location` to send the browser to.
    pub fn location(&self, issuer: &str) -> String {
        let mut pairs = vec![
            ("error", self.error),
            ("error_description", &self.description),
        ];
        if let Some(s) = &self.state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", issuer));
        with_query(&self.redirect_uri, &pairs)
    }
}

/// The success answer: the code, the request's `state`, and `iss` (RFC 9207).
pub fn code_location(request: &AuthorizationRequest, code: &str, issuer: &str) -> String {
    let mut pairs = vec![("code", code)];
    if let Some(s) = &request.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    with_query(&request.redirect_uri, &pairs)
}

/// `uri` with `pairs` added to its query; the query it already has is kept as it is
/// (RFC 6749 §3.1.2).
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.into()
        }
        // Registered URIs parse; a stored one that no longer does gets nothing appended
        // rather than a guess.
        Err(_) => uri.to_owned(),
    }
}

/// The request's parameters, as the query string gave them.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_query(query: &str) -> Self {
        Self(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The one value of `name`; `Err` when it is given more than once (RFC 6749 §3.1).
    fn one(&self, name: &str) -> Result<Option<&str>, String> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next();
        if values.next().is_some() {
            return Err(format!("`{name}` is given more than once"));
        }
        Ok(first.map(String::as_str))
    }

    /// The client the request names; a request without a well-formed one is refused to the
    /// person, since nothing says where an answer could go.
    pub fn client_id(&self) -> Result<ClientId, AuthorizeError> {
        let unredirectable = AuthorizeError::Unredirectable;
        let id = self
            .one("client_id")
            .map_err(unredirectable)?
            .ok_or_else(|| unredirectable("the request names no client (`client_id`)".into()))?;
        ClientId::parse(id).map_err(|_| unredirectable(format!("unknown client `{id}`")))
    }

    /// Checks the request against the client it names (found by the caller: a client that
    /// does not exist is the caller's [`AuthorizeError::Unredirectable`]).
    pub fn check(
        &self,
        client_id: ClientId,
        registered: &[RedirectUri],
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let redirect_uri = self
            .one("redirect_uri")
            .map_err(AuthorizeError::Unredirectable)?
            .ok_or_else(|| {
                AuthorizeError::Unredirectable("the request has no `redirect_uri`".into())
            })?;
        if !registered.iter().any(|r| r.matches(redirect_uri)) {
            return Err(AuthorizeError::Unredirectable(
                "`redirect_uri` is not one this client registered".into(),
            ));
        }
        // From here on the client hears of every fault, with its `state` when that is sound.
        let state = self.one("state").ok().flatten().map(str::to_owned);
        let state = state.filter(|s| s.len() <= MAX_OPAQUE_LEN);
        let refuse = |error: &'static str, description: String| {
            AuthorizeError::Redirect(ErrorRedirect {
                redirect_uri: redirect_uri.to_owned(),
                error,
                description,
                state: state.clone(),
            })
        };
        let invalid = |d: String| refuse("invalid_request", d);
        if let Some((dup, _)) = self
            .0
            .iter()
            .find(|(k, _)| self.0.iter().filter(|(o, _)| o == k).count() > 1)
        {
            return Err(invalid(format!("`{dup}` is given more than once")));
        }
        let get = |name: &str| self.one(name).ok().flatten();
        if get("request").is_some() {
            return Err(refuse(
                "request_not_supported",
                "request objects are not supported; send the parameters in the query".into(),
            ));
        }
        if get("request_uri").is_some() {
            return Err(refuse(
                "request_uri_not_supported",
                "request_uri is not supported; send the parameters in the query".into(),
            ));
        }
        match get("response_type") {
            None => return Err(invalid("`response_type` is required".into())),
            Some("code") => {}
            Some(other) => {
                return Err(refuse(
                    "unsupported_response_type",
                    format!("response_type `{other}` is not supported; use `code`"),
                ))
            }
        }
        if let Some(mode) = get("response_mode").filter(|m| *m != "query") {
            return Err(invalid(format!(
                "response_mode `{mode}` is not supported; answers come in the query"
            )));
        }
        if self.one("state").ok().flatten().is_some() && state.is_none() {
            return Err(invalid(format!(
                "`state` is longer than {MAX_OPAQUE_LEN} bytes"
            )));
        }
        let nonce = get("nonce").map(str::to_owned);
        if nonce
            .as_ref()
            .is_some_and(|n| n.len() > MAX_OPAQUE_LEN || n.is_empty())
        {
            return Err(invalid(format!(
                "`nonce` must be 1 to {MAX_OPAQUE_LEN} bytes"
            )));
        }
        let code_challenge =
            CodeChallenge::parse(get("code_challenge"), get("code_challenge_method"))
                .map_err(|e| invalid(e.to_string()))?;
        let scope = ScopeSet::parse(get("scope").unwrap_or_default())
            .map_err(|e| refuse("invalid_scope", e.to_string()))?;
        Ok(AuthorizationRequest {
            client_id,
            redirect_uri: redirect_uri.to_owned(),
            scope,
            state,
            nonce,
            code_challenge,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    const ISSUER: &str = "https://warden.example";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn registered() -> Vec<RedirectUri> {
        vec![
            RedirectUri::register("https://app.example/cb?tenant=acme", false).unwrap(),
            RedirectUri::register("http://127.0.0.1/cb", false).unwrap(),
        ]
    }

    fn query(client: &ClientId, extra: &str) -> String {
        format!(
            "response_type=code&client_id={client}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Ftenant%3Dacme\
             &code_challenge={CHALLENGE}&code_challenge_method=S256&state=xyz{extra}"
        )
    }

    fn check(q: &str) -> Result<AuthorizationRequest, AuthorizeError> {
        let params = Params::from_query(q);
        let id = params.client_id()?;
        params.check(id, &registered())
    }

    fn redirect_error(q: &str) -> ErrorRedirect {
        match check(q) {
            Err(AuthorizeError::Redirect(e)) => e,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn a_sound_request_passes_and_its_code_goes_back_with_state_and_iss() {
        let id = ClientId::generate(&mut OsRng);
        let req = check(&query(&id, "&scope=openid%20crm%3Aread&nonce=n-1")).unwrap();
        assert_eq!(req.client_id, id);
        assert_eq!(req.redirect_uri, "https://app.example/cb?tenant=acme");
        assert_eq!(req.scope, ScopeSet::parse("crm:read openid").unwrap());
        assert_eq!(
            (req.state.as_deref(), req.nonce.as_deref()),
            (Some("xyz"), Some("n-1"))
        );
        assert_eq!(
            code_location(&req, "c0de", ISSUER),
            "https://app.example/cb?tenant=acme&code=c0de&state=xyz&iss=https%3A%2F%2Fwarden.example"
        );
        // A native app's loopback URI, any port.
        let native = format!(
            "response_type=code&client_id={id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A50123%2Fcb\
             &code_challenge={CHALLENGE}&code_challenge_method=S256"
        );
        let req = check(&native).unwrap();
        assert_eq!(
            code_location(&req, "c", ISSUER),
            "http://127.0.0.1:50123/cb?code=c&iss=https%3A%2F%2Fwarden.example"
        );
    }

    #[test]
    fn nothing_goes_to_a_uri_the_client_did_not_register() {
        let id = ClientId::generate(&mut OsRng);
        for q in [
            String::from("response_type=code"),
            "client_id=agt_x&response_type=code".into(),
            format!("client_id={id}&client_id={id}&response_type=code"),
            format!("client_id={id}&response_type=code"),
            format!("client_id={id}&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"),
            format!("client_id={id}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"),
            format!(
                "client_id={id}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Ftenant%3Dacme%2F"
            ),
            format!(
                "client_id={id}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Ftenant%3Dacme\
                 &redirect_uri=https%3A%2F%2Fevil.example%2Fcb"
            ),
        ] {
            assert!(
                matches!(check(&q), Err(AuthorizeError::Unredirectable(_))),
                "{q}: {:?}",
                check(&q)
            );
        }
    }

    #[test]
    fn each_later_fault_goes_back_to_the_client_with_its_state_and_iss() {
        let id = ClientId::generate(&mut OsRng);
        let no_pkce = format!(
            "response_type=code&client_id={id}&state=s1\
             &redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Ftenant%3Dacme"
        );
        let e = redirect_error(&no_pkce);
        assert_eq!(
            (e.error, e.state.as_deref()),
            ("invalid_request", Some("s1"))
        );
        assert!(
            e.description.contains("code_challenge"),
            "{}",
            e.description
        );
        assert_eq!(
            e.location(ISSUER),
            format!(
                "https://app.example/cb?tenant=acme&error=invalid_request&error_description={}\
                 &state=s1&iss=https%3A%2F%2Fwarden.example",
                form_urlencoded::byte_serialize(e.description.as_bytes()).collect::<String>()
            )
        );
        let plain = query(&id, "").replace("S256", "plain");
        assert_eq!(redirect_error(&plain).error, "invalid_request");
        for (extra, error) in [
            ("&response_type=token", "invalid_request"),
            ("&state=again", "invalid_request"),
            ("&request=eyJ", "request_not_supported"),
            ("&request_uri=urn%3Ax", "request_uri_not_supported"),
            ("&response_mode=fragment", "invalid_request"),
            ("&scope=crm%3A%2A%3Aread%2A", "invalid_scope"),
            ("&nonce=", "invalid_request"),
        ] {
            assert_eq!(redirect_error(&query(&id, extra)).error, error, "{extra}");
        }
        let token = query(&id, "").replace("response_type=code", "response_type=token");
        assert_eq!(redirect_error(&token).error, "unsupported_response_type");
        let long_state = query(&id, "").replace("state=xyz", &format!("state={}", "s".repeat(513)));
        let e = redirect_error(&long_state);
        assert_eq!((e.error, e.state), ("invalid_request", None));
    }
}
