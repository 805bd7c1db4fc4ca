//! Audit: search with the filters of `GET /v1/audit/events` (one page of 50, newest first, with a
//! next-page link carrying the API's cursor), each event's detail (every field and its chain
//! position) in a disclosure, "verify chain" per tenant, and the JSONL export.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::pages::{layout, pretty, text};
use super::{Console, Signed, to_sign_in};
use crate::http::RequestContext;

const PAGE: &str = "50";

/// The filters of `GET /v1/audit/events` the console passes on.
const FILTERS: [(&str, &str); 9] = [
    ("tenant_id", "Tenant"),
    ("workload_id", "Workload"),
    ("integration_id", "Integration"),
    ("event_type", "Event type"),
    ("decision", "Decision"),
    ("action_group", "Action group"),
    ("correlation_id", "Correlation id"),
    ("since", "Since (RFC 3339)"),
    ("until", "Until (RFC 3339)"),
];

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    tenant_id: Option<String>,
    workload_id: Option<String>,
    integration_id: Option<String>,
    event_type: Option<String>,
    decision: Option<String>,
    action_group: Option<String>,
    correlation_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

impl SearchQuery {
    fn get(&self, name: &str) -> Option<&str> {
        let value = match name {
            "tenant_id" => &self.tenant_id,
            "workload_id" => &self.workload_id,
            "integration_id" => &self.integration_id,
            "event_type" => &self.event_type,
            "decision" => &self.decision,
            "action_group" => &self.action_group,
            "correlation_id" => &self.correlation_id,
            "since" => &self.since,
            "until" => &self.until,
            _ => &None,
        };
        value.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    /// The non-empty filters as a query string (for the API and for the console's own links).
    fn filters(&self) -> url::form_urlencoded::Serializer<'static, String> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, _) in FILTERS {
            if let Some(value) = self.get(name) {
                query.append_pair(name, value);
            }
        }
        query
    }
}

async fn signed_or_redirect(
    console: &Console,
    headers: &HeaderMap,
    context: &RequestContext,
) -> Result<Signed, Response> {
    console.signed(headers, context).await.map_err(to_sign_in)
}

/// `GET /ui/audit`.
pub async fn search(
    State(console): State<Console>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    query: Query<SearchQuery>,
) -> Response {
    let signed = match signed_or_redirect(&console, &headers, &context).await {
        Ok(signed) => signed,
        Err(response) => return response,
    };
    let query = query.0;
    let filters = query.filters().finish();
    let api_query = {
        let mut api_query = query.filters();
        api_query.append_pair("limit", PAGE);
        if let Some(cursor) = query.cursor.as_deref().filter(|c| !c.is_empty()) {
            api_query.append_pair("cursor", cursor);
        }
        api_query.finish()
    };
    let answer = console.call(&signed, Method::GET, &format!("/v1/audit/events?{api_query}"), None).await;
    if !answer.ok() {
        return answer.error_page(&console, &signed, "Audit");
    }
    let empty = Vec::new();
    let events = answer.body["events"].as_array().unwrap_or(&empty);
    let next = answer.body["next_cursor"].as_str().map(|cursor| {
        let mut link = query.filters();
        link.append_pair("cursor", cursor);
        format!("/ui/audit?{}", link.finish())
    });
    let export = if filters.is_empty() {
        "/ui/audit/export".to_owned()
    } else {
        format!("/ui/audit/export?{filters}")
    };
    let main = html! {
        h1 { "Audit" }
        (filter_form(&query))
        (verify_form(&signed, query.get("tenant_id")))
        p.links {
            a href=(export) download id="export" { "Export every match as JSON lines" }
        }
        @if events.is_empty() { p.empty { "No event matches." } }
        table.events {
            thead { tr { th { "Time" } th { "Type" } th { "Decision" } th { "Tenant" } th { "Workload" } th { "Detail" } } }
            tbody {
                @for event in events { (row(event)) }
            }
        }
        @if let Some(next) = next {
            p.pager { a href=(next) id="next-page" { "Older events →" } }
        }
        @if query.cursor.is_some() {
            p.pager { a href=(format!("/ui/audit?{filters}")) { "← Back to the newest" } }
        }
    };
    layout(&console, Some(&signed), "Audit", "audit", main).into_response()
}

fn filter_form(query: &SearchQuery) -> Markup {
    html! {
        form.filters method="get" action="/ui/audit" role="search" {
            @for (name, label) in FILTERS {
                label {
                    span { (label) }
                    input name=(name) value=(query.get(name).unwrap_or(""));
                }
            }
            button type="submit" id="search" { "Search" }
        }
    }
}

fn verify_form(signed: &Signed, tenant: Option<&str>) -> Markup {
    let tenants = &signed.principal.tenant_ids;
    html! {
        form.filters method="get" action="/ui/audit/verify" {
            label {
                span { "Verify the chain of tenant" }
                @if tenants.is_empty() {
                    input name="tenant_id" required value=(tenant.unwrap_or(""));
                } @else {
                    select name="tenant_id" {
                        @for t in tenants { option value=(t) selected[Some(t.as_str()) == tenant] { (t) } }
                    }
                }
            }
            button type="submit" id="verify" { "Verify chain" }
        }
    }
}

fn row(event: &Value) -> Markup {
    let chain = &event["chain"];
    html! {
        tr data-event=(text(&event["event_id"])) {
            td { time datetime=(text(&event["timestamp"])) { (text(&event["timestamp"])) } }
            td { (text(&event["event_type"])) }
            td { (text(&event["decision"])) " " small { (text(&event["reason_code"])) } }
            td { (text(&event["tenant_id"])) }
            td { (text(&event["workload_id"])) }
            td {
                details {
                    summary { "Event " (text(&event["event_id"])) }
                    @if chain.is_object() {
                        dl.chain {
                            @if let Some(link) = chain.as_object() {
                                @for (name, value) in link {
                                    dt { (name) } dd { code { (text(value)) } }
                                }
                            }
                        }
                    } @else {
                        p { em { "Not chained (yet)." } }
                    }
                    pre { (pretty(event)) }
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct VerifyQuery {
    tenant_id: Option<String>,
}

/// `GET /ui/audit/verify?tenant_id=…`: recomputes the tenant's chains through the API.
pub async fn verify(
    State(console): State<Console>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    query: Query<VerifyQuery>,
) -> Response {
    let signed = match signed_or_redirect(&console, &headers, &context).await {
        Ok(signed) => signed,
        Err(response) => return response,
    };
    let tenant = query.0.tenant_id.unwrap_or_default();
    let api_query =
        url::form_urlencoded::Serializer::new(String::new()).append_pair("tenant_id", tenant.trim()).finish();
    let answer = console.call(&signed, Method::GET, &format!("/v1/audit/verify?{api_query}"), None).await;
    if !answer.ok() {
        return answer.error_page(&console, &signed, "Verify chain");
    }
    let ok = answer.body["ok"] == true;
    let main = html! {
        h1 { "Chain verification" }
        section.result id="verify-result" data-ok=(ok) role="status" {
            @if ok {
                p.ok { "The audit chains of tenant " code { (tenant) } " are intact." }
            } @else {
                p.error { "The audit log of tenant " code { (tenant) } " was altered: first bad event "
                    code { (text(&answer.body["first_bad_event_id"])) } "." }
            }
            dl {
                dt { "Chains checked" } dd { (text(&answer.body["chains_checked"])) }
                dt { "Events checked" } dd { (text(&answer.body["events_checked"])) }
            }
        }
        (verify_form(&signed, Some(tenant.as_str())))
        p { a href="/ui/audit" { "Back to the audit log" } }
    };
    layout(&console, Some(&signed), "Verify chain", "audit", main).into_response()
}

/// `GET /ui/audit/export?…`: the API's `format=jsonl` stream, passed through as a download.
pub async fn export(
    State(console): State<Console>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    query: Query<SearchQuery>,
) -> Response {
    let signed = match signed_or_redirect(&console, &headers, &context).await {
        Ok(signed) => signed,
        Err(response) => return response,
    };
    let query = query.0;
    let api_query = query.filters().append_pair("format", "jsonl").finish();
    let response =
        console.raw_call(&signed, Method::GET, &format!("/v1/audit/events?{api_query}"), None).await;
    if !response.status().is_success() {
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), super::MAX_API_BODY).await.unwrap_or_default();
        let answer = super::ApiAnswer { status, body: serde_json::from_slice(&body).unwrap_or(Value::Null) };
        return answer.error_page(&console, &signed, "Export");
    }
    let (parts, body) = response.into_parts();
    let mut out = Response::new(body);
    *out.status_mut() = parts.status;
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    out.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"steward-audit.jsonl\""),
    );
    out
}
