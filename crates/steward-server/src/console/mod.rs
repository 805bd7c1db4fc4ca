//! The web console (`spec/console.md`): server-rendered pages at `/ui/` on the admin listener.
//!
//! The console is a surface over the admin API, not a second implementation of it: every page and
//! every button is an internal request into the admin API's own router, with the signed-in admin
//! token as its bearer. Roles, tenant scoping, validation and audit (`admin_action`,
//! `approval_decided` with the token as actor) are therefore those of the API by construction; the
//! console only decides which forms to show (from the same role table, [`crate::services::identity::admin::roles`]).
//!
//! Sessions ([`session`]) keep the token in this process's memory; the browser holds a random
//! session id in an `HttpOnly; SameSite=Strict; Path=/ui` cookie. Every state-changing request
//! carries the session's CSRF token (403 otherwise), and every response carries a strict CSP
//! (`script-src 'self'`: the only script is `/ui/assets/console.js`, served from the binary).

mod approvals;
mod audit;
mod inventory;
mod pages;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::http::RequestContext;
use crate::http::context::{ListenerName, request_context};
use crate::services::AppState;
use crate::services::identity::admin::{AdminPrincipal, authenticate};
use session::{COOKIE, SESSION_SECONDS, Session, Sessions};

/// The console's `content-security-policy`: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Largest admin API answer the console reads into memory (the JSONL export is streamed instead).
const MAX_API_BODY: usize = 32 * 1024 * 1024;

/// What every console handler shares.
#[derive(Clone)]
pub(crate) struct Console {
    pub state: AppState,
    /// The admin API router (without the console), called in-process.
    api: Router,
    pub sessions: Sessions,
    /// Whether the admin listener has TLS (the cookie is then `Secure`).
    secure: bool,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("secure", &self.secure).finish_non_exhaustive()
    }
}

/// Adds the console (`/`, `/ui`, `/ui/…`) to the admin router `api`.
pub fn mount(api: Router, state: AppState) -> Router {
    let console = Console {
        secure: state.config.admin.tls_enabled(),
        state,
        api: api.clone(),
        sessions: Sessions::default(),
    };
    let ui = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(approvals::home))
        .route("/ui/sign-in", get(sign_in_page).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/assets/{name}", get(pages::asset))
        .route("/ui/approvals/list", get(approvals::list_fragment))
        .route("/ui/approvals/{approval_id}/{action}", post(approvals::decide))
        .route("/ui/audit", get(audit::search))
        .route("/ui/audit/verify", get(audit::verify))
        .route("/ui/audit/export", get(audit::export))
        .route("/ui/inventory", get(inventory::page))
        .route("/ui/inventory/{kind}/{id}/{action}", post(inventory::toggle))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(|r, n| request_context(ListenerName("admin"), r, n)))
        .with_state(console);
    api.merge(ui)
}

/// The headers of every console response.
async fn security_headers(request: Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        axum::http::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A signed-in request: its session (id and record) and the admin behind the token, re-checked now.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub session_id: String,
    pub session: Arc<Session>,
    pub principal: AdminPrincipal,
    pub correlation_id: String,
}

/// An admin API answer: status and JSON body (null when the body is not JSON).
#[derive(Debug)]
pub(crate) struct ApiAnswer {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiAnswer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The error page of a refused call (the API's own status, code and message).
    pub fn error_page(&self, console: &Console, signed: &Signed, title: &str) -> Response {
        let code = self.body["error"].as_str().unwrap_or("error");
        let message = self.body["message"].as_str().unwrap_or("the admin API refused the request");
        let markup = pages::error_body(title, code, message);
        (self.status, pages::layout(console, Some(signed), title, "", markup)).into_response()
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn bearer_headers(token: &str) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    headers.insert(header::AUTHORIZATION, value);
    Some(headers)
}

/// Why a request is not (or no longer) signed in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NotSigned {
    /// No cookie, or an unknown or expired session.
    Missing,
    /// The session's token was revoked or expired: the session was ended.
    TokenEnded,
}

impl Console {
    /// The signed-in admin of a request, or why not. The token is re-authenticated with the admin
    /// API's own check on every request, so revocation and expiry end the session at once.
    pub async fn signed(&self, headers: &HeaderMap, context: &RequestContext) -> Result<Signed, NotSigned> {
        let session_id = session_cookie(headers).ok_or(NotSigned::Missing)?;
        let session = self.sessions.get(&session_id, self.state.clock.now()).ok_or(NotSigned::Missing)?;
        let bearer = bearer_headers(&session.token).ok_or(NotSigned::Missing)?;
        match authenticate(&self.state, &bearer).await {
            Ok(principal) => {
                Ok(Signed { session_id, session, principal, correlation_id: context.correlation_id.clone() })
            }
            Err(_) => {
                self.sessions.end(&session_id);
                Err(NotSigned::TokenEnded)
            }
        }
    }

    /// One admin API call as the signed-in admin, through the API's own router.
    pub async fn call(&self, signed: &Signed, method: Method, uri: &str, body: Option<Value>) -> ApiAnswer {
        let response = self.raw_call(signed, method, uri, body).await;
        let status = response.status();
        let body = match axum::body::to_bytes(response.into_body(), MAX_API_BODY).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        ApiAnswer { status, body }
    }

    /// [`Console::call`] returning the API's response as it is (for streaming).
    pub async fn raw_call(
        &self,
        signed: &Signed,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Response {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", signed.session.token.as_str()))
            .header("x-correlation-id", signed.correlation_id.as_str());
        let body = match body {
            Some(value) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        match builder.body(body) {
            Ok(request) => match self.api.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            Err(error) => crate::http::ApiError::internal(error).into_response(),
        }
    }

    fn cookie(&self, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text =
            format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={max_age}{secure}");
        HeaderValue::from_str(&text)
            .unwrap_or_else(|_| HeaderValue::from_static("steward_console=; Path=/ui"))
    }
}

/// Where a request that is not signed in goes: the sign-in page (pages) or 401 (fragments).
pub(crate) fn to_sign_in(why: NotSigned) -> Response {
    match why {
        NotSigned::Missing => Redirect::to("/ui/sign-in").into_response(),
        NotSigned::TokenEnded => Redirect::to("/ui/sign-in?ended=token").into_response(),
    }
}

/// 403 for a state-changing request without the session's CSRF token, or from another origin.
pub(crate) fn forbidden(console: &Console, signed: Option<&Signed>, why: &str) -> Response {
    let markup = pages::error_body("Refused", "console_csrf_invalid", why);
    (StatusCode::FORBIDDEN, pages::layout(console, signed, "Refused", "", markup)).into_response()
}

/// Refuses a state-changing request a browser marks as coming from another site: `Sec-Fetch-Site`
/// (sent by current browsers) must be `same-origin`; without it, an `Origin` other than `null` must
/// be this listener's own. (With `referrer-policy: no-referrer` browsers send `Origin: null` on form
/// posts, so `Sec-Fetch-Site` is the reliable signal.) Together with `SameSite=Strict` and the CSRF
/// token, forms of other sites never act.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let origin = origin.to_str().unwrap_or("");
    if origin == "null" {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|a| !host.is_empty() && a.eq_ignore_ascii_case(host))
}

/// Checks a state-changing request: signed in, same origin, and the session's CSRF token.
pub(crate) async fn check_post(
    console: &Console,
    headers: &HeaderMap,
    context: &RequestContext,
    csrf: Option<&str>,
) -> Result<Signed, Response> {
    let signed = match console.signed(headers, context).await {
        Ok(signed) => signed,
        Err(_) => {
            return Err(forbidden(
                console,
                None,
                "You are not signed in (or your session ended): sign in again.",
            ));
        }
    };
    if !same_origin(headers) {
        return Err(forbidden(console, Some(&signed), "This request came from another site."));
    }
    let presented = csrf.or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
    if !signed.session.csrf_matches(presented) {
        return Err(forbidden(
            console,
            Some(&signed),
            "The form's CSRF token is missing or wrong: reload the page and try again.",
        ));
    }
    Ok(signed)
}

/// An id taken from the console's own path, before it is put into an admin API path: ids are
/// letters, digits, `_` and `-` only, so no path or query can be smuggled into the internal call.
pub(crate) fn safe_id(id: &str) -> Option<&str> {
    (!id.is_empty()
        && id.len() <= 200
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then_some(id)
}

#[derive(Debug, serde::Deserialize)]
struct SignInQuery {
    ended: Option<String>,
}

async fn sign_in_page(State(console): State<Console>, query: axum::extract::Query<SignInQuery>) -> Markup {
    let ended = query.0.ended;
    pages::sign_in(&console, ended.as_deref(), None)
}

#[derive(Debug, serde::Deserialize)]
struct SignInForm {
    token: String,
}

async fn sign_in(
    State(console): State<Console>,
    headers: HeaderMap,
    form: Result<axum::Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden(&console, None, "This sign-in came from another site.");
    }
    let Ok(axum::Form(form)) = form else {
        return (StatusCode::BAD_REQUEST, pages::sign_in(&console, None, Some("Paste an admin token.")))
            .into_response();
    };
    let token = form.token.trim().to_owned();
    let checked = match bearer_headers(&token) {
        Some(bearer) => authenticate(&console.state, &bearer).await.ok(),
        None => None,
    };
    if checked.is_none() {
        let message = "That admin token is unknown, revoked or expired.";
        return (StatusCode::UNAUTHORIZED, pages::sign_in(&console, None, Some(message))).into_response();
    }
    let id = match console.sessions.open(token, console.state.clock.now()) {
        Ok(id) => id,
        Err(_) => return crate::http::ApiError::internal("no randomness for a session id").into_response(),
    };
    let mut response = Redirect::to("/ui/").into_response();
    response.headers_mut().insert(header::SET_COOKIE, console.cookie(&id, SESSION_SECONDS));
    response
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct CsrfForm {
    pub csrf: Option<String>,
}

async fn sign_out(
    State(console): State<Console>,
    axum::Extension(context): axum::Extension<RequestContext>,
    headers: HeaderMap,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.ok().and_then(|f| f.0.csrf);
    let signed = match check_post(&console, &headers, &context, csrf.as_deref()).await {
        Ok(signed) => signed,
        Err(response) => return response,
    };
    console.sessions.end(&signed.session_id);
    let mut response = Redirect::to("/ui/sign-in?ended=signed-out").into_response();
    response.headers_mut().insert(header::SET_COOKIE, console.cookie("", 0));
    response
}

/// The console URL for an admin listener address (logged by `steward serve`).
pub fn url(addr: std::net::SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("{scheme}://{host}:{}/ui/", addr.port())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_logged_url_reaches_the_listener() {
        let url = |a: &str, tls| super::url(a.parse().expect("address"), tls);
        assert_eq!(url("127.0.0.1:8080", false), "http://127.0.0.1:8080/ui/");
        assert_eq!(url("0.0.0.0:8080", true), "https://127.0.0.1:8080/ui/");
        assert_eq!(url("[::]:9000", false), "http://[::1]:9000/ui/");
    }
}
