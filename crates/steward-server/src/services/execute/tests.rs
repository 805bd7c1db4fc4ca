//! The pipeline's steps without HTTP: a real SQLite store and keyring from `steward init`, a
//! principal built in place (identity is the route's job), and the built-in `tpl_openai` template.
//! `api.openai.com` resolves through `egress.static_hosts` to loopback, so nothing leaves the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde_json::json;
use steward_canon::{HeaderField, Method};
use steward_store::catalog::{IntegrationRecord, NewSecretVersion, PolicyRecord};
use steward_store::{CertificateRecord, TenantRecord, WorkloadRecord};
use steward_types::{ErrorCode, IntegrationId, PolicyId, SharedClock, SystemClock, TenantId, WorkloadId};

use super::{ClientInfo, ExecuteInput, Execution, Mode, Outcome, RequestBody, Step, binding};
use crate::bootstrap::{InitOptions, init};
use crate::config::{self, StorageBackend};
use crate::http::RequestContext;
use crate::services::AppState;
use crate::services::credentials::envelope::{seal_record, secret_context};
use crate::services::credentials::oauth2::bearer_injection;
use crate::services::identity::MtlsPrincipal;
use crate::startup::{Environment, prepare};

const SECRET: &str = "sk-unit-0123456789";

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    principal: MtlsPrincipal,
    integration_id: IntegrationId,
}

/// `steward init` into a temporary directory, `prepare` with `api.openai.com` on loopback (and
/// loopback exempted when `allow_loopback`), then a tenant and an integration of `tpl_openai` with a
/// secret, written straight into the store.
async fn fixture(allow_loopback: bool) -> Fixture {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let options = InitOptions {
        data_dir: dir.path().to_path_buf(),
        public_url: None,
        storage: StorageBackend::Sqlite,
        postgres_url: None,
        redis_url: None,
        kek_file: None,
        force: false,
    };
    init(&options, &Environment::default(), Arc::clone(&clock)).await.expect("init");
    let vars = vec![
        ("STEWARD_DATA_PLANE__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("STEWARD_ADMIN__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
    ];
    let mut loaded = config::load(Some(&dir.path().join("steward.toml")), &vars).unwrap();
    loaded.config.egress.static_hosts.insert("api.openai.com".into(), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    if allow_loopback {
        loaded.config.egress.allow_cidrs.push("127.0.0.0/8".parse().unwrap());
    }
    let state = prepare(loaded, &Environment { vars }, Arc::clone(&clock)).await.expect("prepare").state;

    let now = clock.now();
    let tenant_id = TenantId::parse("t_unit").unwrap();
    let workload_id = WorkloadId::parse("w_unit").unwrap();
    let integration_id = IntegrationId::parse("i_unit").unwrap();
    state
        .store
        .insert_tenant(&TenantRecord {
            tenant_id: tenant_id.clone(),
            name: "unit".into(),
            dpop_required: false,
            approval_webhook_url: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let integration = IntegrationRecord {
        integration_id: integration_id.clone(),
        tenant_id: tenant_id.clone(),
        name: "openai".into(),
        provider: "openai".into(),
        template_owner: "global".into(),
        template_id: "tpl_openai".into(),
        template_version: None,
        injection: None,
        enabled: true,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        secret_version: 1,
        secret_updated_at: Some(now),
        bound_hosts: vec!["api.openai.com".into()],
        bound_injection: Some(bearer_injection().to_json()),
    };
    let keyring = state.keyring.load();
    let envelope =
        seal_record(&keyring, &secret_context(&tenant_id, &integration_id, 1), SECRET.as_bytes()).unwrap();
    let secret = NewSecretVersion {
        version: 1,
        secret_type: "api_key".into(),
        envelope,
        bound_hosts: vec!["api.openai.com".into()],
        bound_injection: bearer_injection().to_json(),
        oauth2: None,
        client_secret: None,
        created_at: now,
    };
    state.store.create_integration(&integration, &secret).await.unwrap();

    let principal = MtlsPrincipal {
        tenant_id: tenant_id.clone(),
        workload_id: workload_id.clone(),
        thumbprint: "thumb".into(),
        serial: "01".into(),
        workload: WorkloadRecord {
            workload_id: workload_id.clone(),
            tenant_id,
            name: "unit".into(),
            san_uri: "spiffe://unit/tenants/t_unit/workloads/w_unit".into(),
            enabled: true,
            ip_allowlist: Vec::new(),
            dpop_required: false,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        },
        certificate: CertificateRecord {
            serial: "01".into(),
            workload_id,
            not_before: now,
            not_after: now.plus_seconds(3600),
            thumbprint: "thumb".into(),
            identity_started_at: now,
            issued_at: now,
            revoked_at: None,
        },
        peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    Fixture { _dir: dir, state, principal, integration_id }
}

impl Fixture {
    /// An allow rule for `POST https://api.openai.com/v1/responses`.
    async fn allow_responses(&self) {
        let now = self.state.clock.now();
        let rule = json!({
            "rule_type": "allow",
            "scope": {"tenant_id": "t_unit", "integration_id": "i_unit", "action_group": "openai_responses",
                      "method": "POST", "host": "api.openai.com"}
        });
        let record = PolicyRecord {
            policy_id: PolicyId::generate(),
            tenant_id: self.principal.tenant_id.clone(),
            integration_id: self.integration_id.clone(),
            action_group: "openai_responses".into(),
            method: "POST".into(),
            host: "api.openai.com".into(),
            workload_id: None,
            rule_type: "allow".into(),
            rule,
            created_at: now,
            disabled_at: None,
        };
        self.state.store.insert_policy(&record).await.unwrap();
        self.state.reads.invalidate();
    }
}

fn context() -> RequestContext {
    RequestContext { request_id: steward_types::RequestId::generate(), correlation_id: "corr-unit".into() }
}

fn input(integration_id: &str) -> ExecuteInput {
    ExecuteInput {
        integration_id: integration_id.into(),
        method: Method::Post,
        url: "https://api.openai.com/v1/responses".into(),
        headers: vec![HeaderField::new("content-type", "application/json")],
        body: RequestBody::Bytes(bytes::Bytes::from_static(br#"{"model":"gpt-unit"}"#)),
        client: ClientInfo::default(),
        idempotency_key: None,
        mode: Mode::Forward,
    }
}

fn refusal(step: Step) -> ErrorCode {
    match step {
        Step::Done(Outcome::Refused(error) | Outcome::Denied(error)) => error.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn binding_finds_the_integration_in_the_callers_tenant_and_its_template() {
    let f = fixture(false).await;
    let missing = binding::integration(&f.state, &f.principal, "i_missing").await.unwrap_err();
    assert_eq!(missing.code, ErrorCode::IntegrationNotFound);
    let integration = binding::integration(&f.state, &f.principal, "i_unit").await.unwrap();
    let template = binding::template(&f.state, &integration).await.unwrap();
    assert_eq!(template.id(), "tpl_openai");
}

#[tokio::test]
async fn without_an_allow_rule_the_policy_branch_denies() {
    let f = fixture(false).await;
    let context = context();
    let mut execution = Execution::new(&f.state, &context, &f.principal, Mode::Forward);
    assert_eq!(refusal(execution.prepare(input("i_unit")).await), ErrorCode::PolicyDefaultDeny);
    assert_eq!(execution.integration_id(), Some("i_unit"));
}

#[tokio::test]
async fn an_allowed_request_then_meets_the_ssrf_guard() {
    let f = fixture(false).await;
    f.allow_responses().await;
    let context = context();
    let mut execution = Execution::new(&f.state, &context, &f.principal, Mode::Forward);
    assert_eq!(refusal(execution.prepare(input("i_unit")).await), ErrorCode::ResolvedIpDeniedLoopback);
}

#[tokio::test]
async fn prepare_stops_after_the_write_ahead_audit_with_the_credential_injected() {
    let f = fixture(true).await;
    f.allow_responses().await;
    let context = context();
    let mut execution = Execution::new(&f.state, &context, &f.principal, Mode::Forward);
    let prepared = match execution.prepare(input("i_unit")).await {
        Step::Ready(prepared) => prepared,
        Step::Done(outcome) => panic!("expected a prepared call, got {outcome:?}"),
    };
    assert_eq!(prepared.pending.canonical().canonical_url(), "https://api.openai.com/v1/responses");
    assert_eq!(prepared.pending.secret_version().version, 1);
    assert_eq!(prepared.wire.target.addresses(), &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let needles = &prepared.wire.needles;
    assert!(needles.iter().any(|n| n.as_slice() == SECRET.as_bytes()), "the secret is a needle");
    assert!(!format!("{:?}", prepared.wire).contains(SECRET), "Debug never shows the secret");
    // A caller that sent the request itself completes it (no idempotency key: nothing stored).
    let super::Prepared { wire, pending } = *prepared;
    drop(wire);
    execution.complete(pending, None).await;
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused_before_anything_else() {
    let f = fixture(false).await;
    let context = context();
    let mut execution = Execution::new(&f.state, &context, &f.principal, Mode::Execute);
    let mut bad = input("i_missing");
    bad.idempotency_key = Some("not a key".into());
    assert_eq!(refusal(execution.prepare(bad).await), ErrorCode::IdempotencyKeyInvalid);
}
