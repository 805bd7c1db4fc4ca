//! The home page: pending approvals of the token's tenants, newest first, refreshed by
//! `console.js` every second from `/ui/approvals/list`; decided and expired ones in a history tab.
//! Buttons post to `/ui/approvals/{id}/{approve-once|approve-rule|deny|cancel}`, which call the
//! admin API's `POST /v1/approvals/{id}/…` as the signed-in token.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::{csrf_field, layout, pretty, text};
use super::{Console, Signed, check_post, safe_id, to_sign_in};
use crate::http::RequestContext;
use crate::services::identity::admin::roles;

#[derive(Debug, Default, Deserialize)]
pub struct HomeQuery {
    tab: Option<String>,
    done: Option<String>,
}

fn history(tab: Option<&str>) -> bool {
    tab == Some("history")
}

/// `GET /ui/`.
pub async fn home(
    State(console): State<Console>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    query: Query<HomeQuery>,
) -> Response {
    let signed = match console.signed(&headers, &context).await {
        Ok(signed) => signed,
        Err(why) => return to_sign_in(why),
    };
    let query = query.0;
    let history = history(query.tab.as_deref());
    let answer = console.call(&signed, Method::GET, "/v1/approvals", None).await;
    if !answer.ok() {
        return answer.error_page(&console, &signed, "Approvals");
    }
    let notice = match query.done.as_deref() {
        Some("approved") => Some("Approved."),
        Some("denied") => Some("Denied: an exact deny rule was created."),
        Some("canceled") => Some("Canceled."),
        _ => None,
    };
    let list = render_list(&signed, &answer.body, history);
    let poll = if history { "/ui/approvals/list?tab=history" } else { "/ui/approvals/list" };
    let main = html! {
        h1 { "Approvals" }
        nav.tabs aria-label="Approval lists" {
            a href="/ui/" aria-current=[(!history).then_some("page")] { "Pending" }
            a href="/ui/?tab=history" aria-current=[history.then_some("page")] { "History" }
        }
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        div id="approvals" data-poll=(poll) aria-live="polite" { (list) }
    };
    layout(&console, Some(&signed), "Approvals", "approvals", main).into_response()
}

/// `GET /ui/approvals/list`: the list alone (what the page polls); 401 once the session ended.
pub async fn list_fragment(
    State(console): State<Console>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    query: Query<HomeQuery>,
) -> Response {
    let signed = match console.signed(&headers, &context).await {
        Ok(signed) => signed,
        Err(_) => return (StatusCode::UNAUTHORIZED, "signed out").into_response(),
    };
    let history = history(query.0.tab.as_deref());
    let answer = console.call(&signed, Method::GET, "/v1/approvals", None).await;
    if !answer.ok() {
        let message =
            answer.body["message"].as_str().unwrap_or("the admin API refused the request").to_owned();
        return (answer.status, html! { p.error role="alert" { (message) } }).into_response();
    }
    render_list(&signed, &answer.body, history).into_response()
}

fn render_list(signed: &Signed, body: &Value, history: bool) -> Markup {
    let empty = Vec::new();
    let all = body["approvals"].as_array().unwrap_or(&empty);
    let shown: Vec<&Value> =
        all.iter().filter(|a| (a["status"].as_str() == Some("pending")) != history).collect();
    html! {
        @if shown.is_empty() {
            p.empty { @if history { "No decided or expired approvals yet." } @else { "No approval is waiting." } }
        }
        ul.cards {
            @for approval in shown { li { (card(signed, approval)) } }
        }
    }
}

/// The host and path of a descriptor's canonical URL.
fn host_and_path(descriptor: &Value) -> (String, String) {
    let url = descriptor["canonical_url"].as_str().unwrap_or("");
    match url::Url::parse(url) {
        Ok(url) => (url.host_str().unwrap_or("").to_owned(), url.path().to_owned()),
        Err(_) => (String::new(), url.to_owned()),
    }
}

fn card(signed: &Signed, approval: &Value) -> Markup {
    let id = text(&approval["approval_id"]);
    let descriptor = &approval["descriptor"];
    let (host, path) = host_and_path(descriptor);
    let status = text(&approval["status"]);
    let pending = status == "pending";
    let role = signed.principal.role;
    let may_decide = roles::DECIDE.contains(&role);
    let may_rule = roles::WRITE.contains(&role);
    let once_unused = status == "approved" && approval["mode"] == "once";
    html! {
        article.card id=(format!("approval-{id}")) data-approval=(id) data-status=(status) {
            header {
                span.risk data-risk=(text(&descriptor["risk_tier"])) { (text(&descriptor["risk_tier"])) }
                " "
                strong.group { (text(&descriptor["action_group"])) }
                " "
                code.request { (text(&descriptor["method"])) " " (host) (path) }
                span.status { (status) }
            }
            dl {
                dt { "Workload" } dd.workload { (text(&approval["workload_id"])) }
                dt { "Integration" } dd.integration { (text(&approval["integration_id"])) }
                dt { "Tenant" } dd { (text(&approval["tenant_id"])) }
                dt { "Action group" } dd { (text(&descriptor["action_group"])) }
                dt { "Risk tier" } dd { (text(&descriptor["risk_tier"])) }
                dt { "Method" } dd { (text(&descriptor["method"])) }
                dt { "Host" } dd { (host) }
                dt { "Path" } dd.path { (path) }
                dt { "Preview" }
                dd.preview {
                    @match &approval["preview"] {
                        Value::Object(values) if !values.is_empty() => {
                            dl.values {
                                @for (pointer, value) in values {
                                    dt { code { (pointer) } } dd { (text(value)) }
                                }
                            }
                        }
                        _ if approval["preview_redacted"] == true => { em { "hidden from auditors (not an approver)" } }
                        _ => { em { "none" } }
                    }
                }
                @if pending {
                    dt { "Expires" }
                    dd { time.countdown datetime=(text(&approval["expires_at"])) data-expires=(text(&approval["expires_at"])) { (text(&approval["expires_at"])) } }
                } @else {
                    dt { "Decided" } dd { (text(&approval["decided_at"])) " by " (text(&approval["decided_by"])) }
                    @if !approval["reason"].is_null() { dt { "Reason" } dd { (text(&approval["reason"])) } }
                }
                dt { "Created" } dd { (text(&approval["created_at"])) }
            }
            details {
                summary { "Proposed rule" }
                pre.rule { (pretty(&approval["proposed_rule"])) }
            }
            @if may_decide && (pending || once_unused) {
                div.actions {
                    @if pending {
                        (button(signed, &id, "approve-once", "Approve once", "primary"))
                        @if may_rule { (button(signed, &id, "approve-rule", "Approve as rule", "secondary")) }
                        (button(signed, &id, "deny", "Deny", "danger"))
                    }
                    (button(signed, &id, "cancel", "Cancel", "secondary"))
                }
            }
        }
    }
}

fn button(signed: &Signed, id: &str, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/ui/approvals/{id}/{action}")) {
            (csrf_field(signed))
            button class=(class) type="submit" id=(format!("{action}-{id}")) { (label) }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DecideForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// `POST /ui/approvals/{id}/{action}`.
pub async fn decide(
    State(console): State<Console>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    Path((approval_id, action)): Path<(String, String)>,
    form: Result<Form<DecideForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = form.ok().map(|f| f.0);
    let csrf = form.as_ref().and_then(|f| f.csrf.clone());
    let signed = match check_post(&console, &headers, &context, csrf.as_deref()).await {
        Ok(signed) => signed,
        Err(response) => return response,
    };
    let reason = form.and_then(|f| f.reason).filter(|r| !r.trim().is_empty());
    let reason_body = || reason.as_ref().map(|r| json!({"reason": r}));
    let (verb, body, done) = match action.as_str() {
        "approve-once" => ("approve", Some(json!({"mode": "once"})), "approved"),
        "approve-rule" => ("approve", Some(json!({"mode": "rule"})), "approved"),
        "deny" => ("deny", reason_body(), "denied"),
        "cancel" => ("cancel", reason_body(), "canceled"),
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    let Some(id) = safe_id(&approval_id) else {
        return (StatusCode::NOT_FOUND, "no such approval").into_response();
    };
    let answer = console.call(&signed, Method::POST, &format!("/v1/approvals/{id}/{verb}"), body).await;
    if !answer.ok() {
        return answer.error_page(&console, &signed, "The decision was refused");
    }
    Redirect::to(&format!("/ui/?done={done}")).into_response()
}
