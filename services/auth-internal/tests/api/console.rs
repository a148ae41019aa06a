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

/// What [`seed_console`] made.
pub struct Seeded {
    pub anna: uuid::Uuid,
    pub ben: uuid::Uuid,
    /// Anna's run with a transcript (one tool error).
    pub ok_run: String,
    /// Ben's failed run.
    pub failed_run: String,
}

/// Personas, two runs through the real runs API, and ratings whose module
/// means are known: notes 1.33 < journal 3.0 < todo 4.33 (worst first).
pub async fn seed_console(app: &TestApp) -> Seeded {
    app.upsert_personas(json!([
        persona_spec("anna", "daily"),
        persona_spec("ben", "daily")
    ]))
    .await;
    let ids = app.seed_personas("anna", 0, "daily").await;
    assert!(ids.is_empty());
    let id_of = |slug: &'static str| async move {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            user_id: uuid::Uuid,
        }
        let mut conn = app.db.conn().await;
        diesel::sql_query("SELECT user_id FROM personas WHERE slug = $1")
            .bind::<diesel::sql_types::Text, _>(slug)
            .get_result::<Id>(&mut conn)
            .await
            .unwrap()
            .user_id
    };
    let (anna, ben) = (id_of("anna").await, id_of("ben").await);
    let ok_run = format!("tick-1.{anna}");
    let failed_run = format!("tick-2.{ben}");
    let transcript = json!({
        "system": "Du bist Anna, 34, Projektleiterin.",
        "messages": [
            {"role": "user", "text": "Lebe einen Tag mit der App."},
            {"role": "assistant", "text": "Ich lege meine Aufgaben an.",
             "toolCalls": [{"id": "c1", "name": "todo_create", "arguments": {"title": "Steuererklärung"}}]},
            {"role": "tool", "callId": "c1", "name": "todo_create", "content": "{\"id\":\"t-1\"}", "isError": false},
            {"role": "assistant", "toolCalls": [{"id": "c2", "name": "notes_create", "arguments": {"body": "Idee"}}]},
            {"role": "tool", "callId": "c2", "name": "notes_create", "content": "record store unavailable", "isError": true},
            {"role": "assistant", "text": "Das Notizen-Modul hat nicht funktioniert."}
        ],
        "ratingPrompt": "Bewerte die Module.",
        "ratingReply": "{\"todo\": 4, \"notes\": 1}"
    });
    let started = crate::helpers::wednesday_noon() - TimeDelta::days(2);
    for (persona, id, outcome, transcript) in [
        (anna, &ok_run, "ok", Some(transcript)),
        (ben, &failed_run, "failed", None),
    ] {
        let mut body = json!({
            "id": id, "tickId": id.split('.').next().unwrap(), "revision": 1,
            "worker": "runner-a", "provider": "sim", "model": "sim-1", "appVersion": "2.1.0",
            "startedAt": started, "finishedAt": started + TimeDelta::minutes(3), "outcome": outcome,
            "turns": 3, "toolCalls": 2, "toolErrors": 1,
            "tokens": {"input": 1200, "output": 300, "cacheRead": 800, "cacheWrite": 50},
        });
        if let Some(t) = transcript {
            body["transcript"] = t;
        } else {
            body["errorClass"] = json!("llm");
            body["error"] = json!("LLM failed: 500 from upstream");
        }
        let resp = app
            .internal(reqwest::Method::POST, &format!("/personas/{persona}/runs"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }
    let ratings: [(uuid::Uuid, &str, &str, i16, &str, i64); 8] = [
        (anna, &ok_run, "notes", 1, "Notiz ging verloren", 12),
        (ben, &failed_run, "notes", 2, "langsam", 13),
        (anna, &ok_run, "notes", 1, "schon wieder weg", 14),
        (anna, &ok_run, "todo", 4, "praktisch", 12),
        (ben, &failed_run, "todo", 5, "super", 13),
        (anna, &ok_run, "todo", 4, "gut", 15),
        (ben, &failed_run, "journal", 3, "geht so", 14),
        (anna, &ok_run, "journal", 3, "ok", 16),
    ];
    for (i, (persona, run, module, rating, notes, day)) in ratings.into_iter().enumerate() {
        app.sql(&format!(
            "INSERT INTO persona_feedback (id, persona_id, tick_id, module, rating, notes, created_at) \
             VALUES ('{run}-{module}-{i}', '{persona}', '{run}', '{module}', {rating}, '{notes}', \
             '2026-11-{day}T09:00:00Z')"
        ))
        .await;
    }
    for (i, (tool, module, ok)) in [
        ("todo_create", "todo", true),
        ("notes_create", "notes", false),
    ]
    .into_iter()
    .enumerate()
    {
        let (result, error) = if ok {
            ("ok", "NULL")
        } else {
            ("error", "'record store unavailable'")
        };
        app.sql(&format!(
            "INSERT INTO persona_actions (id, persona_id, tick_id, tool_name, module, input, result, \
             error_message, latency_ms, created_at) VALUES ('{ok_run}-{i}-{tool}', '{anna}', '{ok_run}', \
             '{tool}', '{module}', '{{\"title\":\"x\"}}', '{result}', {error}, 40, '2026-11-16T12:00:00Z')"
        ))
        .await;
    }
    Seeded {
        anna,
        ben,
        ok_run,
        failed_run,
    }
}

#[tokio::test]
async fn the_pages_render_the_reports_worst_first_with_transcripts() {
    let app = TestApp::spawn().await;
    add_operator(&app).await;
    let seeded = seed_console(&app).await;
    let mut b = Browser::new(&app);
    b.sign_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;

    let board = b.get("/console").await;
    assert_eq!(board.status(), StatusCode::OK);
    let html = board.text().await.unwrap();
    let pos = |m: &str| {
        html.find(&format!(r#"data-module="{m}""#))
            .unwrap_or_else(|| panic!("{m} missing"))
    };
    assert!(pos("notes") < pos("journal") && pos("journal") < pos("todo"));
    assert!(
        html.contains("1.33") && html.contains("4.33"),
        "means shown"
    );
    assert!(html.contains("<svg class=\"sparkline\""));
    assert!(
        html.contains(r#"<option value="2.1.0""#),
        "the app version picker"
    );
    // A version nobody ran: nothing to show, and still a page.
    let none = b
        .get("/console?appVersion=9.9.9")
        .await
        .text()
        .await
        .unwrap();
    assert!(none.contains("No ratings or tool calls in this period"));
    let bad = b.get("/console?from=yesterday").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let module = b.get("/console/modules/notes?bucket=day").await;
    assert_eq!(module.status(), StatusCode::OK);
    let html = module.text().await.unwrap();
    assert!(html.contains("<svg class=\"trend\""));
    assert!(html.find("schon wieder weg").unwrap() < html.find("Notiz ging verloren").unwrap());
    assert!(html.contains(&format!("/console/runs/{}", seeded.ok_run)));
    assert!(
        html.contains("notes_create") && html.contains("100.0 %"),
        "tool error rate"
    );

    let run = b.get(&format!("/console/runs/{}", seeded.ok_run)).await;
    assert_eq!(run.status(), StatusCode::OK);
    let html = run.text().await.unwrap();
    assert!(html.contains(r#"id="transcript""#));
    assert!(html.contains("Steuererklärung") && html.contains("record store unavailable"));
    assert!(
        html.contains(r#"class="msg tool error""#),
        "the tool error is highlighted"
    );
    assert!(html.contains("800 cache read"), "{html}");
    assert!(html.contains("Notiz ging verloren"), "ratings with notes");
    assert_eq!(
        b.get("/console/runs/nope").await.status(),
        StatusCode::NOT_FOUND
    );

    let failures = b.get("/console/failures").await.text().await.unwrap();
    assert!(failures.contains("llm") && failures.contains(&seeded.failed_run));
    let tokens = b.get("/console/tokens").await.text().await.unwrap();
    assert!(
        tokens.contains("sim-1") && tokens.contains("1\u{2009}600"),
        "{tokens}"
    );

    let personas = b.get("/console/personas").await.text().await.unwrap();
    assert!(personas.contains(&format!("/console/runs/{}", seeded.failed_run)));
    assert!(personas.contains(&seeded.ben.to_string()));
}

#[tokio::test]
async fn the_json_reports_accept_an_operator_session_but_not_other_users() {
    let app = TestApp::spawn().await;
    add_operator(&app).await;
    seed_console(&app).await;
    let mut b = Browser::new(&app);
    b.sign_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    for path in ["/api/v1/internal/reports/modules", "/api/v1/internal/runs"] {
        let resp = b.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body.is_object());
    }
    // Writes and other internal routes still need the service key.
    let resp = b.get("/api/v1/internal/personas/due").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let anonymous = Browser::new(&app)
        .get("/api/v1/internal/reports/modules")
        .await;
    assert_eq!(
        crate::helpers::error_code(anonymous, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let (_, token) = app.register_user("human@mana.test").await;
    let resp = app
        .client
        .get(app.url("/api/v1/internal/reports/modules"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        crate::helpers::error_code(resp, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_email_and_per_address() {
    let app = TestApp::spawn_with(|s| {
        s.console.login_failures_per_email = 3;
        s.console.login_failures_per_ip = 5;
    })
    .await;
    add_operator(&app).await;
    let mut b = Browser::new(&app);
    for _ in 0..3 {
        let wrong = b.sign_in(OPERATOR_EMAIL, "guess").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // The email is locked: even the right password (any case of the email) gets 429.
    let locked = b
        .sign_in(&OPERATOR_EMAIL.to_uppercase(), OPERATOR_PASSWORD)
        .await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.headers()[header::RETRY_AFTER], "900");
    assert_eq!(locked.headers()["x-error-code"], "rate_limited");
    assert!(
        locked
            .text()
            .await
            .unwrap()
            .contains("too many failed sign-ins; try again in 15 minutes")
    );
    // Two more failures for another email fill the address's allowance (3 + 2 = 5).
    for _ in 0..2 {
        let wrong = b.sign_in("nobody@mana.test", "guess").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let by_ip = b.sign_in("someone-else@mana.test", "guess").await;
    assert_eq!(by_ip.status(), StatusCode::TOO_MANY_REQUESTS);
    // After the window the operator signs in, which forgets the email's failures.
    app.clock.advance(TimeDelta::minutes(16));
    let ok = b.sign_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.sql_count(
            "SELECT count(*) AS n FROM console_login_failures WHERE email = 'ops@mana.test'"
        )
        .await,
        0
    );
}
