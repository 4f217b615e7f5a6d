//! People over HTTP as a browser meets them: an invitation enrolls a TOTP authenticator
//! (codes made by `totp-rs`, as an app would), sign-in starts a session held in a
//! `__Host-` cookie, the account page lists sessions and signs them out, and every forged,
//! replayed or guessed form is refused with a page in words and changes nothing.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;
use totp_rs::{Algorithm, Builder, Secret};

use crate::support::Harness;

/// A browser: cookies it was given, sent back; redirects not followed, so each is seen.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        between(&self.body, "name=\"csrf\" value=\"", "\"")
    }

    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

fn between(s: &str, start: &str, end: &str) -> String {
    let from = s
        .find(start)
        .map(|i| i + start.len())
        .unwrap_or_else(|| panic!("no `{start}` in {s}"));
    let rest = &s[from..];
    rest[..rest.find(end).unwrap()].to_owned()
}

impl Browser {
    fn new(h: &Harness) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: h.url.clone(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for set in headers.get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            assert!(
                set.contains("Secure") && set.contains("HttpOnly") && set.contains("Path=/"),
                "{set}"
            );
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            assert!(name.starts_with("__Host-"), "{set}");
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let res = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.read(res).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Page {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req.send().await.unwrap();
        self.read(res).await
    }

    async fn read(&mut self, res: reqwest::Response) -> Page {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        self.keep_cookies(&headers);
        Page {
            status,
            headers,
            body: res.text().await.unwrap(),
        }
    }

    fn has_session(&self) -> bool {
        self.cookies
            .iter()
            .any(|(k, _)| k == "__Host-warden_session")
    }
}

/// What an authenticator app holding `key` (as the enrollment page shows it) shows at `now`.
fn app_code(key: &str, now: i64) -> String {
    let secret = Secret::try_from_base32(key.replace(' ', "")).unwrap();
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_secret(secret)
        .build()
        .unwrap();
    totp.generate(u64::try_from(now).unwrap()).to_string()
}

async fn invite(h: &Harness, name: &str) -> String {
    let (s, v) = h
        .admin_post(
            "/tenants/acme/invites",
            json!({ "name": name, "scopes": "crm:read" }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["user"]["kind"], "user");
    v["invite_url"].as_str().unwrap().to_owned()
}

/// Enrolls `name` through its invitation; the browser ends signed in. The app's key.
async fn enroll(h: &Harness, b: &mut Browser, name: &str) -> String {
    let link = invite(h, name).await;
    let page = b.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let key = between(&page.body, "id=\"secret\">", "<");
    let csrf = page.csrf();
    let done = b
        .post(
            &link,
            &[("csrf", &csrf), ("code", &app_code(&key, h.now()))],
            None,
        )
        .await;
    assert_eq!(
        (done.status, done.location()),
        (303, "/account"),
        "{}",
        done.body
    );
    assert!(b.has_session());
    key
}

#[tokio::test]
async fn a_person_enrolls_by_invitation_signs_in_and_out() {
    let h = Harness::start().await;
    h.tenant("acme").await;
    let mut b = Browser::new(&h);
    let link = invite(&h, "ann").await;

    let page = b.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!page.body.contains("<script"), "no script on the page");
    assert!(page.body.contains("<label for=\"code\">"));
    let key = between(&page.body, "id=\"secret\">", "<");
    assert!(page.body.contains("otpauth://totp/"));
    // A reload shows the same key: the app the person already set up stays right.
    let again = b.get(&link).await;
    assert_eq!(between(&again.body, "id=\"secret\">", "<"), key);

    // A wrong code: refused in words, nothing enrolled, the link still good.
    let csrf = page.csrf();
    let wrong = b
        .post(&link, &[("csrf", &csrf), ("code", "000000")], None)
        .await;
    assert_eq!(wrong.status, 422);
    assert!(
        wrong.body.contains("That code is not right"),
        "{}",
        wrong.body
    );
    assert!(!b.has_session());

    let code = app_code(&key, h.now());
    let done = b
        .post(&link, &[("csrf", &csrf), ("code", &code)], None)
        .await;
    assert_eq!(
        (done.status, done.location()),
        (303, "/account"),
        "{}",
        done.body
    );
    let account = b.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(
        account.body.contains("<h1>ann</h1>") && account.body.contains("acme"),
        "{}",
        account.body
    );

    // The link is used up.
    let reuse = b.get(&link).await;
    assert_eq!(reuse.status, 404);
    assert!(reuse.body.contains("This invitation cannot be used"));

    // Signing out ends the session for good: its cookie, kept by a thief, opens nothing.
    let mut thief = Browser::new(&h);
    thief.cookies = b.cookies.clone();
    let out = b.post("/signout", &[("csrf", &account.csrf())], None).await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(!b.has_session());
    let p = thief.get("/account").await;
    assert_eq!((p.status, p.location()), (303, "/signin"));

    // Sign in with the next code; the same code a second time is a replay.
    h.clock.advance(30);
    let form = b.get("/signin?tenant=acme").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("value=\"acme\""));
    let code = app_code(&key, h.now());
    let fields = [
        ("csrf", form.csrf()),
        ("tenant", "acme".into()),
        ("name", "ann".into()),
        ("code", code.clone()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let signed_in = b.post("/signin", &fields, None).await;
    assert_eq!(
        (signed_in.status, signed_in.location()),
        (303, "/account"),
        "{}",
        signed_in.body
    );
    let mut elsewhere = Browser::new(&h);
    let form = elsewhere.get("/signin").await;
    let fields = [
        ("csrf", form.csrf()),
        ("tenant", "acme".into()),
        ("name", "ann".into()),
        ("code", code),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let replay = elsewhere.post("/signin", &fields, None).await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert!(!elsewhere.has_session());
}

#[tokio::test]
async fn sign_in_says_the_same_whatever_is_wrong_and_locks_out_a_guesser() {
    let h = Harness::start().await;
    h.tenant("acme").await;
    let mut b = Browser::new(&h);
    let key = enroll(&h, &mut b, "ann").await;
    h.clock.advance(30);

    let mut guesser = Browser::new(&h);
    let form = guesser.get("/signin").await;
    let csrf = form.csrf();
    let mut said = Vec::new();
    for (tenant, name, code) in [
        ("nowhere", "ann", app_code(&key, h.now())),
        ("acme", "nobody", "123456".to_owned()),
        ("acme", "ann", "123456".to_owned()),
    ] {
        let p = guesser
            .post(
                "/signin",
                &[
                    ("csrf", &csrf),
                    ("tenant", tenant),
                    ("name", name),
                    ("code", &code),
                ],
                None,
            )
            .await;
        assert_eq!(p.status, 401, "{tenant}/{name}: {}", p.body);
        said.push(between(&p.body, "role=\"alert\">", "<"));
    }
    assert!(said.windows(2).all(|w| w[0] == w[1]), "{said:?}");

    // Five failures for one person, and the next attempt is locked out, a right code too.
    let mut last = 0;
    for _ in 0..6 {
        let p = guesser
            .post(
                "/signin",
                &[
                    ("csrf", &csrf),
                    ("tenant", "acme"),
                    ("name", "ann"),
                    ("code", "654321"),
                ],
                None,
            )
            .await;
        last = p.status;
        if last == 429 {
            assert!(p.headers.contains_key("retry-after"));
            assert!(p.body.contains("Too many attempts"));
            break;
        }
    }
    assert_eq!(last, 429);
    let p = guesser
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("tenant", "acme"),
                ("name", "ann"),
                ("code", &app_code(&key, h.now())),
            ],
            None,
        )
        .await;
    assert_eq!(p.status, 429);
    assert!(!guesser.has_session());
}

#[tokio::test]
async fn forged_or_stale_forms_change_nothing() {
    let h = Harness::start().await;
    h.tenant("acme").await;
    let mut ann = Browser::new(&h);
    let key = enroll(&h, &mut ann, "ann").await;

    // A page on another site posting to sign-in, or a post without this browser's token.
    let mut b = Browser::new(&h);
    let form = b.get("/signin").await;
    let code = app_code(&key, h.now() + 30);
    let fields = [
        ("csrf", form.csrf()),
        ("tenant", "acme".into()),
        ("name", "ann".into()),
        ("code", code),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = b
        .post("/signin", &fields, Some("https://evil.example"))
        .await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("another site"));
    let mut fresh = Browser::new(&h);
    let p = fresh.post("/signin", &fields, None).await;
    assert_eq!(p.status, 403, "no token cookie: {}", p.body);
    assert!(!b.has_session() && !fresh.has_session());

    // A second session of ann's; a forged sign-out of it from the first fails.
    h.clock.advance(30);
    let mut laptop = Browser::new(&h);
    let form = laptop.get("/signin").await;
    let code = app_code(&key, h.now());
    let fields = [
        ("csrf", form.csrf()),
        ("tenant", "acme".into()),
        ("name", "ann".into()),
        ("code", code),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = laptop.post("/signin", &fields, None).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let account = ann.get("/account").await;
    assert_eq!(
        account.body.matches("<tr>").count(),
        3,
        "header and two sessions: {}",
        account.body
    );
    let other = between(&account.body, "action=\"/account/sessions/", "/signout");
    let path = format!("/account/sessions/{other}/signout");
    for csrf in ["", "not-the-token"] {
        let p = ann.post(&path, &[("csrf", csrf)], None).await;
        assert_eq!(p.status, 403, "{}", p.body);
    }
    let p = ann
        .post(
            &path,
            &[("csrf", &account.csrf())],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(p.status, 403);
    assert_eq!(
        laptop.get("/account").await.status,
        200,
        "the laptop is still signed in"
    );

    // The real thing: the laptop is signed out, ann is not.
    let p = ann.post(&path, &[("csrf", &account.csrf())], None).await;
    assert_eq!((p.status, p.location()), (303, "/account"));
    assert_eq!(laptop.get("/account").await.location(), "/signin");
    assert_eq!(ann.get("/account").await.status, 200);
    // Signed out already: in words, nothing changed.
    let p = ann.post(&path, &[("csrf", &account.csrf())], None).await;
    assert_eq!(p.status, 404);
    assert!(p.body.contains("ended already"));
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout() {
    let h = Harness::start().await;
    h.tenant("acme").await;
    let mut b = Browser::new(&h);
    enroll(&h, &mut b, "ann").await;
    h.clock.advance(29 * 60);
    assert_eq!(b.get("/account").await.status, 200);
    h.clock.advance(29 * 60);
    assert_eq!(
        b.get("/account").await.status,
        200,
        "each visit keeps it alive"
    );
    h.clock.advance(31 * 60);
    assert_eq!(b.get("/account").await.location(), "/signin");
}
