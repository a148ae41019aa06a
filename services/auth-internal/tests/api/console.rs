//! The operator console over real HTTP: sign-in, sessions, CSRF, access
//! rules, and the persona state changes.

use chrono::TimeDelta;
use reqwest::{Client, StatusCode, header, redirect::Policy};
use serde_json::json;

use crate::helpers::{TestApp, persona_spec};

pub const OPERATOR_EMAIL: &str = "ops@mana.test";
pub const OPERATOR_PASSWORD: &str = "operator password 1";

/// A browser stand-in: no redirects followed, cookies kept by hand.
pub struct Browser {
    pub client: Client,
    pub base: String,
    pub cookies: Vec<(String, String)>,
}

pub fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value of `name="…"`'s `value` attribute in an HTML form.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!(r#"name="{name}" value=""#))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// `application/x-www-form-urlencoded`, as a browser sends it.
pub fn form_body(form: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    char::from(b).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            client: Client::builder().redirect(Policy::none()).build().unwrap(),
            base: app.base.clone(),
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

    fn absorb(&mut self, resp: &reqwest::Response) {
        for c in set_cookies(resp) {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() && !c.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.absorb(&resp);
        resp
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(form))
            .send()
            .await
            .unwrap();
        self.absorb(&resp);
        resp
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sign in through the form; returns the final answer of the POST.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> reqwest::Response {
        let form = self.get("/console/login").await;
        assert_eq!(form.status(), StatusCode::OK);
        let html = form.text().await.unwrap();
        let token = hidden_value(&html, "csrf_token").expect("csrf field in the sign-in form");
        self.post(
            "/console/login",
            &[
                ("csrf_token", &token),
                ("email", email),
                ("password", password),
                ("next", "/console/personas"),
            ],
        )
        .await
    }

    /// The CSRF token of the session, read from a signed-in page.
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/console/personas").await;
        assert_eq!(page.status(), StatusCode::OK);
        hidden_value(&page.text().await.unwrap(), "csrf_token").unwrap()
    }
}

/// Create the test operator through the same code path as `auth-internal operator add`.
pub async fn add_operator(app: &TestApp) {
    let line = auth_internal::cli::add_operator(
        &app.state.settings,
        OPERATOR_EMAIL,
        OPERATOR_PASSWORD.to_owned(),
    )
    .await
    .unwrap();
    assert!(line.contains("created"), "{line}");
}

fn location(resp: &reqwest::Response) -> &str {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn without_a_session_every_page_redirects_to_sign_in() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    let resp = b.get("/console/personas?status=paused").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&resp),
        "/console/login?next=/console/personas%3Fstatus%3Dpaused"
    );
    let login = b.get("/console/login").await;
    assert_eq!(login.status(), StatusCode::OK);
    let csp = login.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let cookie = set_cookies(&login).join("\n");
    assert!(cookie.contains("mana_console_login=") && cookie.contains("HttpOnly"));
    let css = b.get("/console/static/console.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

#[tokio::test]
async fn an_operator_signs_in_with_a_rotated_hardened_session_that_expires() {
    let app = TestApp::spawn().await;
    add_operator(&app).await;
    app.seed_personas("cons", 2, "hourly").await;
    let mut b = Browser::new(&app);

    let wrong = b.sign_in(OPERATOR_EMAIL, "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Wrong email or password")
    );
    assert!(b.cookie("mana_console_session").is_none());

    let ok = b.sign_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&ok), "/console/personas");
    let set = set_cookies(&ok)
        .into_iter()
        .find(|c| c.starts_with("mana_console_session="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(
        !set.contains("Secure"),
        "development cookies are not Secure: {set}"
    );
    let first = b.cookie("mana_console_session").unwrap().to_owned();
    // Only the hash is stored.
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM console_sessions")
            .await,
        1
    );
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM console_sessions WHERE id_hash = convert_to('{first}', 'UTF8')"
        ))
        .await,
        0
    );
    let page = b.get("/console/personas").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("cons-0") && html.contains("cons-1"), "{html}");
    assert!(html.contains(OPERATOR_EMAIL));

    // Signing in again (the form fetched elsewhere, as after a bookmark) rotates:
    // a new id, and the old one is dead.
    let mut fresh = Browser::new(&app);
    let html = fresh.get("/console/login").await.text().await.unwrap();
    let token = hidden_value(&html, "csrf_token").unwrap();
    let login_cookie = fresh.cookie("mana_console_login").unwrap().to_owned();
    b.cookies.push(("mana_console_login".into(), login_cookie));
    let again = b
        .post(
            "/console/login",
            &[
                ("csrf_token", &token),
                ("email", OPERATOR_EMAIL),
                ("password", OPERATOR_PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let second = b.cookie("mana_console_session").unwrap().to_owned();
    assert_ne!(first, second);
    let mut stale = Browser::new(&app);
    stale.cookies = vec![("mana_console_session".into(), first)];
    assert_eq!(
        stale.get("/console/personas").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM console_sessions")
            .await,
        1
    );

    // Sessions expire on the server's clock.
    app.clock
        .advance(TimeDelta::hours(12) + TimeDelta::seconds(1));
    assert_eq!(
        b.get("/console/personas").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn secure_cookies_outside_development() {
    let app =
        TestApp::spawn_with(|s| s.environment = auth_internal::config::Deployment::Production)
            .await;
    add_operator(&app).await;
    let mut b = Browser::new(&app);
    let resp = b.get("/console/login").await;
    assert!(set_cookies(&resp).iter().all(|c| c.contains("; Secure")));
    let ok = b.sign_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert!(set_cookies(&ok).iter().all(|c| c.contains("; Secure")));
}

#[tokio::test]
async fn humans_and_personas_are_refused_with_403() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("human@mana.test").await;
    let mut b = Browser::new(&app);
    let resp = b.sign_in("human@mana.test", "a good password").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-error-code"], "forbidden");
    assert!(b.cookie("mana_console_session").is_none());
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM console_sessions")
            .await,
        0
    );

    // A persona signs in with its derived password: refused the same way.
    app.upsert_personas(json!([persona_spec("refused", "hourly")]))
        .await;
    let email = service_kit::persona_password::persona_email("refused");
    let password = service_kit::persona_password::persona_password("test-seed-secret", &email);
    let resp = Browser::new(&app).sign_in(&email, &password).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // A human's bearer token gets 403, not a sign-in redirect.
    let resp = app
        .client
        .get(app.url("/console/personas"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // The operator CLI refuses to turn a human into an operator.
    let err = auth_internal::cli::add_operator(
        &app.state.settings,
        "human@mana.test",
        "another long password".into(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not an operator"), "{err}");
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_change_nothing() {
    let app = TestApp::spawn().await;
    add_operator(&app).await;
    let ids = app.seed_personas("csrf", 1, "hourly").await;
    let mut b = Browser::new(&app);

    // The sign-in form itself is protected (double-submit).
    b.get("/console/login").await;
    let resp = b
        .post(
            "/console/login",
            &[("email", OPERATOR_EMAIL), ("password", OPERATOR_PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-error-code"], "csrf_failed");

    assert_eq!(
        b.sign_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let pause = format!("/console/personas/{}/pause", ids[0]);
    for form in [
        vec![],
        vec![("csrf_token", "forged")],
        vec![("csrf_token", "")],
    ] {
        let resp = b.post(&pause, &form).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()["x-error-code"], "csrf_failed");
    }
    // Another session's token is no good either.
    let mut other = Browser::new(&app);
    other.sign_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let foreign = other.csrf().await;
    let resp = b.post(&pause, &[("csrf_token", &foreign)]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM personas WHERE paused")
            .await,
        0
    );
    // Logout needs the token too.
    assert_eq!(
        b.post("/console/logout", &[]).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(b.get("/console/personas").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn pause_resume_and_run_now_steer_the_next_claim() {
    let app = TestApp::spawn().await;
    add_operator(&app).await;
    let ids = app.seed_personas("steer", 2, "hourly").await;
    let mut b = Browser::new(&app);
    b.sign_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let token = b.csrf().await;

    let resp = b
        .post(
            &format!("/console/personas/{}/pause", ids[0]),
            &[
                ("csrf_token", &token),
                ("next", "/console/personas?status=paused"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/console/personas?status=paused");
    let paused = b
        .get("/console/personas?status=paused")
        .await
        .text()
        .await
        .unwrap();
    assert!(paused.contains("steer-0") && !paused.contains("steer-1"));

    let claimed = app.claim("w1", 10, 60).await;
    let claimed: Vec<&str> = claimed["personas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["userId"].as_str().unwrap())
        .collect();
    assert_eq!(claimed, vec![ids[1].to_string()]);

    // Run now on a paused persona is refused; resume, then run now clears the backoff.
    let run_now = format!("/console/personas/{}/run-now", ids[0]);
    let resp = b.post(&run_now, &[("csrf_token", &token)]).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let resp = b
        .post(
            &format!("/console/personas/{}/resume", ids[0]),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    app.sql(&format!(
        "UPDATE personas SET retry_after = '2026-11-19T12:00:00Z', consecutive_failures = 3, \
         last_active_at = '2026-11-18T11:30:00Z' WHERE user_id = '{}'",
        ids[0]
    ))
    .await;
    assert_eq!(
        app.claim("w2", 10, 60).await["personas"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let resp = b.post(&run_now, &[("csrf_token", &token)]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let claimed = app.claim("w3", 10, 60).await;
    assert_eq!(claimed["personas"][0]["userId"], ids[0].to_string());

    let resp = b
        .post(
            "/console/personas/00000000-0000-0000-0000-000000000000/pause",
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = b.get("/console/personas?status=bogus").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Sign out ends the session on the server.
    let resp = b.post("/console/logout", &[("csrf_token", &token)]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/console/login");
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM console_sessions")
            .await,
        0
    );
}
