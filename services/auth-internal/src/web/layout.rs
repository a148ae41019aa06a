//! The page frame every HTML page shares: `page(title, nav, body)`.
//!
//! Rules:
//! - One frame for all pages, the console's and the account (OAuth) pages
//!   ([`Site`]): the same `<head>`, stylesheet and header; the navigation
//!   appears only for a signed-in operator ([`Nav`]), and its logout button is
//!   a POST form with the session's CSRF token.
//! - Answers go through [`html_response`], which sets the security headers;
//!   nothing else builds an HTML response.

use actix_web::{
    HttpResponse,
    http::{StatusCode, header},
};
use maud::{DOCTYPE, Markup, html};

use super::{STYLESHEET_PATH, csrf};

/// The console sections, in navigation order: (key, label, path).
pub const SECTIONS: &[(&str, &str, &str)] = &[
    ("modules", "Modules", "/console"),
    ("personas", "Personas", "/console/personas"),
    ("failures", "Failures", "/console/failures"),
    ("tokens", "Tokens", "/console/tokens"),
];

/// The navigation of a signed-in operator.
#[derive(Debug, Clone, Copy)]
pub struct Nav<'a> {
    /// Key of the active section in [`SECTIONS`] (or any other string: none active).
    pub active: &'a str,
    /// The operator's email, shown in the header.
    pub operator: &'a str,
    /// The session's CSRF token, for the logout form.
    pub csrf_token: &'a str,
}

/// Whose page a document is: the brand in its header says where it belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The operator console (`/console`).
    Console,
    /// A user's account pages: OAuth sign-in and consent, connected apps (`/oauth`).
    Account,
}

/// A whole HTML document: head, header (with navigation when `nav` is set), `body`.
pub fn page(title: &str, nav: Option<&Nav<'_>>, body: Markup) -> Markup {
    frame(Site::Console, title, nav, body)
}

/// An account page (OAuth): the console's frame and stylesheet, without its
/// navigation, the body in one narrow panel.
pub fn account_page(title: &str, body: Markup) -> Markup {
    frame(
        Site::Account,
        title,
        None,
        html! { section.panel.account { (body) } },
    )
}

fn frame(site: Site, title: &str, nav: Option<&Nav<'_>>, body: Markup) -> Markup {
    let (suffix, home, sub) = match site {
        Site::Console => ("Mana console", "/console", "console"),
        Site::Account => ("Mana", "/oauth/connections", "account"),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if site == Site::Account { meta name="robots" content="noindex"; }
                title { (title) " · " (suffix) }
                link rel="stylesheet" href=(STYLESHEET_PATH);
                // No favicon request (it would 404 and log a console error).
                link rel="icon" href="data:,";
            }
            body {
                header.top {
                    a.brand href=(home) { "Mana" span.brand-sub { (sub) } }
                    @if let Some(nav) = nav {
                        nav.sections {
                            @for (key, label, path) in SECTIONS {
                                @if *key == nav.active {
                                    a.active href=(path) aria-current="page" { (label) }
                                } @else {
                                    a href=(path) { (label) }
                                }
                            }
                        }
                        form.logout method="post" action="/console/logout" {
                            (csrf::hidden_field(nav.csrf_token))
                            span.who { (nav.operator) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// Where a page's forms may send the browser (CSP `form-action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormTargets<'a> {
    /// This origin only (the console).
    SelfOnly,
    /// This origin and one more source (a CSP source expression such as
    /// `http://127.0.0.1:53682`): OAuth's consent answers its form with a
    /// redirect to the client's `redirect_uri`, which browsers check against
    /// `form-action` too.
    SelfAnd(&'a str),
}

/// An HTML answer with the security headers every page carries.
pub fn html_response(status: StatusCode, markup: Markup) -> HttpResponse {
    html_response_with(status, markup, FormTargets::SelfOnly)
}

/// [`html_response`] with the form targets of the page.
pub fn html_response_with(
    status: StatusCode,
    markup: Markup,
    forms: FormTargets<'_>,
) -> HttpResponse {
    let form_action = match forms {
        FormTargets::SelfOnly => "'self'".to_owned(),
        FormTargets::SelfAnd(source) => format!("'self' {source}"),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

/// A page that explains an error (the HTML twin of the JSON error envelope).
pub fn error_page(status: StatusCode, code: &str, message: &str, nav: Option<&Nav<'_>>) -> Markup {
    page(
        &format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
        nav,
        html! {
            section.error-box {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
                p { (message) }
                p.muted { "code: " code { (code) } }
                p { a href="/console" { "Back to the console" } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_escapes_and_shows_navigation_only_when_signed_in() {
        let anonymous = page("<x>", None, html! { p { "hi" } }).into_string();
        assert!(anonymous.contains("&lt;x&gt;"));
        assert!(!anonymous.contains("/console/logout"));
        let nav = Nav {
            active: "personas",
            operator: "op@mana.test",
            csrf_token: "tok\"en",
        };
        let signed_in = page("P", Some(&nav), html! {}).into_string();
        assert!(signed_in.contains(r#"action="/console/logout""#));
        assert!(signed_in.contains("tok&quot;en"));
        assert!(
            signed_in
                .contains(r#"<a class="active" href="/console/personas" aria-current="page">"#)
        );
        let account = account_page("Connect", html! { p { "hi" } }).into_string();
        assert!(account.contains(r#"<link rel="stylesheet" href="/console/static/console.css">"#));
        assert!(account.contains(r#"<section class="panel account"><p>hi</p></section>"#));
        assert!(!account.contains("/console/logout"));
    }
}
