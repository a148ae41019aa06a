//! The OAuth 2.1 authorization server of `/mcp` over real HTTP: discovery,
//! registration, sign-in + consent, code and refresh exchanges, revocation,
//! and every negative case the MCP authorization spec cares about.

use chrono::TimeDelta;
use reqwest::{StatusCode, redirect::Policy};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// Form bodies and query strings without reqwest's optional features.
pub trait RequestExt {
    fn form_body<T: serde::Serialize + ?Sized>(self, form: &T) -> Self;
    fn query_pairs<T: serde::Serialize + ?Sized>(self, query: &T) -> Self;
}

impl RequestExt for reqwest::RequestBuilder {
    fn form_body<T: serde::Serialize + ?Sized>(self, form: &T) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
    }

    fn query_pairs<T: serde::Serialize + ?Sized>(self, query: &T) -> Self {
        let (client, req) = self.build_split();
        let mut req = req.unwrap();
        let q = serde_urlencoded::to_string(query).unwrap();
        req.url_mut().set_query(Some(&q));
        reqwest::RequestBuilder::from_parts(client, req)
    }
}
use crate::mcp::{call, connect, structured};

pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";
pub const PASSWORD: &str = "a good password";
/// RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A client that does not follow redirects (we read `Location`).
fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn resource(app: &TestApp) -> String {
    app.url("/mcp")
}

pub async fn register_client(app: &TestApp, redirect: &str) -> String {
    let resp = app
        .client
        .post(app.url("/oauth/register"))
        .json(&json!({
            "redirect_uris": [redirect],
            "client_name": "Test Client",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_endpoint_auth_method"], "none");
    body["client_id"].as_str().unwrap().to_owned()
}

/// `fields` with each of `extra` replacing the field of its name; an empty value
/// removes the field.
fn with_fields(fields: &[(&str, &str)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (k, v) in extra {
        out.retain(|(name, _)| name != k);
        if !v.is_empty() {
            out.push(((*k).into(), (*v).into()));
        }
    }
    out
}

/// The authorization request of a public client with PKCE; `extra` as [`with_fields`].
fn authorize_query(
    app: &TestApp,
    client_id: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let resource = resource(app);
    with_fields(
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "st-123"),
            ("scope", "mcp"),
            ("resource", &resource),
        ],
        extra,
    )
}

/// `GET /oauth/authorize?query` without following the redirect.
async fn authorize(app: &TestApp, query: &[(String, String)]) -> reqwest::Response {
    no_redirect()
        .get(app.url("/oauth/authorize"))
        .query_pairs(query)
        .send()
        .await
        .unwrap()
}

/// A registered user (password [`PASSWORD`]) and a registered client; the client id.
async fn user_and_client(app: &TestApp, email: &str) -> String {
    app.register_user(email).await;
    register_client(app, REDIRECT).await
}

fn location_params(resp: &reqwest::Response) -> Vec<(String, String)> {
    let location = resp
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", resp.status()))
        .to_str()
        .unwrap();
    let url = url::Url::parse(location).unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn csrf_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("mana_oauth_csrf="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("csrf cookie")
}

/// GET the page, then POST the form as the browser would; the POST answer.
async fn submit_consent(
    app: &TestApp,
    query: &[(String, String)],
    email: &str,
    password: &str,
    decision: &str,
) -> reqwest::Response {
    let http = no_redirect();
    let page = http
        .get(app.url("/oauth/authorize"))
        .query_pairs(query)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_cookie(&page);
    let html = page.text().await.unwrap();
    assert!(html.contains("Test Client"), "the page names the client");
    assert!(
        html.contains(&format!("value=\"{csrf}\"")),
        "the form carries the csrf token"
    );
    let mut form: Vec<(String, String)> = query.to_vec();
    form.push(("csrf_token".into(), csrf.clone()));
    form.push(("email".into(), email.into()));
    form.push(("password".into(), password.into()));
    form.push(("decision".into(), decision.into()));
    http.post(app.url("/oauth/authorize"))
        .header("cookie", format!("mana_oauth_csrf={csrf}"))
        .form_body(&form)
        .send()
        .await
        .unwrap()
}

/// Sign in, approve, return the code.
pub async fn get_code(app: &TestApp, client_id: &str, email: &str) -> String {
    let resp = submit_consent(
        app,
        &authorize_query(app, client_id, &[]),
        email,
        PASSWORD,
        "approve",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let params = location_params(&resp);
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "iss"), Some(app.base.as_str()));
    param(&params, "code").expect("code").to_owned()
}

async fn token_request<T: serde::Serialize + ?Sized>(app: &TestApp, form: &T) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/token"))
        .form_body(form)
        .send()
        .await
        .unwrap()
}

async fn exchange(app: &TestApp, client_id: &str, code: &str, verifier: &str) -> reqwest::Response {
    exchange_with(app, client_id, code, &[("code_verifier", verifier)]).await
}

/// The code exchange a client makes, `extra` as [`with_fields`].
async fn exchange_with(
    app: &TestApp,
    client_id: &str,
    code: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let resource = resource(app);
    let form = with_fields(
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
            ("code_verifier", VERIFIER),
            ("resource", &resource),
        ],
        extra,
    );
    token_request(app, &form).await
}

async fn refresh(app: &TestApp, client_id: &str, token: &str) -> reqwest::Response {
    token_request(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ],
    )
    .await
}

/// 400 `invalid_grant`.
async fn assert_invalid_grant(resp: reqwest::Response) {
    assert_eq!(
        oauth_error(resp, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
}

/// The status of an RFC 7009 revocation with this form.
async fn revoke(app: &TestApp, form: &[(&str, &str)]) -> StatusCode {
    app.client
        .post(app.url("/oauth/revoke"))
        .form_body(form)
        .send()
        .await
        .unwrap()
        .status()
}

/// `GET /api/v1/oauth/grants` as `login`, asserted 200: the `grants` array.
async fn grants(app: &TestApp, login: &str) -> Value {
    let resp = app.get_as(login, "/api/v1/oauth/grants").await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json::<Value>().await.unwrap()["grants"].clone()
}

async fn oauth_error(resp: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body["error"].as_str().unwrap().to_owned()
}

/// (access, refresh) tokens for a fresh human user through the whole flow.
pub async fn tokens_for(app: &TestApp, email: &str) -> (String, String, String) {
    let client_id = user_and_client(app, email).await;
    let code = get_code(app, &client_id, email).await;
    let resp = exchange(app, &client_id, &code, VERIFIER).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "mcp");
    (
        client_id,
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// The status of an MCP `initialize` with this bearer token.
pub async fn mcp_status(app: &TestApp, token: &str) -> StatusCode {
    app.client
        .post(app.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}
        }))
        .send()
        .await
        .unwrap()
        .status()
}

fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_documents_name_the_issuer_and_endpoints() {
    let app = TestApp::spawn().await;
    let prm: Value = app
        .client
        .get(app.url("/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], resource(&app));
    assert_eq!(prm["authorization_servers"], json!([app.base]));
    let meta: Value = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], app.base);
    assert_eq!(meta["authorization_endpoint"], app.url("/oauth/authorize"));
    assert_eq!(meta["token_endpoint"], app.url("/oauth/token"));
    assert_eq!(meta["registration_endpoint"], app.url("/oauth/register"));
    assert_eq!(meta["revocation_endpoint"], app.url("/oauth/revoke"));
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        meta["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(meta["response_types_supported"], json!(["code"]));
    assert!(
        meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none"))
    );
    // The 401 of /mcp points at the metadata, as the MCP spec requires.
    let resp = app.client.post(app.url("/mcp")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(&app.url("/.well-known/oauth-protected-resource")),
        "{challenge}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_gives_tokens_that_work_on_mcp_and_refresh_rotates() {
    let app = TestApp::spawn().await;
    let (client_id, access, refresh_token) = tokens_for(&app, "flow@example.com").await;
    let claims = jwt_claims(&access);
    assert_eq!(claims["aud"], resource(&app));
    assert!(claims["gid"].is_string() && claims["jti"].is_string());
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 600);
    assert!(refresh_token.starts_with("mana_rt_"));
    let client = connect(&app, &access).await;
    let created = structured(&call(&client, "todo_create", json!({"title": "via oauth"})).await);
    assert!(created.to_string().contains("via oauth"));
    // The OAuth token is for /mcp only: the sync API refuses its audience.
    let resp = app.get_as(&access, "/api/v1/sync/pull?since=0").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Refresh: a new pair; the new access token works.
    let resp = refresh(&app, &client_id, &refresh_token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let rotated = body["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, refresh_token);
    let access2 = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(access2)["gid"], claims["gid"]);
    assert_eq!(mcp_status(&app, access2).await, StatusCode::OK);
    // Another client cannot use this client's refresh token.
    let other = register_client(&app, REDIRECT).await;
    assert_invalid_grant(refresh(&app, &other, rotated).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_is_required_and_plain_is_refused() {
    let app = TestApp::spawn().await;
    let client_id = register_client(&app, REDIRECT).await;
    for extra in [
        vec![("code_challenge", ""), ("code_challenge_method", "")],
        vec![("code_challenge_method", "plain")],
        vec![("code_challenge_method", "")],
        vec![("code_challenge", "short")],
    ] {
        let resp = authorize(&app, &authorize_query(&app, &client_id, &extra)).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{extra:?}");
        let params = location_params(&resp);
        assert_eq!(
            param(&params, "error"),
            Some("invalid_request"),
            "{extra:?}"
        );
        assert_eq!(param(&params, "state"), Some("st-123"));
        assert!(param(&params, "code").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_verifier_is_invalid_grant_and_burns_the_code() {
    let app = TestApp::spawn().await;
    let client_id = user_and_client(&app, "verifier@example.com").await;
    let code = get_code(&app, &client_id, "verifier@example.com").await;
    let wrong = "x".repeat(43);
    assert_invalid_grant(exchange(&app, &client_id, &code, &wrong).await).await;
    assert_invalid_grant(exchange(&app, &client_id, &code, VERIFIER).await).await;
    // No verifier at all is a malformed request.
    let code = get_code(&app, &client_id, "verifier@example.com").await;
    let resp = exchange_with(
        &app,
        &client_id,
        &code,
        &[("code_verifier", ""), ("resource", "")],
    )
    .await;
    assert_eq!(
        oauth_error(resp, StatusCode::BAD_REQUEST).await,
        "invalid_request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_is_refused_and_revokes_what_it_issued() {
    let app = TestApp::spawn().await;
    let client_id = user_and_client(&app, "reuse@example.com").await;
    let code = get_code(&app, &client_id, "reuse@example.com").await;
    let first = exchange(&app, &client_id, &code, VERIFIER).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(mcp_status(&app, access).await, StatusCode::OK);
    assert_invalid_grant(exchange(&app, &client_id, &code, VERIFIER).await).await;
    assert_eq!(mcp_status(&app, access).await, StatusCode::UNAUTHORIZED);
    let rt = first["refresh_token"].as_str().unwrap();
    assert_invalid_grant(refresh(&app, &client_id, rt).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_is_refused() {
    let app = TestApp::spawn().await;
    let client_id = user_and_client(&app, "expired@example.com").await;
    let code = get_code(&app, &client_id, "expired@example.com").await;
    app.clock.advance(TimeDelta::seconds(61));
    assert_invalid_grant(exchange(&app, &client_id, &code, VERIFIER).await).await;
    // Within 60 s it works.
    let code = get_code(&app, &client_id, "expired@example.com").await;
    app.clock.advance(TimeDelta::seconds(59));
    assert_eq!(
        exchange(&app, &client_id, &code, VERIFIER).await.status(),
        StatusCode::OK
    );
    // Codes expired for over a day are swept when the next one is issued.
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_codes").await,
        2
    );
    app.clock.advance(TimeDelta::days(2));
    get_code(&app, &client_id, "expired@example.com").await;
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_codes").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_are_bound_to_client_and_redirect_uri() {
    let app = TestApp::spawn().await;
    let client_id = user_and_client(&app, "bound@example.com").await;
    let other = register_client(&app, REDIRECT).await;
    let code = get_code(&app, &client_id, "bound@example.com").await;
    assert_invalid_grant(exchange(&app, &other, &code, VERIFIER).await).await;
    let code = get_code(&app, &client_id, "bound@example.com").await;
    let other_uri = [
        ("redirect_uri", "http://127.0.0.1:1/other"),
        ("resource", ""),
    ];
    assert_invalid_grant(exchange_with(&app, &client_id, &code, &other_uri).await).await;
    let resp = exchange_with(&app, "nobody", &code, &[("resource", "")]).await;
    assert_eq!(
        oauth_error(resp, StatusCode::UNAUTHORIZED).await,
        "invalid_client"
    );
    let resp = token_request(
        &app,
        &[("grant_type", "password"), ("client_id", &client_id)],
    )
    .await;
    assert_eq!(
        oauth_error(resp, StatusCode::BAD_REQUEST).await,
        "unsupported_grant_type"
    );
    let resp = app
        .client
        .post(app.url("/oauth/token"))
        .json(&json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(resp, StatusCode::BAD_REQUEST).await,
        "invalid_request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_redirect_uri_gets_a_page_not_a_redirect() {
    let app = TestApp::spawn().await;
    let client_id = register_client(&app, REDIRECT).await;
    for (name, value) in [
        ("redirect_uri", "http://127.0.0.1:53682/evil"),
        ("client_id", "unknown-client"),
    ] {
        let resp = authorize(&app, &authorize_query(&app, &client_id, &[(name, value)])).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{name}");
        assert!(resp.headers().get("location").is_none());
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_for_another_audience_is_invalid_target() {
    let app = TestApp::spawn().await;
    let client_id = user_and_client(&app, "target@example.com").await;
    let other = [("resource", "https://other.example/mcp")];
    let resp = authorize(&app, &authorize_query(&app, &client_id, &other)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let params = location_params(&resp);
    assert_eq!(param(&params, "error"), Some("invalid_target"));
    assert_eq!(param(&params, "state"), Some("st-123"));
    // At the token endpoint too.
    let code = get_code(&app, &client_id, "target@example.com").await;
    let other = [("resource", "https://other.example/mcp")];
    let resp = exchange_with(&app, &client_id, &code, &other).await;
    assert_eq!(
        oauth_error(resp, StatusCode::BAD_REQUEST).await,
        "invalid_target"
    );
    // An unknown scope is refused as well.
    let resp = authorize(
        &app,
        &authorize_query(&app, &client_id, &[("scope", "admin")]),
    )
    .await;
    assert_eq!(
        param(&location_params(&resp), "error"),
        Some("invalid_scope")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_resource_means_ours_and_the_token_endpoint_keeps_the_grants() {
    let app = TestApp::spawn().await;
    let email = "no-resource@example.com";
    let client_id = user_and_client(&app, email).await;
    // Some real clients send no `resource`: the grant is for our MCP endpoint.
    let query = authorize_query(&app, &client_id, &[("resource", "")]);
    let resp = submit_consent(&app, &query, email, PASSWORD, "approve").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let code = param(&location_params(&resp), "code").unwrap().to_owned();
    let resp = exchange_with(&app, &client_id, &code, &[("resource", "")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(access)["aud"], resource(&app));
    assert_eq!(mcp_status(&app, access).await, StatusCode::OK);
    // The grant was made for `http://127.0.0.1:…/mcp`. A client that reaches
    // us as `localhost` and names that resource asks for another audience:
    // refused at the code exchange and at the refresh, and neither is spent.
    let port = url::Url::parse(&app.base).unwrap().port().unwrap();
    let host = format!("localhost:{port}");
    let elsewhere = format!("http://{host}/mcp");
    let as_localhost = |form: Vec<(String, String)>| {
        app.client
            .post(app.url("/oauth/token"))
            .header("host", &host)
            .form_body(&form)
            .send()
    };
    let code = get_code(&app, &client_id, email).await;
    let form = with_fields(
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", VERIFIER),
        ],
        &[("resource", &elsewhere)],
    );
    let resp = as_localhost(form).await.unwrap();
    assert_eq!(
        oauth_error(resp, StatusCode::BAD_REQUEST).await,
        "invalid_target"
    );
    let resp = exchange(&app, &client_id, &code, VERIFIER).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rt = resp.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let form = with_fields(
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &client_id),
        ],
        &[("resource", &elsewhere)],
    );
    let resp = as_localhost(form).await.unwrap();
    assert_eq!(
        oauth_error(resp, StatusCode::BAD_REQUEST).await,
        "invalid_target"
    );
    let other = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", client_id.as_str()),
        ("resource", "https://other.example/mcp"),
    ];
    assert_eq!(
        oauth_error(token_request(&app, &other).await, StatusCode::BAD_REQUEST).await,
        "invalid_target"
    );
    // The refresh token still works with its grant's resource (or none).
    let ours = resource(&app);
    let mut right = other.to_vec();
    right[3] = ("resource", ours.as_str());
    assert_eq!(token_request(&app, &right).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_kills_the_grant() {
    let app = TestApp::spawn().await;
    let (client_id, access, rt1) = tokens_for(&app, "rotation@example.com").await;
    let resp = refresh(&app, &client_id, &rt1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let rt2 = body["refresh_token"].as_str().unwrap().to_owned();
    let access2 = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(mcp_status(&app, &access2).await, StatusCode::OK);
    // Replaying the rotated token: refused, and the whole grant dies.
    assert_invalid_grant(refresh(&app, &client_id, &rt1).await).await;
    assert_invalid_grant(refresh(&app, &client_id, &rt2).await).await;
    assert_eq!(mcp_status(&app, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(mcp_status(&app, &access2).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_get_401_on_mcp() {
    let app = TestApp::spawn().await;
    // RFC 7009 with the refresh token.
    let (client_id, access, rt) = tokens_for(&app, "revoke@example.com").await;
    assert_eq!(mcp_status(&app, &access).await, StatusCode::OK);
    assert_eq!(
        revoke(
            &app,
            &[("token", rt.as_str()), ("client_id", client_id.as_str())]
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(mcp_status(&app, &access).await, StatusCode::UNAUTHORIZED);
    assert_invalid_grant(refresh(&app, &client_id, &rt).await).await;
    // RFC 7009 with the access token of a second grant.
    let code = get_code(&app, &client_id, "revoke@example.com").await;
    let body: Value = exchange(&app, &client_id, &code, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(mcp_status(&app, access).await, StatusCode::OK);
    assert_eq!(revoke(&app, &[("token", access)]).await, StatusCode::OK);
    assert_eq!(mcp_status(&app, access).await, StatusCode::UNAUTHORIZED);
    // An unknown token is 200 as well (RFC 7009 §2.2).
    assert_eq!(revoke(&app, &[("token", "nonsense")]).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_list_and_disconnect_their_apps_and_only_theirs() {
    let app = TestApp::spawn().await;
    let (_, access, _) = tokens_for(&app, "owner@example.com").await;
    let owner_login = login(&app, "owner@example.com").await;
    let (_, stranger) = app.register_user("stranger@example.com").await;
    let list = grants(&app, &owner_login).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["clientName"], "Test Client");
    assert_eq!(list[0]["resource"], resource(&app));
    let id = list[0]["id"].as_str().unwrap();
    assert_eq!(grants(&app, &stranger).await, json!([]));
    let resp = app
        .delete_as(&stranger, &format!("/api/v1/oauth/grants/{id}"))
        .await;
    assert_eq!(
        crate::helpers::error_code(resp, StatusCode::NOT_FOUND).await,
        "not_found"
    );
    assert_eq!(mcp_status(&app, &access).await, StatusCode::OK);
    let resp = app
        .delete_as(&owner_login, &format!("/api/v1/oauth/grants/{id}"))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(mcp_status(&app, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(grants(&app, &owner_login).await, json!([]));
    // An OAuth access token is not a login token for the JSON API.
    let resp = app.get_as(&access, "/api/v1/oauth/grants").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// A login token of a user registered with [`PASSWORD`].
pub async fn login(app: &TestApp, email: &str) -> String {
    app.login(email, PASSWORD).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_token_never_sees_this_users_records() {
    let app = TestApp::spawn().await;
    let (_, alice, _) = tokens_for(&app, "alice@example.com").await;
    let (_, bob, _) = tokens_for(&app, "bob@example.com").await;
    let a = connect(&app, &alice).await;
    structured(&call(&a, "todo_create", json!({"title": "Alice geheim"})).await);
    let b = connect(&app, &bob).await;
    let seen = structured(&call(&b, "todo_list", json!({})).await);
    assert!(!seen.to_string().contains("Alice geheim"), "{seen}");
    let mine = structured(&call(&a, "todo_list", json!({})).await);
    assert!(mine.to_string().contains("Alice geheim"), "{mine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refuses_personas_wrong_passwords_missing_csrf_and_deny() {
    let app = TestApp::spawn().await;
    app.register_user("human@example.com").await;
    app.seed_personas("oauth-persona", 1, "daily").await;
    let client_id = register_client(&app, REDIRECT).await;
    let query = authorize_query(&app, &client_id, &[]);
    let persona_email = "persona.oauth-persona-0@mana.test";
    let persona_password =
        service_kit::persona_password::persona_password(crate::helpers::SEED_SECRET, persona_email);
    let resp = submit_consent(&app, &query, persona_email, &persona_password, "approve").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_codes").await,
        0
    );
    let resp = submit_consent(
        &app,
        &query,
        "human@example.com",
        "wrong password",
        "approve",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Wrong email or password")
    );
    let resp = submit_consent(&app, &query, "human@example.com", PASSWORD, "deny").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let params = location_params(&resp);
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("st-123"));
    // A forged POST without the CSRF cookie.
    let mut form = query.clone();
    form.extend([
        ("csrf_token".into(), "x".repeat(43)),
        ("email".into(), "human@example.com".into()),
        ("password".into(), PASSWORD.into()),
        ("decision".into(), "approve".into()),
    ]);
    let resp = no_redirect()
        .post(app.url("/oauth/authorize"))
        .form_body(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_codes").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_validates_metadata_and_is_rate_limited() {
    let app = TestApp::spawn_with(|s| s.oauth.registrations_per_ip_per_hour = 3).await;
    let post = |body: Value| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/oauth/register"))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    for (body, code) in [
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://ok.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (json!({"client_name": "no uris"}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://ok.example/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://ok.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": "https://ok.example/cb"}),
            "invalid_client_metadata",
        ),
    ] {
        assert_eq!(
            oauth_error(post(body.clone()).await, StatusCode::BAD_REQUEST).await,
            code,
            "{body}"
        );
    }
    let resp = app
        .client
        .post(app.url("/oauth/register"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(resp, StatusCode::BAD_REQUEST).await,
        "invalid_client_metadata"
    );
    for uri in [
        "https://claude.ai/api/mcp/auth_callback",
        "http://localhost:6274/oauth/callback",
        "http://[::1]:9/cb",
    ] {
        let resp = post(
            json!({"redirect_uris": [uri], "token_endpoint_auth_method": "client_secret_post"}),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{uri}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_endpoint_auth_method"], "none");
        assert!(body.get("client_secret").is_none());
    }
    let resp = post(json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    // The window slides with the clock.
    app.clock.advance(TimeDelta::minutes(61));
    assert_eq!(
        post(json!({"redirect_uris": [REDIRECT]})).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connections_page_signs_in_and_disconnects() {
    let app = TestApp::spawn().await;
    let (_, access, _) = tokens_for(&app, "page@example.com").await;
    let http = no_redirect();
    let page = http
        .get(app.url("/oauth/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_cookie(&page);
    let cookie = format!("mana_oauth_csrf={csrf}");
    let resp = http
        .post(app.url("/oauth/connections/sign-in"))
        .header("cookie", &cookie)
        .form_body(&[
            ("csrf_token", csrf.as_str()),
            ("email", "page@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("mana_oauth_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let cookies = format!("{cookie}; {session}");
    let page = || async {
        http.get(app.url("/oauth/connections"))
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let html = page().await;
    assert!(html.contains("Test Client"), "{html}");
    let grant: String = {
        let start = html.find("/oauth/connections/").unwrap() + "/oauth/connections/".len();
        html[start..start + 36].to_owned()
    };
    let disconnect = |csrf: String| {
        let request = http
            .post(app.url(&format!("/oauth/connections/{grant}/disconnect")))
            .header("cookie", &cookies)
            .form_body(&[("csrf_token", csrf)]);
        async move { request.send().await.unwrap().status() }
    };
    // Without the CSRF token nothing happens.
    assert_eq!(disconnect(String::new()).await, StatusCode::FORBIDDEN);
    assert_eq!(mcp_status(&app, &access).await, StatusCode::OK);
    assert_eq!(disconnect(csrf).await, StatusCode::SEE_OTHER);
    assert_eq!(mcp_status(&app, &access).await, StatusCode::UNAUTHORIZED);
    let html = page().await;
    assert!(html.contains("No app is connected"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_exchanges_of_one_code_or_refresh_token_never_both_win() {
    let app = TestApp::spawn().await;
    let client_id = user_and_client(&app, "race@example.com").await;
    let code = get_code(&app, &client_id, "race@example.com").await;
    let (a, b) = tokio::join!(
        exchange(&app, &client_id, &code, VERIFIER),
        exchange(&app, &client_id, &code, VERIFIER)
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_grants")
            .await,
        1
    );
    // The same for one refresh token: one rotation wins; the loser is a replay
    // and takes the grant down (the rotated chain must not fork).
    // The loser of the code race counts as a replay: the winner's grant is revoked.
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_grants WHERE revoked_at IS NOT NULL")
            .await,
        1
    );
    let (cid, _, rt) = tokens_for(&app, "race2@example.com").await;
    let (a, b) = tokio::join!(refresh(&app, &cid, &rt), refresh(&app, &cid, &rt));
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_grants g JOIN users u ON u.id = g.user_id WHERE u.email = 'race2@example.com' AND g.revoked_at IS NOT NULL").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_name_itself_with_http_basic() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let client_id = user_and_client(&app, "basic@example.com").await;
    let code = get_code(&app, &client_id, "basic@example.com").await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:ignored"));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let resp = app
        .client
        .post(app.url("/oauth/token"))
        .header("authorization", format!("Basic {basic}"))
        .form_body(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // A body naming another client than the header is refused.
    let code = get_code(&app, &client_id, "basic@example.com").await;
    let mut form = form.to_vec();
    form[1] = ("code", code.as_str());
    form.push(("client_id", "someone-else"));
    let resp = app
        .client
        .post(app.url("/oauth/token"))
        .header("authorization", format!("Basic {basic}"))
        .form_body(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(resp, StatusCode::BAD_REQUEST).await,
        "invalid_request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_page_says_what_the_app_asks_for() {
    let app = TestApp::spawn().await;
    let client_id = register_client(&app, REDIRECT).await;
    let resp = authorize(&app, &authorize_query(&app, &client_id, &[])).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Its form may end at this client's redirect origin, nowhere else.
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:53682;"),
        "{csp}"
    );
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("Connect <strong>Test Client</strong>"),
        "{html}"
    );
    assert!(html.contains("<code>mcp</code>"), "{html}");
    assert!(
        html.contains("use the Mana tools as you")
            && html.contains("read and change your todos")
            && html.contains("never delete"),
        "{html}"
    );
    assert!(
        html.contains("<code>127.0.0.1</code>"),
        "the redirect host: {html}"
    );
    assert!(html.contains(&resource(&app)), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_gets_401_on_mcp_and_a_refresh_brings_a_new_one() {
    let app = TestApp::spawn_with(|s| s.oauth.access_ttl_secs = 300).await;
    let (client_id, access, rt) = tokens_for(&app, "expiring@example.com").await;
    app.clock.advance(TimeDelta::seconds(290));
    assert_eq!(mcp_status(&app, &access).await, StatusCode::OK);
    // Past the lifetime and the verifier's 30 s allowance for clock skew.
    app.clock.advance(TimeDelta::seconds(45));
    assert_eq!(mcp_status(&app, &access).await, StatusCode::UNAUTHORIZED);
    let resp = refresh(&app, &client_id, &rt).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        mcp_status(&app, body["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_expires_after_refresh_ttl_days() {
    let app = TestApp::spawn_with(|s| s.oauth.refresh_ttl_days = 2).await;
    let (client_id, _, rt1) = tokens_for(&app, "refresh-ttl@example.com").await;
    // Just inside its lifetime it rotates; the new one lives 2 days from now.
    app.clock
        .advance(TimeDelta::days(2) - TimeDelta::seconds(1));
    let resp = refresh(&app, &client_id, &rt1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rt2 = resp.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance(TimeDelta::days(2));
    let resp = refresh(&app, &client_id, &rt2).await;
    let body: Value = {
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        resp.json().await.unwrap()
    };
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_are_stored_only_as_digests() {
    let app = TestApp::spawn().await;
    let (client_id, _, rt1) = tokens_for(&app, "digest@example.com").await;
    let resp = refresh(&app, &client_id, &rt1).await;
    let rt2 = resp.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for rt in [&rt1, &rt2] {
        // Its SHA-256 is there, once …
        assert_eq!(
            app.sql_count(&format!(
                "SELECT count(*) AS n FROM oauth_refresh_tokens \
                 WHERE token_hash = sha256(convert_to('{rt}', 'UTF8'))"
            ))
            .await,
            1
        );
        // … and the secret itself nowhere: not as bytes, not in any column's text.
        let secret = rt.strip_prefix("mana_rt_").unwrap();
        assert_eq!(
            app.sql_count(&format!(
                "SELECT count(*) AS n FROM oauth_refresh_tokens t \
                 WHERE position(convert_to('{secret}', 'UTF8') IN t.token_hash) > 0 \
                    OR t::text LIKE '%{secret}%'"
            ))
            .await,
            0
        );
    }
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_refresh_tokens")
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_access_token_never_sees_another_users_records() {
    let app = TestApp::spawn().await;
    let pat = |login: String| {
        let app = &app;
        async move {
            let resp = app
                .client
                .post(app.url("/api/v1/tokens"))
                .bearer_auth(login)
                .json(&json!({"name": "cli", "scope": "mcp"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED);
            resp.json::<Value>().await.unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (_, alice_login) = app.register_user("alice-pat@example.com").await;
    let (_, bob_login) = app.register_user("bob-pat@example.com").await;
    let alice = connect(&app, &pat(alice_login).await).await;
    let created = structured(&call(&alice, "todo_create", json!({"title": "Alice privat"})).await);
    assert!(created.to_string().contains("Alice privat"), "{created}");
    let bob = connect(&app, &pat(bob_login).await).await;
    let seen = structured(&call(&bob, "todo_list", json!({})).await);
    assert!(!seen.to_string().contains("Alice privat"), "{seen}");
    let mine = structured(&call(&alice, "todo_list", json!({})).await);
    assert!(mine.to_string().contains("Alice privat"), "{mine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_never_exceed_the_limit() {
    let app = TestApp::spawn_with(|s| s.oauth.registrations_per_ip_per_hour = 3).await;
    let attempts = (0..12).map(|_| {
        app.client
            .post(app.url("/oauth/register"))
            .json(&json!({"redirect_uris": [REDIRECT]}))
            .send()
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((created, limited), (3, 9), "{statuses:?}");
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_clients")
            .await,
        3
    );
}

/// `POST /oauth/connections/sign-in` with a fresh CSRF pair: the answer.
async fn connections_sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let http = no_redirect();
    let page = http
        .get(app.url("/oauth/connections"))
        .send()
        .await
        .unwrap();
    let csrf = csrf_cookie(&page);
    http.post(app.url("/oauth/connections/sign-in"))
        .header("cookie", format!("mana_oauth_csrf={csrf}"))
        .form_body(&[
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

async fn assert_rate_limited(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "900");
    assert_eq!(resp.headers()["x-error-code"], "rate_limited");
    assert!(resp.headers().get("location").is_none());
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("too many failed sign-ins; try again in 15 minutes"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_storms_on_the_oauth_sign_ins_get_429() {
    let app = TestApp::spawn_with(|s| {
        s.console.login_failures_per_email = 3;
        s.console.login_failures_per_ip = 5;
    })
    .await;
    let email = "storm@example.com";
    let client_id = user_and_client(&app, email).await;
    let query = authorize_query(&app, &client_id, &[]);
    for _ in 0..3 {
        let resp = submit_consent(&app, &query, email, "guess", "approve").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // The email is locked on every password form, even with the right
    // password and another case; no code is issued.
    assert_rate_limited(
        submit_consent(&app, &query, &email.to_uppercase(), PASSWORD, "approve").await,
    )
    .await;
    assert_rate_limited(connections_sign_in(&app, email, PASSWORD).await).await;
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_codes").await,
        0
    );
    // Two failures for another email on the connections page fill the
    // address's allowance (3 + 2 = 5): a third email is refused too.
    for _ in 0..2 {
        let resp = connections_sign_in(&app, "nobody@example.com", "guess").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    assert_rate_limited(
        submit_consent(&app, &query, "third@example.com", "guess", "approve").await,
    )
    .await;
    // After the window the user signs in and approves, which forgets the
    // email's failures.
    app.clock.advance(TimeDelta::minutes(16));
    get_code(&app, &client_id, email).await;
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM console_login_failures WHERE email = '{email}'"
        ))
        .await,
        0
    );
}
