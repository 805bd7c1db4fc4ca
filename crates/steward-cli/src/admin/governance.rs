//! `steward admin templates|policies|approvals|audit|keys`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{AdminClient, CliError, CliResult, query, segment};
use super::output::{Format, Printer, emit};

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// The latest version of each template visible to the token (or to one tenant).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// One template version.
    Get {
        template_id: String,
        #[arg(long)]
        version: u64,
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
    /// The latest events, oldest of them first; --follow keeps printing new ones.
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
        ),
        TemplatesCommand::Get { template_id, version, tenant } => {
            let path = format!(
                "/v1/templates/{}/versions/{version}{}",
                segment(&template_id),
                query(&[("tenant_id", tenant)])
            );
            let answer = api.get(&path).await?;
            match out.format {
                Format::Json => out.json(&answer),
                Format::Human => out.json(&answer["template"]),
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
            out.object(&api.post("/v1/templates", Some(template)).await?);
        }
        TemplatesCommand::InstallBuiltin => {
            let answer = api.post("/v1/templates/install-builtin", None).await?;
            out.object(&answer);
        }
    }
    Ok(())
}

pub async fn policies(api: &AdminClient, out: Printer, command: PoliciesCommand) -> CliResult<()> {
    match command {
        PoliciesCommand::Create { file } => {
            out.object(&api.post("/v1/policies", Some(super::read_json_file(&file)?)).await?);
        }
        PoliciesCommand::Allow { integration, group, workload } => {
            let created = allow_group(api, &integration, &group, workload.as_deref()).await?;
            match out.format {
                Format::Json => out.json(&json!({"policies": created})),
                Format::Human => {
                    out.table(&created, &["policy_id", "rule_type", "scope"]);
                }
            }
        }
        PoliciesCommand::List { tenant, integration } => out.list(
            &api.get(&format!(
                "/v1/policies{}",
                query(&[("tenant_id", tenant), ("integration_id", integration)])
            ))
            .await?,
            "policies",
            &["policy_id", "rule_type", "enabled", "scope"],
        ),
        PoliciesCommand::Get { policy_id } => {
            out.object(&api.get(&format!("/v1/policies/{}", segment(&policy_id))).await?)
        }
        PoliciesCommand::Delete { policy_id } => {
            let answer = api.delete(&format!("/v1/policies/{}", segment(&policy_id))).await?;
            out.done(&format!("policy {policy_id} disabled"), &answer);
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
        ),
        ApprovalsCommand::Get { approval_id } => out.object(&api.get(&path(&approval_id)).await?),
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
            );
        }
        ApprovalsCommand::Deny { approval_id, reason } => {
            let body = reason.map(|r| json!({"reason": r}));
            let answer = api.post(&format!("{}/deny", path(&approval_id)), body).await?;
            let policy =
                answer["policy_id"].as_str().map(|p| format!("; created deny rule {p}")).unwrap_or_default();
            out.done(&format!("approval {approval_id} denied{policy}"), &answer);
        }
        ApprovalsCommand::Cancel { approval_id, reason } => {
            let body = reason.map(|r| json!({"reason": r}));
            let answer = api.post(&format!("{}/cancel", path(&approval_id)), body).await?;
            out.done(&format!("approval {approval_id} canceled"), &answer);
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
            out.list(&page, "events", EVENT_COLUMNS);
            if out.format == Format::Human
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
            out.object(&report);
            if report["ok"] != true {
                return Err(CliError::Api {
                    status: 200,
                    code: "audit_chain_broken".into(),
                    message: format!(
                        "tenant {tenant}: the audit log does not verify; first bad event {}",
                        super::output::cell(&report["first_bad_event_id"])
                    ),
                });
            }
        }
        AuditCommand::Checkpoints { tenant } => out.list(
            &api.get(&format!("/v1/audit/checkpoints{}", query(&[("tenant_id", tenant)]))).await?,
            "checkpoints",
            &["checkpoint_id", "created_at", "writer_id", "tenant_id", "kid"],
        ),
    }
    Ok(())
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
        match out.format {
            Format::Json => {
                for event in &events {
                    emit(&format!("{event}\n"));
                }
            }
            Format::Human if first || !events.is_empty() => {
                if first {
                    out.table(&events, EVENT_COLUMNS);
                } else {
                    for event in &events {
                        let cells: Vec<String> =
                            EVENT_COLUMNS.iter().map(|c| super::output::cell(&event[*c])).collect();
                        emit(&format!("{}\n", cells.join("  ")));
                    }
                }
            }
            Format::Human => {}
        }
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
            out.list(&api.get("/v1/keys/manifest").await?, "keys", &["kid", "kty", "crv", "alg", "x"])
        }
        KeysCommand::Rotate => {
            let answer = api.post("/v1/keys/manifest/rotate", None).await?;
            out.done(
                &format!(
                    "manifest signing key {} is active; {} retired",
                    super::output::cell(&answer["kid"]),
                    super::output::cell(&answer["retired_kid"])
                ),
                &answer,
            );
        }
        KeysCommand::Kek => {
            let status = api.get("/v1/keys/kek").await?;
            match out.format {
                Format::Json => out.json(&status),
                Format::Human => {
                    emit(&format!("active KEK: {}\n", super::output::cell(&status["active_key_id"])));
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
            out.done(
                &format!(
                    "{} envelopes re-wrapped under the active KEK",
                    super::output::cell(&answer["rewrapped"])
                ),
                &answer,
            );
        }
    }
    Ok(())
}
