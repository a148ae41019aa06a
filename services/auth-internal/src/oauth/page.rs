//! Server-rendered pages of the OAuth flow (maud): sign-in + consent, errors,
//! and the user's connected apps.
//!
//! Rules:
//! - No JavaScript, no external assets: the pages work offline and in any
//!   browser an MCP client opens.
//! - Every form carries the CSRF token that is also in the `mana_oauth_csrf`
//!   cookie (double submit, `SameSite=Strict`, `HttpOnly`); POST handlers
//!   compare them in constant time.
//! - All pages go through [`layout`] and [`respond`]: the console's shared frame,
//!   stylesheet and security headers (`web::layout`), one look for both.
//! - Pages are never cached and may not be framed (clickjacking of the
//!   approve button). Forms go to this origin only; the consent page's may
//!   also end at the client's redirect origin (CSP `form-action`, which
//!   browsers apply to the redirect that answers the form).

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use subtle::ConstantTimeEq;

use crate::{error::AppError, web::layout};

/// Name of the CSRF cookie (path `/oauth`).
pub const CSRF_COOKIE: &str = "mana_oauth_csrf";
/// Name of the session cookie of the connected-apps page (path `/oauth`).
pub const SESSION_COOKIE: &str = "mana_oauth_session";

/// The page frame: the console's shared layout ([`layout::account_page`]).
pub fn layout(title: &str, body: Markup) -> Markup {
    layout::account_page(title, body)
}

/// An HTML answer with the shared security headers (forms go to this origin
/// only), and no referrer leaves (a code in a URL stays here).
pub fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    respond_with(status, markup, layout::FormTargets::SelfOnly)
}

/// The consent page's answer: its form may also end at the client's redirect
/// URI (the POST answers with a redirect there, which browsers check against
/// CSP `form-action`), and nowhere else.
pub fn respond_redirecting_to(
    status: StatusCode,
    markup: Markup,
    redirect_uri: &str,
) -> HttpResponse {
    let source = form_action_source(redirect_uri);
    respond_with(status, markup, layout::FormTargets::SelfAnd(&source))
}

fn respond_with(
    status: StatusCode,
    markup: Markup,
    forms: layout::FormTargets<'_>,
) -> HttpResponse {
    let mut resp = layout::html_response_with(status, markup, forms);
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The CSP source of a redirect URI's origin (`http://127.0.0.1:53682`). A host
/// CSP cannot name (an IPv6 literal such as `[::1]`; CSP host sources are
/// letters, digits, `-` and `.`) falls back to `*`, any http(s) URL.
pub fn form_action_source(redirect_uri: &str) -> String {
    let Ok(url) = url::Url::parse(redirect_uri) else {
        return "*".to_owned();
    };
    let expressible = matches!(url.host(), Some(url::Host::Domain(_) | url::Host::Ipv4(_)))
        && url.host_str().is_some_and(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        });
    if expressible && matches!(url.scheme(), "http" | "https") {
        url.origin().ascii_serialization()
    } else {
        "*".to_owned()
    }
}

/// The error page shown when we cannot (or must not) redirect back.
/// A page form's fields: a NUL anywhere is a 400 page naming the field; a malformed body
/// gives the form's defaults, so its CSRF check refuses it.
pub fn form_or_page<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, Box<HttpResponse>> {
    match service_kit::storable::parse_form(body) {
        Ok(form) => Ok(form),
        Err(e @ service_kit::storable::FormError::Nul { .. }) => Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "Please try again",
            &format!("{e}."),
        ))),
        Err(service_kit::storable::FormError::Malformed(_)) => Ok(T::default()),
    }
}

pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    respond(
        status,
        layout(
            title,
            html! {
                h1 { (title) }
                p.error { (message) }
                p.muted { "You can close this window and start again from your app." }
            },
        ),
    )
}

/// 429 `rate_limited`: too many failed sign-ins from this address or for this
/// email ([`crate::web::sign_in_limit`]); the same code and `Retry-After` as
/// the console's sign-in.
pub fn rate_limited(retry_after_secs: u64) -> HttpResponse {
    use crate::web::sign_in_limit::{RATE_LIMITED, refusal_message};
    let mut resp = respond(
        StatusCode::TOO_MANY_REQUESTS,
        layout(
            "Too many attempts",
            html! {
                h1 { "Too many attempts" }
                p.error role="alert" { (refusal_message(retry_after_secs)) " (" code { (RATE_LIMITED) } ")." }
                p.muted { "No password was checked. Wait, then start again from your app." }
            },
        ),
    );
    let headers = resp.headers_mut();
    headers.insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(retry_after_secs),
    );
    headers.insert(
        header::HeaderName::from_static("x-error-code"),
        header::HeaderValue::from_static(RATE_LIMITED),
    );
    resp
}

/// A cookie's value from the request's `Cookie` header.
pub fn cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value scoped to `/oauth`; `Secure` when served over https.
pub fn set_cookie(req: &HttpRequest, name: &str, value: &str, max_age_secs: i64) -> String {
    let secure = if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{name}={value}; Path=/oauth; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    )
}

/// The CSRF token of this browser: the cookie's, or a fresh one.
pub fn csrf_token(req: &HttpRequest) -> Result<(String, bool), AppError> {
    match cookie(req, CSRF_COOKIE).filter(|c| c.len() == 43) {
        Some(existing) => Ok((existing.to_owned(), false)),
        None => Ok((super::random_secret("")?, true)),
    }
}

/// Whether the form's CSRF token equals the cookie's.
pub fn csrf_ok(req: &HttpRequest, submitted: Option<&str>) -> bool {
    match (cookie(req, CSRF_COOKIE), submitted) {
        (Some(c), Some(s)) if !c.is_empty() => bool::from(c.as_bytes().ct_eq(s.as_bytes())),
        _ => false,
    }
}

/// What the consent page shows and carries.
pub struct ConsentView<'a> {
    pub client_name: &'a str,
    pub redirect_host: &'a str,
    pub scope: &'a str,
    pub resource: &'a str,
    /// Hidden fields: the authorization request, echoed back on submit.
    pub hidden: &'a [(&'static str, String)],
    pub csrf: &'a str,
    pub email: &'a str,
    pub error: Option<&'a str>,
}

/// Sign-in and consent in one form.
pub fn consent_page(v: &ConsentView<'_>) -> Markup {
    layout(
        "Connect an app",
        html! {
            h1 { "Connect " strong { (v.client_name) } " to Mana" }
            p {
                strong { (v.client_name) }
                " wants to use your Mana account. After you approve, you are sent back to "
                code { (v.redirect_host) } "."
            }
            p { "It asks for:" }
            ul.scopes {
                @for scope in v.scope.split(' ').filter(|s| !s.is_empty()) {
                    li {
                        code { (scope) } ": "
                        @if scope == super::SCOPE_MCP {
                            "use the Mana tools as you — read and change your todos, notes, journal, \
                             calendar, contacts, goals, habits, mood and missions (never delete)."
                        } @else { (scope) }
                    }
                }
            }
            p.muted { "Resource: " code { (v.resource) } }
            @if let Some(error) = v.error { p.error role="alert" { (error) } }
            form method="post" action="/oauth/authorize" {
                @for (name, value) in v.hidden {
                    input type="hidden" name=(name) value=(value);
                }
                input type="hidden" name="csrf_token" value=(v.csrf);
                label for="email" { "Email" }
                input #email type="email" name="email" value=(v.email) autocomplete="username" required;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password";
                div.actions {
                    button.primary type="submit" name="decision" value="approve" { "Sign in and approve" }
                    button.secondary type="submit" name="decision" value="deny" formnovalidate { "Deny" }
                }
            }
            p.muted { "Only approve apps you trust. You can disconnect it any time at "
                a href="/oauth/connections" { "connected apps" } "." }
        },
    )
}

/// The sign-in form of the connected-apps page.
pub fn connections_sign_in(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Connected apps",
        html! {
            h1 { "Connected apps" }
            p { "Sign in to see and disconnect the apps that use your Mana account." }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/oauth/connections/sign-in" {
                input type="hidden" name="csrf_token" value=(csrf);
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                div.actions { button.primary type="submit" { "Sign in" } }
            }
        },
    )
}

/// One row of the connected-apps list.
pub struct ConnectionRow {
    pub id: uuid::Uuid,
    pub client_name: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The user's connected apps with a disconnect button each.
pub fn connections_list(email: &str, rows: &[ConnectionRow], csrf: &str) -> Markup {
    let when = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    layout(
        "Connected apps",
        html! {
            h1 { "Connected apps" }
            p.muted { "Signed in as " (email) "." }
            @if rows.is_empty() {
                p { "No app is connected to your account." }
            } @else {
                table {
                    thead { tr { th { "App" } th { "Connected" } th { "Last used" } th {} } }
                    tbody {
                        @for row in rows {
                            tr {
                                td { (row.client_name) br; span.muted { code { (row.scope) } } }
                                td { (when(&row.created_at)) }
                                td { @if let Some(t) = &row.last_used_at { (when(t)) } @else { "never" } }
                                td {
                                    form method="post" action={ "/oauth/connections/" (row.id) "/disconnect" } {
                                        input type="hidden" name="csrf_token" value=(csrf);
                                        button type="submit" { "Disconnect" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::form_action_source;

    #[test]
    fn the_consent_form_may_end_at_the_redirect_origin_only() {
        for (uri, source) in [
            ("http://127.0.0.1:53682/callback", "http://127.0.0.1:53682"),
            (
                "https://claude.ai/api/mcp/auth_callback",
                "https://claude.ai",
            ),
            (
                "https://app.example:8443/cb?x=1",
                "https://app.example:8443",
            ),
            (
                "http://localhost:6274/oauth/callback",
                "http://localhost:6274",
            ),
            ("https://bücher.example/cb", "https://xn--bcher-kva.example"),
            ("http://[::1]:8080/cb", "*"),
            ("not a url", "*"),
        ] {
            assert_eq!(form_action_source(uri), source, "{uri}");
        }
    }
}
