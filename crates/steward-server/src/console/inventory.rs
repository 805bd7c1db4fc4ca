//! Inventory: the token's tenants, and for one tenant its workloads (with certificates), its
//! integrations (template, bound hosts, secret version and age — the API never returns a secret),
//! the templates it can use (path groups and approval modes) and its policies. Owners and admins
//! get enable/disable buttons for workloads and integrations (`PATCH … {"enabled": …}`).

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

/// Most workloads whose certificates one page lists (one API call each).
const MAX_CERT_LOOKUPS: usize = 200;

#[derive(Debug, Default, Deserialize)]
pub struct InventoryQuery {
    tenant_id: Option<String>,
}

fn list<'a>(body: &'a Value, field: &str) -> &'a [Value] {
    body[field].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn tenant_query(tenant: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new()).append_pair("tenant_id", tenant).finish()
}

/// `GET /ui/inventory[?tenant_id=…]`.
pub async fn page(
    State(console): State<Console>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    query: Query<InventoryQuery>,
) -> Response {
    let signed = match console.signed(&headers, &context).await {
        Ok(signed) => signed,
        Err(why) => return to_sign_in(why),
    };
    let tenants = console.call(&signed, Method::GET, "/v1/tenants", None).await;
    if !tenants.ok() {
        return tenants.error_page(&console, &signed, "Inventory");
    }
    let tenant_list = list(&tenants.body, "tenants");
    let selected = query
        .0
        .tenant_id
        .filter(|t| !t.is_empty())
        .or_else(|| tenant_list.first().map(|t| text(&t["tenant_id"])));
    let detail = match selected.as_deref().and_then(safe_id) {
        Some(tenant) => match tenant_detail(&console, &signed, tenant).await {
            Ok(markup) => markup,
            Err(response) => return response,
        },
        None => html! { p.empty { "No tenant yet." } },
    };
    let main = html! {
        h1 { "Inventory" }
        section {
            h2 { "Tenants" }
            table.inventory id="tenants" {
                thead { tr { th { "Name" } th { "Id" } th { "DPoP required" } th { "Created" } } }
                tbody {
                    @for tenant in tenant_list {
                        @let id = text(&tenant["tenant_id"]);
                        tr aria-current=[(selected.as_deref() == Some(id.as_str())).then_some("true")] {
                            td { a href=(format!("/ui/inventory?{}", tenant_query(&id))) { (text(&tenant["name"])) } }
                            td { code { (id) } }
                            td { (text(&tenant["dpop_required"])) }
                            td { (text(&tenant["created_at"])) }
                        }
                    }
                }
            }
        }
        (detail)
    };
    layout(&console, Some(&signed), "Inventory", "inventory", main).into_response()
}

async fn tenant_detail(console: &Console, signed: &Signed, tenant: &str) -> Result<Markup, Response> {
    let get = |uri: String| async move {
        let answer = console.call(signed, Method::GET, &uri, None).await;
        if answer.ok() { Ok(answer.body) } else { Err(answer.error_page(console, signed, "Inventory")) }
    };
    let workloads = get(format!("/v1/tenants/{tenant}/workloads")).await?;
    let integrations = get(format!("/v1/tenants/{tenant}/integrations")).await?;
    let templates = get(format!("/v1/templates?{}", tenant_query(tenant))).await?;
    let policies = get(format!("/v1/policies?{}", tenant_query(tenant))).await?;
    let mut certificates = Vec::new();
    for workload in list(&workloads, "workloads").iter().take(MAX_CERT_LOOKUPS) {
        let id = text(&workload["workload_id"]);
        let certs = match safe_id(&id) {
            Some(id) => get(format!("/v1/workloads/{id}/certificates")).await?,
            None => Value::Null,
        };
        certificates.push(certs);
    }
    let may_write = roles::WRITE.contains(&signed.principal.role);
    let now = console.state.clock.now().unix_seconds();
    Ok(html! {
        section {
            h2 { "Workloads of " code { (tenant) } }
            table.inventory id="workloads" {
                thead { tr { th { "Name" } th { "Id" } th { "Enabled" } th { "Certificates" } @if may_write { th { "Action" } } } }
                tbody {
                    @for (n, workload) in list(&workloads, "workloads").iter().enumerate() {
                        @let id = text(&workload["workload_id"]);
                        @let enabled = workload["enabled"] == true;
                        tr {
                            td.name { (text(&workload["name"])) }
                            td { code { (id) } }
                            td { (if enabled { "yes" } else { "no" }) }
                            td {
                                @let certs = certificates.get(n).map(|c| list(c, "certificates")).unwrap_or(&[]);
                                @if certs.is_empty() { em { "none" } }
                                ul.certs {
                                    @for cert in certs {
                                        li {
                                            code { (text(&cert["serial"])) }
                                            " until " (text(&cert["not_after"]))
                                            @if !cert["revoked_at"].is_null() { " — revoked " (text(&cert["revoked_at"])) }
                                        }
                                    }
                                }
                            }
                            @if may_write { td { (toggle_form(signed, "workloads", &id, tenant, enabled)) } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Integrations" }
            table.inventory id="integrations" {
                thead { tr { th { "Name" } th { "Template" } th { "Bound hosts" } th { "Secret" } th { "Enabled" } @if may_write { th { "Action" } } } }
                tbody {
                    @for integration in list(&integrations, "integrations") {
                        @let id = text(&integration["integration_id"]);
                        @let enabled = integration["enabled"] == true;
                        tr {
                            td.name { (text(&integration["name"])) br; code { (id) } }
                            td { (text(&integration["template_id"])) " v" (match integration["template_version"].as_u64() { Some(v) => v.to_string(), None => "latest".to_owned() }) }
                            td { @for host in list(integration, "bound_hosts") { code { (text(host)) } " " } }
                            td { "version " (text(&integration["secret_version"])) ", " (age(&integration["secret_updated_at"], now)) }
                            td { (if enabled { "yes" } else { "no" }) }
                            @if may_write { td { (toggle_form(signed, "integrations", &id, tenant, enabled)) } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Templates" }
            @for template in list(&templates, "templates") {
                article.card {
                    header { strong { (text(&template["template_id"])) } " v" (text(&template["version"])) " · " (text(&template["tenant_id"])) " · " (text(&template["provider"])) }
                    table.inventory {
                        thead { tr { th { "Group" } th { "Risk" } th { "Approval" } th { "Methods" } th { "Paths" } } }
                        tbody {
                            @for group in list(&template["template"], "path_groups") {
                                tr {
                                    td { code { (text(&group["group_id"])) } }
                                    td { (text(&group["risk_tier"])) }
                                    td { (text(&group["approval_mode"])) }
                                    td { @for m in list(group, "methods") { (text(m)) " " } }
                                    td { @for p in list(group, "path_patterns") { code { (text(p)) } " " } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Policies" }
            table.inventory id="policies" {
                thead { tr { th { "Type" } th { "Scope" } th { "Enabled" } th { "Description" } } }
                tbody {
                    @for policy in list(&policies, "policies") {
                        tr {
                            td { (text(&policy["rule_type"])) }
                            td { details { summary { code { (text(&policy["policy_id"])) } } pre { (pretty(policy)) } } }
                            td { (text(&policy["enabled"])) }
                            td { (text(&policy["description"])) }
                        }
                    }
                }
            }
        }
    })
}

/// "5 d ago" from an RFC 3339 timestamp.
fn age(value: &Value, now: i64) -> String {
    let Some(at) = value
        .as_str()
        .and_then(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
    else {
        return "age unknown".to_owned();
    };
    let seconds = (now - at.unix_timestamp()).max(0);
    match seconds {
        s if s < 120 => format!("{s} s old"),
        s if s < 7200 => format!("{} min old", s / 60),
        s if s < 172_800 => format!("{} h old", s / 3600),
        s => format!("{} d old", s / 86_400),
    }
}

fn toggle_form(signed: &Signed, kind: &str, id: &str, tenant: &str, enabled: bool) -> Markup {
    let action = if enabled { "disable" } else { "enable" };
    html! {
        form.inline method="post" action=(format!("/ui/inventory/{kind}/{id}/{action}")) {
            (csrf_field(signed))
            input type="hidden" name="tenant_id" value=(tenant);
            button.secondary type="submit" id=(format!("{action}-{id}")) { (if enabled { "Disable" } else { "Enable" }) }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ToggleForm {
    csrf: Option<String>,
    tenant_id: Option<String>,
}

/// `POST /ui/inventory/{workloads|integrations}/{id}/{enable|disable}`.
pub async fn toggle_post(
    console: Console,
    context: RequestContext,
    headers: HeaderMap,
    (kind, id, action): (String, String, String),
    form: Option<ToggleForm>,
) -> Response {
    let signed =
        match check_post(&console, &headers, &context, form.as_ref().and_then(|f| f.csrf.as_deref())).await {
            Ok(signed) => signed,
            Err(response) => return response,
        };
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    let (Some(id), true) = (safe_id(&id), matches!(kind.as_str(), "workloads" | "integrations")) else {
        return (StatusCode::NOT_FOUND, "no such object").into_response();
    };
    let answer = console
        .call(&signed, Method::PATCH, &format!("/v1/{kind}/{id}"), Some(json!({"enabled": enabled})))
        .await;
    if !answer.ok() {
        return answer.error_page(&console, &signed, "The change was refused");
    }
    let back = match form.and_then(|f| f.tenant_id) {
        Some(tenant) => format!("/ui/inventory?{}", tenant_query(&tenant)),
        None => "/ui/inventory".to_owned(),
    };
    Redirect::to(&back).into_response()
}

pub async fn toggle(
    State(console): State<Console>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    form: Result<Form<ToggleForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    toggle_post(console, context, headers, path, form.ok().map(|f| f.0)).await
}
