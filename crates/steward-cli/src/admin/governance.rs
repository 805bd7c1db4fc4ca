//! `steward admin templates|policies|approvals|audit|keys`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{AdminClient, CliError, CliResult, query, segment};
use super::output::{Format, Printer, cell, emit};

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// The latest version of each template visible to the token (or to one tenant).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// One template version (the latest without --version).
    Get {
        template_id: String,
        #[arg(long)]
        version: Option<u64>,
        /// The owner (default global).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Publish a template JSON file (a new immutable version).
    Publish {
        #[arg(long)]
        file: PathBuf,
        /// Publish for this tenant instead of `global`.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Install the built-in templates (idempotent).
    InstallBuiltin,
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Create a rule from a JSON file (`spec/pipeline.md`, "Policy").
    Create {
        #[arg(long)]
        file: PathBuf,
    },
    /// Allow one action group of an integration: one rule per method and host of the group.
    Allow {
        #[arg(long)]
        integration: String,
        #[arg(long)]
        group: String,
        /// Only for this workload.
        #[arg(long)]
        workload: Option<String>,
    },
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        integration: Option<String>,
    },
    Get {
        policy_id: String,
    },
    /// Disable a rule (kept for audit).
    Delete {
        policy_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// pending, approved, denied, expired, canceled or executed.
        #[arg(long)]
        status: Option<String>,
    },
    /// One approval with its descriptor, preview and proposed rule.
    Get { approval_id: String },
    /// Approve once (this call) or as a rule (creates the allow rule).
    Approve {
        approval_id: String,
        #[arg(long, conflicts_with = "rule", required_unless_present = "rule")]
        once: bool,
        #[arg(long)]
        rule: bool,
        /// Extra constraints of the created rule (JSON object; --rule only).
        #[arg(long, requires = "rule")]
        constraints: Option<String>,
    },
    /// Deny (creates the exact deny rule).
    Deny {
        approval_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel a pending approval or an unused `once` approval.
    Cancel {
        approval_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct AuditFilters {
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    workload: Option<String>,
    #[arg(long)]
    integration: Option<String>,
    #[arg(long)]
    event_type: Option<String>,
    #[arg(long)]
    decision: Option<String>,
    #[arg(long)]
    action_group: Option<String>,
    #[arg(long)]
    correlation_id: Option<String>,
    /// RFC 3339, inclusive.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339, exclusive.
    #[arg(long)]
    until: Option<String>,
}

impl AuditFilters {
    fn pairs(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("tenant_id", self.tenant.clone()),
            ("workload_id", self.workload.clone()),
            ("integration_id", self.integration.clone()),
            ("event_type", self.event_type.clone()),
            ("decision", self.decision.clone()),
            ("action_group", self.action_group.clone()),
            ("correlation_id", self.correlation_id.clone()),
            ("since", self.since.clone()),
            ("until", self.until.clone()),
        ]
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// One page of events, newest first.
    Events {
        #[command(flatten)]
        filters: AuditFilters,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The next_cursor of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// The latest events, oldest of them first, in 120 columns (ids abbreviated; --output json for
    /// everything); --follow keeps printing new ones.
    Tail {
        #[command(flatten)]
        filters: AuditFilters,
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: u32,
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Every matching event as JSON lines, oldest first (streamed by the server).
    Export {
        #[command(flatten)]
        filters: AuditFilters,
    },
    /// Recompute a tenant's hash chains.
    Verify {
        #[arg(long)]
        tenant: String,
    },
    /// Signed chain heads.
    Checkpoints {
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The manifest signing keyset.
    Manifest,
    /// Make a new manifest signing key active.
    Rotate,
    /// The active KEK and how many envelopes each KEK protects.
    Kek,
    /// Re-wrap every envelope under the active KEK.
    Rewrap,
}

const EVENT_COLUMNS: &[&str] = &[
    "timestamp",
    "event_type",
    "decision",
    "reason_code",
    "tenant_id",
    "workload_id",
    "integration_id",
    "action_group",
];

pub async fn templates(api: &AdminClient, out: Printer, command: TemplatesCommand) -> CliResult<()> {
    match command {
        TemplatesCommand::List { tenant } => out.list(
            &api.get(&format!("/v1/templates{}", query(&[("tenant_id", tenant)]))).await?,
            "templates",
            &["tenant_id", "template_id", "version", "provider", "created_at"],
            "template_id",
        )?,
        TemplatesCommand::Get { template_id, version, tenant } => {
            let answer = match version {
                Some(version) => {
                    let path = format!(
                        "/v1/templates/{}/versions/{version}{}",
                        segment(&template_id),
                        query(&[("tenant_id", tenant)])
                    );
                    api.get(&path).await?
                }
                None => latest_template(api, &template_id, tenant.as_deref()).await?,
            };
            match out.format {
                Format::Json => out.json(&answer),
                Format::Id => out.object(&answer, "template_id")?,
                Format::Table => {
                    emit(&format!(
                        "# {} version {} (owner {})\n",
                        cell(&answer["template_id"]),
                        cell(&answer["version"]),
                        cell(&answer["tenant_id"])
                    ));
                    out.json(&answer["template"]);
                }
            }
        }
        TemplatesCommand::Publish { file, tenant } => {
            let mut template = super::read_json_file(&file)?;
            if let Some(tenant) = tenant {
                let fields = template
                    .as_object_mut()
                    .ok_or_else(|| CliError::Usage(format!("{} must hold a JSON object", file.display())))?;
                fields.insert("tenant_id".into(), tenant.into());
            }
            out.object(&api.post("/v1/templates", Some(template)).await?, "template_id")?;
        }
        TemplatesCommand::InstallBuiltin => {
            let answer = api.post("/v1/templates/install-builtin", None).await?;
            out.object(&answer, "installed")?;
        }
    }
    Ok(())
}

/// The latest version of `template_id` owned by `owner` (default `global`): the list route answers
/// the latest version of each template with the same fields as a version read.
async fn latest_template(api: &AdminClient, template_id: &str, owner: Option<&str>) -> CliResult<Value> {
    let owner = owner.unwrap_or("global");
    let list = api.get(&format!("/v1/templates{}", query(&[("tenant_id", Some(owner.to_owned()))]))).await?;
    list["templates"]
        .as_array()
        .and_then(|all| all.iter().find(|t| t["template_id"] == template_id && t["tenant_id"] == owner))
        .cloned()
        .ok_or_else(|| CliError::Api {
            status: 404,
            code: "template_not_found".into(),
            message: format!(
                "no template {template_id} owned by {owner} is visible to this token (a tenant's own \
                 template needs --tenant T; steward admin templates list shows them all)"
            ),
        })
}

pub async fn policies(api: &AdminClient, out: Printer, command: PoliciesCommand) -> CliResult<()> {
    match command {
        PoliciesCommand::Create { file } => {
            out.object(&api.post("/v1/policies", Some(super::read_json_file(&file)?)).await?, "policy_id")?;
        }
        PoliciesCommand::Allow { integration, group, workload } => {
            let created = allow_group(api, &integration, &group, workload.as_deref()).await?;
            out.list(
                &json!({"policies": created}),
                "policies",
                &["policy_id", "rule_type", "scope"],
                "policy_id",
            )?;
        }
        PoliciesCommand::List { tenant, integration } => out.list(
            &api.get(&format!(
                "/v1/policies{}",
                query(&[("tenant_id", tenant), ("integration_id", integration)])
            ))
            .await?,
            "policies",
            &["policy_id", "rule_type", "enabled", "scope"],
            "policy_id",
        )?,
        PoliciesCommand::Get { policy_id } => {
            out.object(&api.get(&format!("/v1/policies/{}", segment(&policy_id))).await?, "policy_id")?
        }
        PoliciesCommand::Delete { policy_id } => {
            let answer = api.delete(&format!("/v1/policies/{}", segment(&policy_id))).await?;
            out.done(&format!("policy {policy_id} disabled"), &answer, &policy_id);
        }
    }
    Ok(())
}

/// One allow rule per method and host of `group` in the integration's (pinned or latest) template.
async fn allow_group(
    api: &AdminClient,
    integration_id: &str,
    group: &str,
    workload: Option<&str>,
) -> CliResult<Vec<Value>> {
    let integration = api.get(&format!("/v1/integrations/{}", segment(integration_id))).await?;
    let text = |field: &str| {
        integration[field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CliError::Transport(format!("the integration has no {field}")))
    };
    let tenant_id = text("tenant_id")?;
    let template_id = text("template_id")?;
    let owner = text("template_owner")?;
    let template = match integration["template_version"].as_u64() {
        Some(version) => {
            let path = format!(
                "/v1/templates/{}/versions/{version}{}",
                segment(&template_id),
                query(&[("tenant_id", Some(owner.clone()))])
            );
            api.get(&path).await?["template"].clone()
        }
        None => {
            let list = api
                .get(&format!("/v1/templates{}", query(&[("tenant_id", Some(tenant_id.clone()))])))
                .await?;
            list["templates"]
                .as_array()
                .and_then(|all| {
                    all.iter().find(|t| {
                        t["template_id"] == template_id.as_str() && t["tenant_id"] == owner.as_str()
                    })
                })
                .map(|t| t["template"].clone())
                .ok_or_else(|| {
                    CliError::Transport(format!("template {template_id} of {owner} is not visible"))
                })?
        }
    };
    let path_group = template["path_groups"]
        .as_array()
        .and_then(|groups| groups.iter().find(|g| g["group_id"] == group))
        .ok_or_else(|| {
            let known: Vec<&str> = template["path_groups"]
                .as_array()
                .map(|g| g.iter().filter_map(|g| g["group_id"].as_str()).collect())
                .unwrap_or_default();
            CliError::Usage(format!(
                "template {template_id} has no group {group:?}; groups: {}",
                known.join(", ")
            ))
        })?;
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let methods = strings(&path_group["methods"]);
    let hosts = strings(&template["allowed_hosts"]);
    let mut created = Vec::new();
    for method in &methods {
        for host in &hosts {
            let mut scope = json!({"tenant_id": tenant_id, "integration_id": integration_id, "action_group": group,
                "method": method, "host": host});
            if let Some(workload) = workload {
                scope["workload_id"] = workload.into();
            }
            let rule = json!({"rule_type": "allow", "scope": scope,
                "description": format!("allow {group} ({method} {host}) via steward admin policies allow")});
            created.push(api.post("/v1/policies", Some(rule)).await?);
        }
    }
    Ok(created)
}

pub async fn approvals(api: &AdminClient, out: Printer, command: ApprovalsCommand) -> CliResult<()> {
    let path = |id: &str| format!("/v1/approvals/{}", segment(id));
    match command {
        ApprovalsCommand::List { tenant, status } => out.list(
            &api.get(&format!("/v1/approvals{}", query(&[("tenant_id", tenant), ("status", status)])))
                .await?,
            "approvals",
            &[
                "approval_id",
                "status",
                "tenant_id",
                "workload_id",
                "integration_id",
                "created_at",
                "expires_at",
            ],
            "approval_id",
        )?,
        ApprovalsCommand::Get { approval_id } => {
            out.object(&api.get(&path(&approval_id)).await?, "approval_id")?
        }
        ApprovalsCommand::Approve { approval_id, once: _, rule, constraints } => {
            let mut body = json!({"mode": if rule { "rule" } else { "once" }});
            if let Some(text) = constraints {
                body["constraints"] = super::parse_json_arg("--constraints", &text)?;
            }
            let answer = api.post(&format!("{}/approve", path(&approval_id)), Some(body)).await?;
            let policy =
                answer["policy_id"].as_str().map(|p| format!("; created policy {p}")).unwrap_or_default();
            out.done(
                &format!("approval {approval_id} approved ({}){policy}", if rule { "rule" } else { "once" }),
                &answer,
                &approval_id,
            );
        }
        ApprovalsCommand::Deny { approval_id, reason } => {
            let body = reason.map(|r| json!({"reason": r}));
            let answer = api.post(&format!("{}/deny", path(&approval_id)), body).await?;
            let policy =
                answer["policy_id"].as_str().map(|p| format!("; created deny rule {p}")).unwrap_or_default();
            out.done(&format!("approval {approval_id} denied{policy}"), &answer, &approval_id);
        }
        ApprovalsCommand::Cancel { approval_id, reason } => {
            let body = reason.map(|r| json!({"reason": r}));
            let answer = api.post(&format!("{}/cancel", path(&approval_id)), body).await?;
            out.done(&format!("approval {approval_id} canceled"), &answer, &approval_id);
        }
    }
    Ok(())
}

pub async fn audit(api: &AdminClient, out: Printer, command: AuditCommand) -> CliResult<()> {
    match command {
        AuditCommand::Events { filters, limit, cursor } => {
            let mut pairs = filters.pairs();
            pairs.push(("limit", Some(limit.to_string())));
            pairs.push(("cursor", cursor));
            let page = api.get(&format!("/v1/audit/events{}", query(&pairs))).await?;
            out.list(&page, "events", EVENT_COLUMNS, "event_id")?;
            if out.format == Format::Table
                && let Some(next) = page["next_cursor"].as_str()
            {
                emit(&format!("next page: --cursor {next}\n"));
            }
        }
        AuditCommand::Tail { filters, lines, follow } => tail(api, out, &filters, lines, follow).await?,
        AuditCommand::Export { filters } => {
            let mut pairs = filters.pairs();
            pairs.push(("format", Some("jsonl".into())));
            let answer =
                api.raw(http::Method::GET, &format!("/v1/audit/events{}", query(&pairs)), None).await?;
            emit(&String::from_utf8_lossy(&answer.body));
        }
        AuditCommand::Verify { tenant } => {
            let report = api
                .get(&format!("/v1/audit/verify{}", query(&[("tenant_id", Some(tenant.clone()))])))
                .await?;
            match out.format {
                Format::Id => emit(&format!("{tenant}\n")),
                _ => out.object(&report, "tenant_id")?,
            }
            if report["ok"] != true {
                return Err(CliError::Api {
                    status: 200,
                    code: "audit_chain_broken".into(),
                    message: format!(
                        "tenant {tenant}: the audit log does not verify; first bad event {}",
                        cell(&report["first_bad_event_id"])
                    ),
                });
            }
        }
        AuditCommand::Checkpoints { tenant } => out.list(
            &api.get(&format!("/v1/audit/checkpoints{}", query(&[("tenant_id", tenant)]))).await?,
            "checkpoints",
            &["checkpoint_id", "created_at", "writer_id", "tenant_id", "kid"],
            "checkpoint_id",
        )?,
    }
    Ok(())
}

/// One column of the `audit tail` table: its header, its width, and how an event fills it.
struct TailColumn {
    header: &'static str,
    width: usize,
    value: fn(&Value) -> String,
}

/// 14 + 17 + 9 + 28 + 11 + 11 + 18 characters and six 2-space gaps: 120 columns at most. Ids are
/// abbreviated to their prefix and last 8 characters (the random end of a UUIDv7 id); the
/// timestamp to month, day and time (UTC); `--output json` prints every field in full.
const TAIL_COLUMNS: &[TailColumn] = &[
    TailColumn { header: "TIME (UTC)", width: 14, value: |e| short_time(&e["timestamp"]) },
    TailColumn { header: "EVENT", width: 17, value: |e| cell(&e["event_type"]) },
    TailColumn { header: "DECISION", width: 9, value: |e| short_decision(&e["decision"]) },
    TailColumn { header: "DETAIL", width: 28, value: detail },
    TailColumn { header: "WORKLOAD", width: 11, value: |e| short_id(&e["workload_id"], 11) },
    TailColumn { header: "INTEGRATION", width: 11, value: |e| short_id(&e["integration_id"], 11) },
    TailColumn { header: "GROUP", width: 18, value: |e| cell(&e["action_group"]) },
];

/// The widest `audit tail` line.
#[cfg(test)]
const TAIL_WIDTH: usize = 120;

/// `2025-01-02T15:04:05.123456Z` → `01-02 15:04:05`.
fn short_time(value: &Value) -> String {
    match value.as_str() {
        Some(text) if text.len() >= 19 && text.is_char_boundary(5) && text.is_char_boundary(19) => {
            format!("{} {}", &text[5..10], &text[11..19])
        }
        _ => cell(value),
    }
}

fn short_decision(value: &Value) -> String {
    match value.as_str() {
        Some("approval_required") => "approval".to_owned(),
        _ => cell(value),
    }
}

/// The reason code, else the admin action, else the upstream status.
fn detail(event: &Value) -> String {
    if let Some(reason) = event["reason_code"].as_str() {
        return reason.to_owned();
    }
    if let Some(action) = event["metadata"]["action"].as_str() {
        return action.to_owned();
    }
    if let Some(status) = event["upstream_status_code"].as_u64() {
        return format!("upstream {status}");
    }
    "-".to_owned()
}

/// `w_0190a3…` → `w_…` plus the id's last characters, `width` in all.
fn short_id(value: &Value, width: usize) -> String {
    let Some(id) = value.as_str() else { return cell(value) };
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= width {
        return id.to_owned();
    }
    let prefix: String = match id.find('_') {
        Some(at) if at + 1 < width / 2 => id[..=at].to_owned(),
        _ => String::new(),
    };
    let keep = width - prefix.chars().count() - 1;
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{prefix}…{tail}")
}

/// `text` cut to `width` characters, the last one `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn tail_line(cells: Vec<String>) -> String {
    let padded: Vec<String> = cells
        .iter()
        .zip(TAIL_COLUMNS)
        .map(|(text, column)| {
            let text = fit(text, column.width);
            format!("{text:<width$}", width = column.width)
        })
        .collect();
    format!("{}\n", padded.join("  ").trim_end())
}

fn tail_row(event: &Value) -> String {
    tail_line(TAIL_COLUMNS.iter().map(|c| (c.value)(event)).collect())
}

fn tail_header() -> String {
    tail_line(TAIL_COLUMNS.iter().map(|c| c.header.to_owned()).collect())
}

/// The newest `lines` events printed oldest first; with `follow`, polls for newer ones.
async fn tail(
    api: &AdminClient,
    out: Printer,
    filters: &AuditFilters,
    lines: u32,
    follow: bool,
) -> CliResult<()> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut newest: Option<String> = None;
    let mut first = true;
    loop {
        let mut pairs = filters.pairs();
        if let Some(since) = &newest {
            pairs.retain(|(k, _)| *k != "since");
            pairs.push(("since", Some(since.clone())));
        }
        pairs.push(("limit", Some(if first { lines.clamp(1, 1000) } else { 1000 }.to_string())));
        let page = api.get(&format!("/v1/audit/events{}", query(&pairs))).await?;
        let mut events: Vec<Value> = page["events"].as_array().cloned().unwrap_or_default();
        events.reverse();
        events.retain(|e| e["event_id"].as_str().is_some_and(|id| seen.insert(id.to_owned())));
        if let Some(last) = events.last().and_then(|e| e["timestamp"].as_str()) {
            newest = Some(last.to_owned());
        }
        let mut text = String::new();
        match out.format {
            Format::Json => {
                for event in &events {
                    text.push_str(&format!("{event}\n"));
                }
            }
            Format::Id => {
                for event in &events {
                    text.push_str(&format!("{}\n", cell(&event["event_id"])));
                }
            }
            Format::Table => {
                if first && events.is_empty() {
                    text.push_str("(none)\n");
                } else if first {
                    text.push_str(&tail_header());
                }
                for event in &events {
                    text.push_str(&tail_row(event));
                }
            }
        }
        emit(&text);
        if !follow {
            return Ok(());
        }
        first = false;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

pub async fn keys(api: &AdminClient, out: Printer, command: KeysCommand) -> CliResult<()> {
    match command {
        KeysCommand::Manifest => {
            out.list(&api.get("/v1/keys/manifest").await?, "keys", &["kid", "kty", "crv", "alg", "x"], "kid")?
        }
        KeysCommand::Rotate => {
            let answer = api.post("/v1/keys/manifest/rotate", None).await?;
            let kid = cell(&answer["kid"]);
            out.done(
                &format!("manifest signing key {kid} is active; {} retired", cell(&answer["retired_kid"])),
                &answer,
                &kid,
            );
        }
        KeysCommand::Kek => {
            let status = api.get("/v1/keys/kek").await?;
            match out.format {
                Format::Json => out.json(&status),
                Format::Id => out.object(&status, "active_key_id")?,
                Format::Table => {
                    emit(&format!("active KEK: {}\n", cell(&status["active_key_id"])));
                    let rows: Vec<Value> = status["envelopes_by_key_id"]
                        .as_object()
                        .map(|m| m.iter().map(|(k, v)| json!({"kek_id": k, "envelopes": v})).collect())
                        .unwrap_or_default();
                    out.table(&rows, &["kek_id", "envelopes"]);
                }
            }
        }
        KeysCommand::Rewrap => {
            let answer = api.post("/v1/keys/kek/rewrap", None).await?;
            let count = cell(&answer["rewrapped"]);
            out.done(&format!("{count} envelopes re-wrapped under the active KEK"), &answer, &count);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tail_tests {
    use serde_json::json;

    use super::{TAIL_WIDTH, short_id, tail_header, tail_row};

    #[test]
    fn a_tail_line_fits_120_columns_whatever_the_values() {
        let long = "x".repeat(300);
        let event = json!({
            "timestamp": "2025-01-02T15:04:05.123456Z", "event_type": long, "decision": "approval_required",
            "reason_code": long, "workload_id": format!("w_{long}"), "integration_id": format!("i_{long}"),
            "action_group": long,
        });
        for line in [tail_row(&event), tail_header()] {
            assert!(line.trim_end().chars().count() <= TAIL_WIDTH, "{line}");
        }
        assert!(tail_row(&event).starts_with("01-02 15:04:05  "), "{}", tail_row(&event));
        assert_eq!(short_id(&json!("w_0190a3b4c5d67e8f9a0b1c2d3e4f5a6b"), 11), "w_…3e4f5a6b");
        assert_eq!(short_id(&json!("w_short"), 11), "w_short");
    }
}
