//! Redirect URIs an OAuth client registers, and how a requested one is matched against them.
//!
//! A code sent to the wrong place is a stolen code, so the rules are those of OAuth 2.1
//! (§2.3.1, §8.4) and RFC 8252 for native apps, with nothing tolerated beyond them:
//!
//! - a registered URI is absolute, has no fragment, no user info and no wildcard, and is
//!   written as it will be compared (`https://app.example/` rather than
//!   `HTTPS://App.Example`), so that what an admin registers is what is matched;
//! - `https` for any client; `http` only on a loopback host (`127.0.0.1`, `[::1]`,
//!   `localhost`); a private-use scheme with a dot in it (`com.example.app:/cb`, RFC 8252
//!   §7.1) only for a public (native) client; no other scheme;
//! - a requested URI matches when it is byte for byte a registered one. The one allowance is
//!   RFC 8252 §7.3's: a loopback IP literal registered without a port matches that URI with
//!   any port, since a native app listens on whichever port it is given.

use std::fmt;

/// Longest redirect URI accepted, in bytes.
pub const MAX_LEN: usize = 2000;

/// A redirect URI that passed the registration rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedirectUri(String);

/// Why a URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("`{0}` is not an absolute URI")]
    NotAbsolute(String),
    #[error("a redirect URI is at most {MAX_LEN} bytes")]
    TooLong,
    #[error("`{0}` has a fragment; a redirect URI must not")]
    Fragment(String),
    #[error("`{0}` has user info before its host; a redirect URI must not")]
    UserInfo(String),
    #[error("`{0}` has a wildcard; register each URI in full")]
    Wildcard(String),
    #[error("`{given}` is not written as it will be compared: register `{canonical}`")]
    NotCanonical { given: String, canonical: String },
    #[error(
        "`{0}`: http is allowed only on a loopback host (127.0.0.1, [::1], localhost); use https"
    )]
    PlainHttp(String),
    #[error("`{0}`: a private-use scheme (RFC 8252) is for public (native) clients only")]
    PrivateSchemeNeedsPublicClient(String),
    #[error("`{0}`: the scheme must be https, http on loopback, or a private-use scheme with a dot (com.example.app)")]
    Scheme(String),
}

impl RedirectUri {
    /// Checks `s` against the registration rules; `public` says whether the client is a public
    /// one (a native or browser app that holds no secret).
    pub fn register(s: &str, public: bool) -> Result<Self, RedirectUriError> {
        if s.len() > MAX_LEN {
            return Err(RedirectUriError::TooLong);
        }
        if s.contains('*') {
            return Err(RedirectUriError::Wildcard(s.to_owned()));
        }
        let url = url::Url::parse(s).map_err(|_| RedirectUriError::NotAbsolute(s.to_owned()))?;
        if url.fragment().is_some() || s.contains('#') {
            return Err(RedirectUriError::Fragment(s.to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectUriError::UserInfo(s.to_owned()));
        }
        if url.as_str() != s {
            return Err(RedirectUriError::NotCanonical {
                given: s.to_owned(),
                canonical: url.as_str().to_owned(),
            });
        }
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" => {
                if !matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost")) {
                    return Err(RedirectUriError::PlainHttp(s.to_owned()));
                }
            }
            scheme if scheme.contains('.') => {
                if !public {
                    return Err(RedirectUriError::PrivateSchemeNeedsPublicClient(
                        s.to_owned(),
                    ));
                }
            }
            _ => return Err(RedirectUriError::Scheme(s.to_owned())),
        }
        Ok(Self(s.to_owned()))
    }

    /// A URI read back from where registered ones are kept; they passed [`Self::register`].
    pub fn from_registered(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `requested`, as a client sent it, names this URI.
    pub fn matches(&self, requested: &str) -> bool {
        if requested == self.0 {
            return true;
        }
        // RFC 8252 §7.3: a loopback IP literal registered without a port, any port requested.
        for host in ["http://127.0.0.1", "http://[::1]"] {
            let (Some(rest), Some(tail)) =
                (self.0.strip_prefix(host), requested.strip_prefix(host))
            else {
                continue;
            };
            if rest.starts_with(':') {
                return false;
            }
            let Some(tail) = tail.strip_prefix(':') else {
                return false;
            };
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            let (port, path) = tail.split_at(digits);
            return (1..=5).contains(&port.len())
                && port.parse::<u16>().is_ok_and(|p| p != 0)
                && path == rest;
        }
        false
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str, public: bool) -> RedirectUri {
        RedirectUri::register(s, public).unwrap()
    }

    #[test]
    fn https_and_loopback_http_register_for_any_client() {
        for s in [
            "https://app.example/callback",
            "https://app.example:8443/cb?tenant=a",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "http://localhost:3000/cb",
        ] {
            assert_eq!(ok(s, false).as_str(), s);
        }
    }

    #[test]
    fn each_bad_uri_is_refused_with_its_reason() {
        use RedirectUriError as E;
        type Is = fn(&E) -> bool;
        let cases: [(&str, Is); 10] = [
            ("/callback", |e| matches!(e, E::NotAbsolute(_))),
            ("https://app.example/cb#x", |e| matches!(e, E::Fragment(_))),
            ("https://app.example/cb#", |e| matches!(e, E::Fragment(_))),
            ("https://user@app.example/cb", |e| {
                matches!(e, E::UserInfo(_))
            }),
            ("https://*.app.example/cb", |e| matches!(e, E::Wildcard(_))),
            ("HTTPS://App.Example/cb", |e| {
                matches!(e, E::NotCanonical { .. })
            }),
            ("https://app.example", |e| {
                matches!(e, E::NotCanonical { .. })
            }),
            ("http://app.example/cb", |e| matches!(e, E::PlainHttp(_))),
            ("javascript:alert(1)", |e| matches!(e, E::Scheme(_))),
            ("com.example.app:/cb", |e| {
                matches!(e, E::PrivateSchemeNeedsPublicClient(_))
            }),
        ];
        for (s, is) in cases {
            let e = RedirectUri::register(s, false).unwrap_err();
            assert!(is(&e), "{s}: {e}");
        }
        let long = format!("https://app.example/{}", "a".repeat(MAX_LEN));
        assert_eq!(RedirectUri::register(&long, true), Err(E::TooLong));
        assert!(matches!(
            RedirectUri::register("data:text/html,hi", true),
            Err(E::Scheme(_))
        ));
    }

    #[test]
    fn a_native_app_may_use_a_private_use_scheme() {
        assert_eq!(
            ok("com.example.app:/oauth2redirect", true).as_str(),
            "com.example.app:/oauth2redirect"
        );
    }

    #[test]
    fn a_requested_uri_matches_only_byte_for_byte() {
        let r = ok("https://app.example/cb", false);
        assert!(r.matches("https://app.example/cb"));
        for other in [
            "https://app.example/cb/",
            "https://app.example/cbx",
            "https://app.example/CB",
            "https://APP.example/cb",
            "https://app.example/cb?x=1",
            "https://app.example:443/cb",
            "https://app.example.evil/cb",
            "https://app.example/cb#",
            "http://app.example/cb",
        ] {
            assert!(!r.matches(other), "{other}");
        }
    }

    #[test]
    fn a_loopback_ip_registered_without_a_port_takes_any_port() {
        let r = ok("http://127.0.0.1/cb", true);
        assert!(r.matches("http://127.0.0.1/cb"));
        assert!(r.matches("http://127.0.0.1:51234/cb"));
        for other in [
            "http://127.0.0.1:51234/cb/",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:99999/cb",
            "http://127.0.0.1:8080@evil.example/cb",
            "http://127.0.0.1.evil.example/cb",
        ] {
            assert!(!r.matches(other), "{other}");
        }
        let v6 = ok("http://[::1]/cb", true);
        assert!(v6.matches("http://[::1]:4000/cb"));
        // A port registered is a port required; `localhost` is a name, not a literal.
        assert!(!ok("http://127.0.0.1:8080/cb", true).matches("http://127.0.0.1:9090/cb"));
        assert!(!ok("http://localhost/cb", true).matches("http://localhost:4000/cb"));
    }
}
