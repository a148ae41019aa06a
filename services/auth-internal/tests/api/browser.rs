//! The console in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` + `chromium-driver`, fantoccini over plain HTTP to a
//! chromedriver on a free loopback port).
//!
//! Without chromedriver the test fails when `CI` is set and is skipped
//! (loudly) otherwise. `CHROMEDRIVER` names another binary.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator, wd::WebDriverCompatibleCommand};
use futures::FutureExt;
use serde_json::{Value, json};

use crate::{
    console::{OPERATOR_EMAIL, OPERATOR_PASSWORD, add_operator, seed_console},
    helpers::TestApp,
};

/// A chromedriver process on its own port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver_binary() -> Option<String> {
    if let Ok(b) = std::env::var("CHROMEDRIVER") {
        return Some(b);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("chromedriver"))
            .find(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
    })
}

async fn start_driver() -> Option<Driver> {
    let Some(binary) = chromedriver_binary() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "chromedriver is missing (apt-get install -y chromium chromium-driver); CI requires the browser tests"
            );
        }
        eprintln!(
            "\n!!!!!!!! SKIPPING the console browser test: chromedriver not found \
             (apt-get install -y chromium chromium-driver) !!!!!!!!\n"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Readiness of an external process: poll its status endpoint, bounded.
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(resp) = client.get(format!("{}/status", driver.url)).send().await
            && let Ok(body) = resp.json::<Value>().await
            && body["value"]["ready"] == json!(true)
        {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not become ready on port {port}");
}

async fn browser(driver: &Driver) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                     "--disable-dev-shm-usage"]
        },
        "goog:loggingPrefs": {"browser": "ALL"}
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("WebDriver session")
}

/// chromedriver's `POST /session/{id}/se/log` (the browser console).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// Console entries at level SEVERE (errors) since the last read.
async fn console_errors(c: &Client) -> Vec<String> {
    let logs = c.issue_cmd(BrowserLog).await.expect("browser log");
    logs.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Wait (bounded, by condition) until the page shows `css`.
async fn wait_for(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"));
}

async fn sign_in(c: &Client, email: &str, password: &str) {
    c.find(Locator::Css("input[name=email]"))
        .await
        .unwrap()
        .send_keys(email)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_uses_the_console_in_a_real_browser() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let app = TestApp::spawn().await;
    add_operator(&app).await;
    let seeded = seed_console(&app).await;
    app.register_user("human@mana.test").await;
    let c = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        // No session: the console sends the browser to sign in, then back.
        c.goto(&app.url("/console/tokens")).await.unwrap();
        assert_eq!(c.current_url().await.unwrap().path(), "/console/login");
        sign_in(&c, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
        wait_for(&c, "form.logout").await;
        assert_eq!(c.current_url().await.unwrap().path(), "/console/tokens");

        // The scoreboard lists the seeded modules worst first.
        c.goto(&app.url("/console")).await.unwrap();
        let mut modules = Vec::new();
        for row in c
            .find_all(Locator::Css("#scoreboard tbody tr"))
            .await
            .unwrap()
        {
            modules.push(row.attr("data-module").await.unwrap().unwrap());
        }
        assert_eq!(modules, vec!["notes", "journal", "todo"]);

        // A run page shows its transcript as a conversation, errors highlighted.
        c.goto(&app.url(&format!("/console/runs/{}", seeded.ok_run)))
            .await
            .unwrap();
        let transcript = text_of(&c, "#transcript").await;
        assert!(
            transcript.contains("Ich lege meine Aufgaben an."),
            "{transcript}"
        );
        assert!(transcript.contains("Steuererklärung"), "{transcript}");
        let error = text_of(&c, "#transcript .msg.tool.error").await;
        assert!(error.contains("record store unavailable"), "{error}");

        // Pause Anna: the next claim does not take her.
        c.goto(&app.url("/console/personas")).await.unwrap();
        c.find(Locator::Css(
            r#"tr[data-slug="anna"] button[data-action="pause"]"#,
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        wait_for(&c, r#"tr[data-slug="anna"][data-paused="true"]"#).await;
        let claimed = app.claim("browser-test", 10, 60).await;
        let ids: Vec<&str> = claimed["personas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["userId"].as_str().unwrap())
            .collect();
        assert!(!ids.contains(&seeded.anna.to_string().as_str()), "{ids:?}");
        assert!(ids.contains(&seeded.ben.to_string().as_str()), "{ids:?}");

        // A form whose CSRF token was removed is refused and changes nothing.
        c.execute(
            r#"const f = document.querySelector('tr[data-slug="anna"] form[action$="/resume"]');
               f.querySelector('input[name="csrf_token"]').remove();
               f.submit();"#,
            vec![],
        )
        .await
        .unwrap();
        wait_for(&c, "section.error-box").await;
        let refused = text_of(&c, "main").await;
        assert!(
            refused.contains("403") && refused.contains("csrf_failed"),
            "{refused}"
        );
        assert_eq!(
            app.sql_count("SELECT count(*) AS n FROM personas WHERE paused")
                .await,
            1
        );
        // The 403 answer is logged as a console error: proof that the log is
        // read at all (the "no errors" checks below rely on it).
        let logged = console_errors(&c).await;
        assert!(logged.iter().any(|e| e.contains("403")), "{logged:?}");

        // Sign out; a human account is refused with 403.
        c.goto(&app.url("/console/personas")).await.unwrap();
        c.find(Locator::Css("form.logout button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "input[name=password]").await;
        assert_eq!(c.current_url().await.unwrap().path(), "/console/login");
        sign_in(&c, "human@mana.test", "a good password").await;
        wait_for(&c, "section.error-box").await;
        let refused = text_of(&c, "main").await;
        assert!(
            refused.contains("403") && refused.contains("not an operator"),
            "{refused}"
        );
        let _ = console_errors(&c).await;

        // Every page renders without a console error (CSP, missing assets, …).
        c.goto(&app.url("/console/login")).await.unwrap();
        sign_in(&c, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
        wait_for(&c, "form.logout").await;
        for path in [
            "/console".to_owned(),
            "/console/modules/notes".to_owned(),
            "/console/personas".to_owned(),
            format!("/console/runs/{}", seeded.ok_run),
            "/console/failures".to_owned(),
            "/console/tokens".to_owned(),
        ] {
            c.goto(&app.url(&path)).await.unwrap();
            assert_eq!(
                c.current_url().await.unwrap().path(),
                path.split('?').next().unwrap()
            );
            let errors = console_errors(&c).await;
            assert!(errors.is_empty(), "{path}: {errors:?}");
        }
        // The account (OAuth) pages share the console's frame and stylesheet.
        c.goto(&app.url("/oauth/connections")).await.unwrap();
        wait_for(&c, "header.top a.brand").await;
        wait_for(&c, "section.panel.account form").await;
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "/oauth/connections: {errors:?}");
        if let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") {
            for (name, path) in [
                ("scoreboard", "/console".to_owned()),
                ("module", "/console/modules/notes".to_owned()),
                ("personas", "/console/personas".to_owned()),
                ("run", format!("/console/runs/{}", seeded.ok_run)),
                ("connections", "/oauth/connections".to_owned()),
            ] {
                c.goto(&app.url(&path)).await.unwrap();
                let png = c.screenshot().await.unwrap();
                std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
            }
        }
    })
    .catch_unwind()
    .await;
    // Close the browser whatever happened, then report.
    let _ = c.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A loopback redirect URI on a port nobody listens on (the browser's
/// navigation fails there, but its URL is what the test reads).
fn unreachable_redirect() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/callback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_approves_an_app_in_a_real_browser_and_lands_on_its_redirect() {
    use crate::oauth::{CHALLENGE, PASSWORD, register_client};
    let Some(driver) = start_driver().await else {
        return;
    };
    let app = TestApp::spawn().await;
    app.register_user("consent@mana.test").await;
    let redirect = unreachable_redirect();
    let client_id = register_client(&app, &redirect).await;
    let mut authorize = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "browser-state-42")
        .append_pair("scope", "mcp")
        .append_pair("resource", &app.url("/mcp"));
    let c = browser(&driver).await;
    let result = std::panic::AssertUnwindSafe(async {
        c.goto(authorize.as_str()).await.unwrap();
        wait_for(&c, "form input[name=password]").await;
        let page = text_of(&c, "main").await;
        assert!(page.contains("Connect Test Client to Mana"), "{page}");
        assert!(page.contains("use the Mana tools as you"), "{page}");
        let errors = console_errors(&c).await;
        assert!(errors.is_empty(), "the consent page: {errors:?}");
        c.find(Locator::Css("input[name=email]"))
            .await
            .unwrap()
            .send_keys("consent@mana.test")
            .await
            .unwrap();
        c.find(Locator::Css("input[name=password]"))
            .await
            .unwrap()
            .send_keys(PASSWORD)
            .await
            .unwrap();
        c.find(Locator::Css("button[name=decision][value=approve]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The 303 to the client is followed by the browser, form-action and all
        // (a CSP refusal would leave it on /oauth/authorize). Bounded wait on
        // the condition.
        let mut landed = None;
        for _ in 0..200 {
            let url = c.current_url().await.unwrap();
            if url.as_str().starts_with(&redirect) {
                landed = Some(url);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let errors = console_errors(&c).await;
        let landed = landed.unwrap_or_else(|| {
            panic!(
                "the browser never reached {redirect}: at {:?}, console {errors:?}",
                futures::executor::block_on(c.current_url()).ok()
            )
        });
        assert!(
            !errors.iter().any(|e| e.contains("Content Security Policy")),
            "{errors:?}"
        );
        let params: std::collections::HashMap<String, String> =
            landed.query_pairs().into_owned().collect();
        assert_eq!(
            params.get("state").map(String::as_str),
            Some("browser-state-42")
        );
        assert_eq!(
            params.get("iss").map(String::as_str),
            Some(app.base.as_str())
        );
        let code = params.get("code").expect("a code on the redirect");
        assert_eq!(code.len(), 43, "{landed}");
        assert_eq!(
            app.sql_count("SELECT count(*) AS n FROM oauth_codes WHERE used_at IS NULL")
                .await,
            1
        );
    })
    .catch_unwind()
    .await;
    let _ = c.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
