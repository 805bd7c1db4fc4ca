//! The catalog generator of `--seed-scale` (issue 18): tenants, one workload each, templates,
//! integrations with a sealed API-key secret version, and policy rules, written through the
//! [`Store`] traits exactly as the admin API writes them (the same validation: templates through
//! `Template::from_json`, rules through `PolicyRule::from_json`, secrets sealed by the deployment's
//! keyring with the secret's own AAD context), before the Steward child starts.
//!
//! Shape at scale F = 1.0: 10 000 tenants, 50 000 integrations, 200 000 rules (every count scales
//! with F, at least one tenant and two integrations). Each tenant has one workload and its own
//! template `tpl_internal` (four groups); integration *i* belongs to tenant *i mod T* and is bound
//! either to its tenant's `tpl_internal` or to one of the global built-ins (`tpl_openai`,
//! `tpl_github`, …, installed by `steward init`). Rules go round-robin over the integrations (and
//! their template's groups): about 55 % allow, 15 % deny, 15 % approval_required, 15 % rate_limit;
//! one in five carries constraints, one in seven is scoped to the tenant's workload.
//!
//! The bench's own tenant is tenant 0: it has its workload and integrations like every other, plus
//! the integration `bench` bound to `tpl_bench` with the bench secret and exactly the four allow
//! rules the empty-store setup writes ([`crate::steward::bench_rules`]). No generated rule lands on
//! that integration, so the measured request evaluates the same rule set in both runs; what differs
//! is everything else in the store.
//!
//! The store's traits have no batch insert; each write is its own transaction (an integration and
//! its first secret version are one), issued [`CONCURRENCY`] at a time so the single SQLite writer
//! and PostgreSQL's group commit always have work queued.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_canon::{Injection, Template};
use steward_crypto::{Keyring, generate_token};
use steward_policy::PolicyRule;
use steward_server::builtin_templates::{builtin_templates, template_record};
use steward_server::services::credentials::envelope::{seal_record, secret_context};
use steward_store::catalog::{CreateIntegrationOutcome, IntegrationRecord, NewSecretVersion, PublishOutcome};
use steward_store::{EnrollmentTokenRecord, Store, TenantRecord, WorkloadRecord};
use steward_types::{GLOBAL_TENANT, IntegrationId, TenantId, Timestamp, WorkloadId};

use crate::steward::{BENCH_SECRET, bench_rules, bench_template};
use crate::upstream::UPSTREAM_HOST;

/// Writes in flight at once.
pub const CONCURRENCY: usize = 32;
/// The port `tpl_bench` allows when seeded; each run publishes a new version with its upstream's.
pub const SEED_BENCH_PORT: u16 = 443;
/// The global built-ins integrations are bound to (all but the MCP example, whose host is a
/// placeholder).
const GLOBAL_TEMPLATES: [&str; 6] =
    ["tpl_openai", "tpl_anthropic", "tpl_github", "tpl_slack", "tpl_gmail", "tpl_google_calendar"];

/// How much to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogCounts {
    pub tenants: u64,
    pub integrations: u64,
    pub policies: u64,
}

impl CatalogCounts {
    /// F × (10 000 tenants, 50 000 integrations, 200 000 rules), rounded; at least one tenant, two
    /// integrations (the bench's and one other) and the bench's four rules.
    pub fn at_scale(scale: f64) -> Self {
        let of = |full: f64| (full * scale).round().max(0.0) as u64;
        let tenants = of(10_000.0).max(1);
        CatalogCounts {
            tenants,
            integrations: of(50_000.0).max(2).max(tenants),
            policies: of(200_000.0).max(4),
        }
    }
}

/// What the generator made: the bench's ids, and every tenant's ids (for the audit generator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSeed {
    pub counts: CatalogCounts,
    pub bench_tenant_id: String,
    pub bench_integration_id: String,
    /// `(tenant_id, workload_id, [integration_id…])` of every tenant, the bench's first.
    pub tenants: Vec<SeededTenant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededTenant {
    pub tenant_id: String,
    pub workload_id: String,
    pub integrations: Vec<String>,
}

/// One integration as generated, with what its rules need.
struct PlannedIntegration {
    tenant: usize,
    record: IntegrationRecord,
    secret: NewSecretVersion,
    /// `(group, method)` of its template's groups.
    groups: Vec<(String, String)>,
    host: String,
}

/// The tenant template `tpl_internal` of tenant `n`: four groups on the tenant's own host.
fn internal_template(n: u64) -> Value {
    let group = |id: &str, method: &str, path: &str, approval: bool| {
        json!({
            "group_id": id,
            "risk_tier": if approval { "high" } else { "low" },
            "approval_mode": if approval { "required" } else { "none" },
            "methods": [method],
            "path_patterns": [path],
            "query_allowlist": ["limit", "cursor"],
            "header_forward_allowlist": ["content-type"],
            "response_header_allowlist": ["content-type"],
            "body_policy": {"max_bytes": 65_536, "content_types": ["application/json"]},
            "approval_preview": [],
        })
    };
    json!({
        "template_id": "tpl_internal",
        "version": 1,
        "provider": "internal",
        "description": "seeded tenant template",
        "allowed_schemes": ["https"],
        "allowed_ports": [443],
        "allowed_hosts": [format!("api-{n}.internal.test")],
        "redirect_policy": {"mode": "deny"},
        "default_injection": {"type": "header", "name": "x-api-key", "format": "{secret}"},
        "path_groups": [
            group("records_read", "GET", "^/v1/records(/[a-z0-9]+)?$", false),
            group("records_write", "POST", "^/v1/records$", false),
            group("records_delete", "DELETE", "^/v1/records/[a-z0-9]+$", true),
            group("reports_upload", "PUT", "^/v1/reports/[a-z0-9]+$", false),
        ],
    })
}

fn groups_of(template: &Template) -> Vec<(String, String)> {
    template
        .groups()
        .iter()
        .filter_map(|g| g.methods().first().map(|m| (g.id().to_owned(), m.as_str().to_owned())))
        .collect()
}

fn parse_template(value: &Value) -> Result<Template> {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        object.remove("tenant_id");
    }
    Template::from_json(&value).map_err(|e| anyhow::anyhow!("generated template: {e}"))
}

/// The `j`-th generated rule, the `k`-th on its integration (which picks the group): type,
/// constraints and workload scope vary with `j`.
fn generated_rule(
    j: u64,
    k: u64,
    tenant_id: &str,
    workload_id: &str,
    integration: &PlannedIntegration,
) -> Result<PolicyRule> {
    let (group, method) = &integration.groups[k as usize % integration.groups.len()];
    let mut scope = json!({
        "tenant_id": tenant_id, "integration_id": integration.record.integration_id.as_str(),
        "action_group": group, "method": method, "host": integration.host,
    });
    if j % 7 == 3 {
        scope["workload_id"] = json!(workload_id);
    }
    let constrained = j % 5 == 1;
    let mut rule = match j % 20 {
        0..=10 => json!({"rule_type": "allow"}),
        11..=13 => json!({"rule_type": "deny"}),
        14..=16 => json!({"rule_type": "approval_required"}),
        _ => json!({"rule_type": "rate_limit",
                    "rate_limit": {"max_requests": 10 + j % 90, "interval_seconds": 60,
                                   "per": if j.is_multiple_of(2) { "workload" } else { "rule" }}}),
    };
    rule["scope"] = scope;
    rule["description"] = json!(format!("seeded rule {j}"));
    if constrained {
        rule["constraints"] = json!({
            "max_body_bytes": 4096 + (j % 16) * 1024,
            "body_json": [{"pointer": "/model", "allowed_values": ["small", "medium"]}],
        });
    }
    PolicyRule::from_json(&rule).map_err(|e| anyhow::anyhow!("generated rule {rule}: {e:?}"))
}

/// Runs `items` through `write`, [`CONCURRENCY`] at a time; the first error stops it.
async fn in_parallel<T, F, Fut>(items: Vec<T>, write: F) -> Result<()>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut results = futures::stream::iter(items.into_iter().map(write)).buffer_unordered(CONCURRENCY);
    while let Some(result) = results.next().await {
        result?;
    }
    Ok(())
}

/// Writes the whole catalog into `store`, sealing secrets with `keyring` (the deployment's).
/// `progress` is called after each stage with its name, count and seconds.
pub async fn seed_catalog(
    store: Arc<dyn Store>,
    keyring: &Keyring,
    trust_domain: &str,
    counts: CatalogCounts,
    now: Timestamp,
    progress: &dyn Fn(&str, u64, f64),
) -> Result<CatalogSeed> {
    let globals: Vec<Template> = builtin_templates()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter()
        .filter(|t| GLOBAL_TEMPLATES.contains(&t.id()))
        .collect();
    if globals.len() != GLOBAL_TEMPLATES.len() {
        bail!("the build's built-in templates are not {GLOBAL_TEMPLATES:?}");
    }

    // 1. Tenants, each with one workload (and its enrollment token) and its template.
    let started = Instant::now();
    let tenant_count = counts.tenants as usize;
    let mut tenants: Vec<SeededTenant> = Vec::with_capacity(tenant_count);
    let mut tenant_ids: Vec<TenantId> = Vec::with_capacity(tenant_count);
    let mut writes = Vec::with_capacity(tenant_count);
    for n in 0..counts.tenants {
        let tenant_id = TenantId::generate();
        let workload_id = WorkloadId::generate();
        let tenant = TenantRecord {
            tenant_id: tenant_id.clone(),
            name: if n == 0 { "bench".to_owned() } else { format!("seed-tenant-{n:06}") },
            dpop_required: false,
            approval_webhook_url: None,
            created_at: now,
            updated_at: now,
        };
        let workload = WorkloadRecord {
            workload_id: workload_id.clone(),
            tenant_id: tenant_id.clone(),
            name: format!("seed-workload-{n:06}"),
            san_uri: format!("spiffe://{trust_domain}/tenants/{tenant_id}/workloads/{workload_id}"),
            enabled: true,
            ip_allowlist: Vec::new(),
            dpop_required: false,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let token = EnrollmentTokenRecord {
            token_id: steward_types::EnrollmentTokenId::generate(),
            workload_id: workload_id.clone(),
            token_hash: generate_token("stw_enr_").hash(),
            created_at: now,
            expires_at: now.plus_seconds(3600),
            used_at: None,
            superseded_at: None,
        };
        let mut templates = vec![parse_template(&internal_template(n))?];
        if n == 0 {
            templates.push(parse_template(&bench_template(tenant_id.as_str(), 1, SEED_BENCH_PORT))?);
        }
        tenant_ids.push(tenant_id.clone());
        tenants.push(SeededTenant {
            tenant_id: tenant_id.to_string(),
            workload_id: workload_id.to_string(),
            integrations: Vec::new(),
        });
        writes.push((tenant, workload, token, templates));
    }
    in_parallel(writes, |(tenant, workload, token, templates)| {
        let store = Arc::clone(&store);
        async move {
            store.insert_tenant(&tenant).await.context("insert_tenant")?;
            store.insert_workload(&workload, &token).await.context("insert_workload")?;
            for template in &templates {
                let record = template_record(tenant.tenant_id.as_str(), template, now);
                match store.publish_template(&record).await.context("publish_template")? {
                    PublishOutcome::Published => {}
                    other => bail!("publishing {} of {}: {other:?}", template.id(), tenant.tenant_id),
                }
            }
            Ok(())
        }
    })
    .await?;
    progress(
        "tenants (with a workload and a template each)",
        counts.tenants,
        started.elapsed().as_secs_f64(),
    );

    // 2. Integrations, each with its first secret version sealed under the keyring.
    let started = Instant::now();
    let mut planned: Vec<PlannedIntegration> = Vec::with_capacity(counts.integrations as usize);
    for i in 0..counts.integrations {
        let tenant = (i % counts.tenants) as usize;
        let tenant_id = tenant_ids[tenant].clone();
        let integration_id = IntegrationId::generate();
        let internal;
        let bench;
        let (owner, template, name, value) = if i == 0 {
            bench = parse_template(&bench_template(tenant_id.as_str(), 1, SEED_BENCH_PORT))?;
            (tenant_id.to_string(), &bench, "bench".to_owned(), BENCH_SECRET.to_owned())
        } else if (i / counts.tenants).is_multiple_of(3) {
            internal = parse_template(&internal_template(tenant as u64))?;
            (tenant_id.to_string(), &internal, format!("internal-{i}"), format!("sk-seed-internal-{i:08}"))
        } else {
            let global = &globals[(i as usize) % globals.len()];
            (
                GLOBAL_TENANT.to_owned(),
                global,
                format!("{}-{i}", global.provider()),
                format!("sk-seed-{i:08}"),
            )
        };
        let injection = template.default_injection().cloned().unwrap_or_else(Injection::default);
        let envelope =
            seal_record(keyring, &secret_context(&tenant_id, &integration_id, 1), value.as_bytes())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        let secret = NewSecretVersion {
            version: 1,
            secret_type: "api_key".to_owned(),
            envelope,
            bound_hosts: template.hosts().to_vec(),
            bound_injection: injection.to_json(),
            oauth2: None,
            client_secret: None,
            created_at: now,
        };
        let record = IntegrationRecord {
            integration_id: integration_id.clone(),
            tenant_id,
            name,
            provider: template.provider().to_owned(),
            template_owner: owner,
            template_id: template.id().to_owned(),
            template_version: None,
            injection: None,
            enabled: true,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            secret_version: 1,
            secret_updated_at: Some(now),
            bound_hosts: secret.bound_hosts.clone(),
            bound_injection: Some(secret.bound_injection.clone()),
        };
        let host = template.hosts().first().cloned().unwrap_or_else(|| UPSTREAM_HOST.to_owned());
        tenants[tenant].integrations.push(integration_id.to_string());
        planned.push(PlannedIntegration { tenant, record, secret, groups: groups_of(template), host });
    }
    let writes: Vec<(IntegrationRecord, NewSecretVersion)> =
        planned.iter().map(|p| (p.record.clone(), p.secret.clone())).collect();
    in_parallel(writes, |(record, secret)| {
        let store = Arc::clone(&store);
        async move {
            match store.create_integration(&record, &secret).await.context("create_integration")? {
                CreateIntegrationOutcome::Created => Ok(()),
                CreateIntegrationOutcome::NameConflict => bail!("integration name {} taken", record.name),
            }
        }
    })
    .await?;
    progress(
        "integrations (with a sealed API-key secret version)",
        counts.integrations,
        started.elapsed().as_secs_f64(),
    );

    // 3. Rules: the bench's four, then round-robin over every other integration.
    let started = Instant::now();
    let bench = &planned[0];
    let mut rules = Vec::with_capacity(counts.policies as usize);
    for value in bench_rules(bench.record.tenant_id.as_str(), bench.record.integration_id.as_str()) {
        let rule = PolicyRule::from_json(&value).map_err(|e| anyhow::anyhow!("bench rule: {e:?}"))?;
        rules.push(steward_server::services::policies::new_record(&rule, now));
    }
    let others = planned.len() as u64 - 1;
    for j in 0..counts.policies.saturating_sub(4) {
        let integration = &planned[1 + (j % others) as usize];
        let tenant = &tenants[integration.tenant];
        let rule = generated_rule(j, j / others, &tenant.tenant_id, &tenant.workload_id, integration)?;
        rules.push(steward_server::services::policies::new_record(&rule, now));
    }
    in_parallel(rules, |record| {
        let store = Arc::clone(&store);
        async move { store.insert_policy(&record).await.context("insert_policy") }
    })
    .await?;
    progress("policy rules", counts.policies, started.elapsed().as_secs_f64());

    Ok(CatalogSeed {
        counts,
        bench_tenant_id: bench.record.tenant_id.to_string(),
        bench_integration_id: bench.record.integration_id.to_string(),
        tenants,
    })
}
