//! The shared look and the browser plumbing of auth-internal's HTML pages
//! (the operator console, and any sign-in or consent page).
//!
//! Rules:
//! - Pages are rendered on the server with maud into a `String`; there is no
//!   JavaScript, no build step and nothing fetched from elsewhere: the one
//!   stylesheet is compiled in and served by the app itself ([`STYLESHEET_PATH`]).
//! - Every HTML answer carries the same security headers ([`html_response`]):
//!   a strict Content-Security-Policy, no framing, no caching.
//! - Every state-changing form carries a CSRF token ([`csrf`]); sessions are
//!   server-side and stored hashed ([`session`]); failed password sign-ins
//!   are limited the same way on every form ([`sign_in_limit`]).

pub mod charts;
pub mod csrf;
pub mod layout;
pub mod session;
pub mod sign_in_limit;

pub use layout::{Nav, html_response, page};

/// Where the console's stylesheet is served.
pub const STYLESHEET_PATH: &str = "/console/static/console.css";

/// The stylesheet's text (compiled in).
pub const STYLESHEET: &str = include_str!("console.css");
