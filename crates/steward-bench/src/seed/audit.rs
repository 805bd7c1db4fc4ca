//! The audit part of the harness's data generator (issue 18): millions of real, chained, verifiable
//! audit events, spread over many tenants with one "big" tenant, with realistic field distributions.
//!
//! Events go through the store's own append path — an [`AuditWriter`] (group commit, HMAC chain per
//! tenant and writer, signed checkpoints) — so what is seeded is exactly what a running Steward writes
//! and `GET /v1/audit/verify` checks it like any other chain. The caller starts the writer with the
//! deployment's audit key and signer ([`open_seed_writer`] does that for a data directory).
//!
//! Generation is deterministic per event index: event `i` always gets the same tenant, workload,
//! integration, type, decision, group and time, so an interrupted seeding resumes at the first index
//! not yet acknowledged (`first_index`) and the store ends up with the same distribution.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_server::services::credentials::envelope::open_audit_key;
use steward_server::services::keys::{ActiveKeySigner, ActiveSigningKey, open_signing_key};
use steward_store::Store;
use steward_store::audit::{Actor, AuditEvent, AuditWriter, Decision, Destination, EventType, PolicyRef};
use steward_types::{Clock, SystemClock, Timestamp};

/// The first event's time (2026-01-01T00:00:00Z); events are spread evenly over [`SPAN_MICROS`].
pub const START_MICROS: i64 = 1_767_225_600_000_000;
/// Thirty days.
pub const SPAN_MICROS: i64 = 30 * 24 * 3600 * 1_000_000;

/// Concurrent appenders: enough to fill the writer's batches (group commit).
const APPENDERS: u64 = 256;

/// A tenant whose events are generated, with the workloads and integrations they name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditTenant {
    pub tenant_id: String,
    pub workload_ids: Vec<String>,
    pub integration_ids: Vec<String>,
}

impl AuditTenant {
    /// A tenant with `workloads` workloads and `integrations` integrations whose ids are derived from
    /// the tenant id (for stores without a seeded catalog).
    pub fn synthetic(tenant_id: &str, workloads: usize, integrations: usize) -> Self {
        let stem = tenant_id.strip_prefix("t_").unwrap_or(tenant_id);
        Self {
            tenant_id: tenant_id.to_owned(),
            workload_ids: (0..workloads.max(1)).map(|k| format!("w_{stem}_{k}")).collect(),
            integration_ids: (0..integrations.max(1)).map(|k| format!("i_{stem}_{k}")).collect(),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct AuditSeedSpec {
    /// `tenants[0]` is the big tenant.
    pub tenants: Vec<AuditTenant>,
    /// Events in all (the store ends up holding this many seeded events).
    pub total: u64,
    /// The big tenant's share of all events (at 10 M events, 0.12 gives it 1.2 M).
    pub big_tenant_share: f64,
    /// Events already in the store from an interrupted run: generation resumes at this index.
    pub first_index: u64,
}

/// What seeding did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditSeedReport {
    /// Events appended by this call.
    pub appended: u64,
    /// Events the spec asks for in all.
    pub total: u64,
    pub big_tenant_id: String,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// Action groups, most used first (a request picks one with a Zipf-like weight).
pub const ACTION_GROUPS: [&str; 16] = [
    "openai_responses",
    "openai_chat",
    "github_issues_read",
    "github_contents_read",
    "slack_post_message",
    "stripe_charges_read",
    "github_pull_requests_write",
    "jira_issue_write",
    "google_calendar_read",
    "salesforce_query",
    "stripe_refunds_write",
    "anthropic_messages",
    "twilio_sms_send",
    "sendgrid_mail_send",
    "aws_s3_get",
    "notion_pages_write",
];

/// Every event type, with its share (per 10 000 events) of what the generator writes.
pub const EVENT_TYPES: [(EventType, u32); 12] = [
    (EventType::Execute, 4_000),
    (EventType::ExecuteResult, 3_700),
    (EventType::SessionIssued, 1_000),
    (EventType::Violation, 300),
    (EventType::ApprovalCreated, 200),
    (EventType::ApprovalDecided, 150),
    (EventType::ApprovalConsumed, 120),
    (EventType::ApprovalExpired, 40),
    (EventType::ManifestIssued, 250),
    (EventType::Enrollment, 100),
    (EventType::AdminAction, 139),
    (EventType::KeyRotated, 1),
];

/// SplitMix64: a fixed, dependency-free stream of pseudo-random numbers per event index.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn for_index(i: u64) -> Self {
        Rng(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED_A0D1_7000_0001)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Zipf-like over `n` items: item k with weight 1/(k+1).
    fn zipf(&mut self, n: usize) -> usize {
        let harmonic: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
        let mut target = self.unit() * harmonic;
        for k in 0..n {
            target -= 1.0 / (k + 1) as f64;
            if target <= 0.0 {
                return k;
            }
        }
        n - 1
    }

    fn hex(&mut self, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes * 2);
        while out.len() < bytes * 2 {
            out.push_str(&format!("{:016x}", self.next()));
        }
        out.truncate(bytes * 2);
        out
    }
}

/// The time of event `i` of `total`.
pub fn event_time(i: u64, total: u64) -> Timestamp {
    let offset = (i128::from(SPAN_MICROS) * i128::from(i) / i128::from(total.max(1))) as i64;
    Timestamp::from_unix_micros(START_MICROS + offset).unwrap_or_else(|_| SystemClock.now())
}

/// The correlation id of request `r` (events `2r` and `2r+1` share it): a random UUIDv4, as Steward
/// generates when the client sends none (`spec/data-plane.md`), and for one request in ten a
/// client's own trace id.
pub fn correlation_id(r: u64, _total: u64) -> String {
    let mut rng = Rng::for_index(r ^ 0xC0_77E1);
    if rng.below(10) == 0 {
        return format!("trace-{}", rng.hex(16));
    }
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next().to_le_bytes());
    bytes[8..].copy_from_slice(&rng.next().to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// Which tenant request `r` belongs to.
fn tenant_of(r: u64, spec: &AuditSeedSpec) -> usize {
    let mut rng = Rng::for_index(r ^ 0x7E_0A47);
    if spec.tenants.len() == 1 || rng.unit() < spec.big_tenant_share {
        return 0;
    }
    1 + rng.below(spec.tenants.len() as u64 - 1) as usize
}

/// Event `i` of the spec. Events come in pairs per request (`i / 2`): the first says what happened
/// (an execute with its decision, a session, a violation, an approval step…), the second is the
/// execute's result when the call went out, else another event of the same request.
pub fn generate_event(i: u64, spec: &AuditSeedSpec) -> AuditEvent {
    let r = i / 2;
    let tenant = &spec.tenants[tenant_of(r, spec)];
    let mut request = Rng::for_index(r);
    let workload = &tenant.workload_ids[request.below(tenant.workload_ids.len() as u64) as usize];
    let integration = &tenant.integration_ids[request.below(tenant.integration_ids.len() as u64) as usize];
    let group = ACTION_GROUPS[request.zipf(ACTION_GROUPS.len())];
    // A UUIDv7 of the request's time, as the server generates.
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&request.next().to_le_bytes());
    let request_id = uuid::Builder::from_unix_timestamp_millis(
        (event_time(2 * r, spec.total).unix_micros() / 1_000) as u64,
        &random,
    )
    .into_uuid()
    .to_string();
    let mut own = Rng::for_index(i ^ 0xE7E_0000);
    let mut pick = own.below(10_000) as u32;
    let mut event_type = EventType::Execute;
    for (candidate, share) in EVENT_TYPES {
        if pick < share {
            event_type = candidate;
            break;
        }
        pick -= share;
    }
    let decision = match own.below(1000) {
        0..=899 => Decision::Allowed,
        900..=959 => Decision::Denied,
        960..=989 => Decision::ApprovalRequired,
        _ => Decision::Throttled,
    };
    let at = event_time(i, spec.total);
    let base = |event_type: EventType, actor: Actor| {
        AuditEvent::new(event_type, actor, at)
            .with_tenant(tenant.tenant_id.clone())
            .with_request_id(request_id.clone())
            .with_correlation_id(correlation_id(r, spec.total))
    };
    let host = format!("api.{}.example.test", group.split('_').next().unwrap_or("provider"));
    let destination = Destination {
        scheme: "https".into(),
        host: host.clone(),
        port: 443,
        path_group: Some(group.to_owned()),
    };
    let descriptor = json!({
        "method": if own.below(3) == 0 { "POST" } else { "GET" },
        "host": host,
        "path": format!("/v1/{group}/{}", own.below(1000)),
        "query": {"page": format!("hmac:{}", own.hex(32))},
        "headers": {"content-type": "application/json", "x-request-tag": format!("hmac:{}", own.hex(32))},
    });
    let workload_actor = || Actor::workload(workload.clone());
    match event_type {
        EventType::Execute | EventType::Violation => {
            let decision = if event_type == EventType::Violation { Decision::Denied } else { decision };
            let reason = match decision {
                Decision::Allowed => "policy_allow",
                Decision::Denied => "policy_deny",
                Decision::ApprovalRequired => "approval_required",
                Decision::Throttled => "rate_limited",
            };
            base(event_type, workload_actor())
                .with_workload(workload.clone())
                .with_integration(integration.clone())
                .with_decision(decision)
                .with_reason_code(reason)
                .with_action_group(group)
                .with_risk_tier(["low", "medium", "high"][own.below(3) as usize])
                .with_destination(destination)
                .with_canonical_descriptor(descriptor)
                .with_policy(PolicyRef {
                    rule_id: Some(format!("pol_{}", own.hex(16))),
                    rule_type: Some(if decision == Decision::Allowed { "allow" } else { "deny" }.into()),
                    approval_id: None,
                })
        }
        EventType::ExecuteResult => {
            let status = [200u16, 200, 200, 200, 201, 204, 400, 404, 429, 500][own.below(10) as usize];
            base(event_type, workload_actor())
                .with_workload(workload.clone())
                .with_integration(integration.clone())
                .with_decision(Decision::Allowed)
                .with_reason_code("upstream_responded")
                .with_action_group(group)
                .with_risk_tier("low")
                .with_destination(destination)
                .with_latency_ms(20 + own.below(800))
                .with_upstream_status_code(status)
                .with_metadata("resolved_ips", json!([format!("203.0.113.{}", own.below(254) + 1)]))
                .with_metadata("secret_scrubbed", json!(own.below(50) == 0))
        }
        EventType::SessionIssued | EventType::ManifestIssued | EventType::Enrollment => {
            base(event_type, workload_actor()).with_workload(workload.clone())
        }
        EventType::ApprovalCreated
        | EventType::ApprovalDecided
        | EventType::ApprovalConsumed
        | EventType::ApprovalExpired => base(event_type, workload_actor())
            .with_workload(workload.clone())
            .with_integration(integration.clone())
            .with_decision(Decision::ApprovalRequired)
            .with_action_group(group)
            .with_metadata("approval_id", json!(format!("apr_{}", own.hex(16)))),
        EventType::AdminAction | EventType::KeyRotated => {
            base(event_type, Actor::admin(format!("tok_{}", own.hex(16)), "admin"))
                .with_metadata("action", json!("update_policy"))
                .with_metadata("target_id", json!(integration))
        }
    }
}

/// Appends events `spec.first_index .. spec.total` through `writer`, `APPENDERS` at a time (each
/// acknowledged only once its batch committed), calling `progress(done)` about every 100 000 events
/// with the number of events durably in the store (in index order: every index below it is written).
pub async fn seed_audit_events(
    writer: &AuditWriter,
    spec: &AuditSeedSpec,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<AuditSeedReport> {
    anyhow::ensure!(!spec.tenants.is_empty(), "no tenants to seed audit events for");
    anyhow::ensure!(
        (0.0..=1.0).contains(&spec.big_tenant_share),
        "the big tenant's share must be within 0..=1"
    );
    let started = Instant::now();
    let spec = Arc::new(spec.clone());
    const CHUNK: u64 = 100_000;
    let mut at = spec.first_index;
    while at < spec.total {
        let end = (at + CHUNK).min(spec.total);
        let next = Arc::new(AtomicU64::new(at));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..APPENDERS {
            let (writer, spec, next) = (writer.clone(), Arc::clone(&spec), Arc::clone(&next));
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return Ok::<(), anyhow::Error>(());
                    }
                    writer
                        .append(generate_event(i, &spec))
                        .await
                        .with_context(|| format!("appending event {i}"))?;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        at = end;
        progress(at);
    }
    let seconds = started.elapsed().as_secs_f64();
    let appended = spec.total.saturating_sub(spec.first_index);
    Ok(AuditSeedReport {
        appended,
        total: spec.total,
        big_tenant_id: spec.tenants[0].tenant_id.clone(),
        seconds,
        events_per_second: appended as f64 / seconds.max(1e-9),
    })
}

/// An audit writer on `store` as `steward serve` starts it: the deployment's audit key (opened with
/// `keyring`), checkpoints signed with the active manifest signing key.
pub async fn open_seed_writer(
    store: Arc<dyn Store>,
    keyring: &steward_crypto::Keyring,
) -> Result<AuditWriter> {
    let deployment = store.deployment().await?.context("the store holds no deployment (run init first)")?;
    let audit_key = open_audit_key(keyring, &deployment.audit_key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let signing_key =
        open_signing_key(keyring, &deployment.active_signing_key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let active = ActiveSigningKey::new(signing_key, SystemClock.now());
    Ok(AuditWriter::start(
        store,
        audit_key,
        format!("wr_seed{}", uuid::Uuid::now_v7().simple()),
        Arc::new(SystemClock),
        Arc::new(ActiveKeySigner::new(active.shared())),
        Duration::from_secs(60),
    ))
}
