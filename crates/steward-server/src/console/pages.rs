//! The page frame, the sign-in page, error bodies and the static assets (compiled into the binary:
//! the console needs nothing from any other host). maud escapes every interpolated value.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::{Console, Signed};
use crate::services::identity::admin::roles;

const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// `GET /ui/assets/{name}`: the one script and the one style sheet.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "console.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    response
}

/// The frame of every page: header, navigation (what the role may open), sign-out, main content.
pub fn layout(
    _console: &Console,
    signed: Option<&Signed>,
    title: &str,
    current: &str,
    main: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Steward" }
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Steward" }
                    @if let Some(signed) = signed {
                        nav aria-label="Console" {
                            a href="/ui/" aria-current=[(current == "approvals").then_some("page")] { "Approvals" }
                            @if roles::AUDIT.contains(&signed.principal.role) {
                                a href="/ui/audit" aria-current=[(current == "audit").then_some("page")] { "Audit" }
                            }
                            a href="/ui/inventory" aria-current=[(current == "inventory").then_some("page")] { "Inventory" }
                        }
                        span.who {
                            (signed.principal.name) " "
                            span.role { (signed.principal.role.as_str()) }
                        }
                        form.inline method="post" action="/ui/sign-out" {
                            (csrf_field(signed))
                            button.secondary type="submit" id="sign-out" { "Sign out" }
                        }
                    }
                }
                main id="main" { (main) }
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.session.csrf); }
}

pub fn sign_in(console: &Console, ended: Option<&str>, error: Option<&str>) -> Markup {
    let notice = match ended {
        Some("signed-out") => Some("You are signed out."),
        Some("token") => Some("Your session ended: its admin token was revoked or expired."),
        _ => None,
    };
    let main = html! {
        section.signin {
            h1 { "Sign in" }
            @if let Some(notice) = notice { p.notice role="status" { (notice) } }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/ui/sign-in" {
                label for="token" { "Admin token" }
                input id="token" name="token" type="password" autocomplete="off" required
                    placeholder="stw_adm_…" autofocus;
                p.hint { "The token stays on the server: the browser only gets a session cookie (12 h at most)." }
                button type="submit" id="sign-in" { "Sign in" }
            }
        }
    };
    layout(console, None, "Sign in", "", main)
}

pub fn error_body(title: &str, code: &str, message: &str) -> Markup {
    html! {
        section.problem role="alert" {
            h1 { (title) }
            p { code { (code) } }
            p.message { (message) }
            p { a href="/ui/" { "Back to approvals" } }
        }
    }
}

/// A JSON value as indented text (shown in `<pre>`, escaped).
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// A JSON field as display text.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
