//! Migration 0008 on a database that already has data, on SQLite and PostgreSQL: existing secret
//! versions are bound to the injection in effect when it runs (the integration's own, else its
//! template's default — pinned version or owner's latest — else bearer; bearer for OAuth2), and
//! existing duplicate pending approvals are superseded down to the newest, so the new unique index
//! can be built and the newest keeps being the one every request gets.

use std::borrow::Cow;
use std::path::Path;

use serde_json::{Value, json};
use steward_store::governance::{NewApproval, PendingApproval};
use steward_store::{PostgresStore, SqliteStore, SqliteSynchronous, Store};
use steward_types::{ApprovalId, IntegrationId, TenantId, Timestamp, WorkloadId};

/// Applies the migrations of `dir` older than 0008, as a database last migrated before it.
async fn migrate_before_0008<'c, A>(dir: &str, connection: A) -> anyhow::Result<()>
where
    A: sqlx::Acquire<'c>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
    let mut migrator = sqlx::migrate::Migrator::new(path).await?;
    migrator.migrations = Cow::Owned(migrator.migrations.iter().filter(|m| m.version < 8).cloned().collect());
    migrator.run(connection).await?;
    Ok(())
}

const NOW: i64 = 1_795_000_000_000_000;

/// Rows as an older Steward wrote them: integrations with each kind of injection source, one secret
/// version each, and three pending approvals of one digest (plus one of another).
fn fixture(false_: &str) -> String {
    let template = |owner: &str, id: &str, version: u64, injection: Option<Value>| {
        let mut body = json!({"template_id": id, "version": version, "provider": "p"});
        if let Some(injection) = injection {
            body["default_injection"] = injection;
        }
        format!(
            "INSERT INTO template_versions (owner_tenant_id, template_id, version, provider, body, created_at) \
             VALUES ('{owner}', '{id}', {version}, 'p', '{body}', {NOW});"
        )
    };
    let integration = |id: &str, template: &str, pin: &str, injection: &str, secret_type: &str| {
        format!(
            "INSERT INTO integrations (integration_id, tenant_id, name, provider, template_owner, template_id, \
               template_version, injection, created_at, updated_at) \
             VALUES ('{id}', 't_one', '{id}', 'p', 't_one', '{template}', {pin}, '{injection}', {NOW}, {NOW}); \
             INSERT INTO envelopes (envelope_id, kek_id, aad, body, created_at) \
             VALUES ('env_{id}', 'k1', '{{}}', '{{}}', {NOW}); \
             INSERT INTO secret_versions (integration_id, version, envelope_id, secret_type, bound_hosts, created_at) \
             VALUES ('{id}', 1, 'env_{id}', '{secret_type}', '[\"api.example.com\"]', {NOW});"
        )
    };
    let approval = |id: &str, digest: &str, created: i64| {
        format!(
            "INSERT INTO approvals (approval_id, tenant_id, workload_id, integration_id, digest, descriptor, status, \
               created_at, expires_at) \
             VALUES ('{id}', 't_one', 'w_one', 'i_own', '{digest}', '{{}}', 'pending', {created}, {});",
            created + 300_000_000
        )
    };
    [
        format!(
            "INSERT INTO tenants (tenant_id, name, dpop_required, created_at, updated_at) \
             VALUES ('t_one', 'one', {false_}, {NOW}, {NOW}); \
             INSERT INTO workloads (workload_id, tenant_id, name, san_uri, created_at, updated_at) \
             VALUES ('w_one', 't_one', 'agent', 'spiffe://steward/x', {NOW}, {NOW});"
        ),
        template(
            "t_one",
            "tpl_keyed",
            1,
            Some(json!({"type": "header", "name": "x-api-key", "format": "{secret}"})),
        ),
        template("t_one", "tpl_keyed", 2, Some(json!({"type": "query", "name": "key"}))),
        template("t_one", "tpl_plain", 1, None),
        integration("i_own", "tpl_keyed", "NULL", r#"{"type":"basic","username":"u"}"#, "api_key"),
        integration("i_pinned", "tpl_keyed", "1", "null", "api_key"),
        integration("i_latest", "tpl_keyed", "NULL", "null", "api_key"),
        integration("i_plain", "tpl_plain", "NULL", "null", "api_key"),
        integration("i_oauth", "tpl_keyed", "NULL", r#"{"type":"query","name":"k"}"#, "oauth2_refresh_token"),
        approval("apr_old", "d1", NOW),
        approval("apr_mid", "d1", NOW + 1_000_000),
        approval("apr_new", "d1", NOW + 2_000_000),
        approval("apr_other", "d2", NOW),
    ]
    .join("\n")
}

async fn check(store: &dyn Store) -> anyhow::Result<()> {
    let bearer = json!({"type": "header", "name": "authorization", "format": "Bearer {secret}"});
    for (id, expected) in [
        ("i_own", json!({"type": "basic", "username": "u"})),
        ("i_pinned", json!({"type": "header", "name": "x-api-key", "format": "{secret}"})),
        ("i_latest", json!({"type": "query", "name": "key"})),
        ("i_plain", bearer.clone()),
        ("i_oauth", bearer.clone()),
    ] {
        let id = IntegrationId::parse(id)?;
        let secret = store.current_secret(&id).await?.expect("secret");
        assert_eq!(secret.bound_injection, Some(expected.clone()), "{id}");
        let integration = store.integration(&id).await?.expect("integration");
        assert_eq!(integration.bound_injection, Some(expected), "{id}");
    }

    // The newest of the duplicates is the pending approval of its digest; the others were
    // superseded (still pending until they expire, as before), so the index holds.
    let at = Timestamp::from_unix_micros(NOW + 10_000_000)?;
    let (tenant, workload, own) =
        (TenantId::parse("t_one")?, WorkloadId::parse("w_one")?, IntegrationId::parse("i_own")?);
    let newest = store.pending_approval_for_digest(&tenant, &workload, &own, "d1", at).await?;
    assert_eq!(newest.map(|a| a.approval_id.to_string()), Some("apr_new".to_owned()));
    let attempt = |digest: &str| NewApproval {
        approval_id: ApprovalId::generate(),
        tenant_id: tenant.clone(),
        workload_id: workload.clone(),
        integration_id: own.clone(),
        digest: digest.into(),
        descriptor: json!({}),
        preview: None,
        proposed_rule: json!({}),
        created_at: at,
        expires_at: at.plus_seconds(300),
    };
    match store.create_pending_approval(&attempt("d1")).await? {
        PendingApproval::Existing(record) => assert_eq!(record.approval_id.as_str(), "apr_new"),
        created => panic!("a pending approval existed: {created:?}"),
    }
    match store.create_pending_approval(&attempt("d2")).await? {
        PendingApproval::Existing(record) => assert_eq!(record.approval_id.as_str(), "apr_other"),
        created => panic!("a pending approval existed: {created:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn sqlite_migration_0008_binds_existing_secrets_and_dedupes_pending_approvals() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("steward.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await?;
        migrate_before_0008("sqlite", &pool).await?;
        sqlx::raw_sql(&fixture("0")).execute(&pool).await?;
        pool.close().await;
    }
    let store = SqliteStore::open(&path, SqliteSynchronous::Normal).await?;
    check(&store).await?;
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn postgres_migration_0008_binds_existing_secrets_and_dedupes_pending_approvals() -> anyhow::Result<()>
{
    let database = steward_testkit::TestDatabase::create().await?;
    {
        let pool = sqlx::PgPool::connect(&database.url).await?;
        migrate_before_0008("postgres", &pool).await?;
        sqlx::raw_sql(&fixture("FALSE")).execute(&pool).await?;
        pool.close().await;
    }
    let store = PostgresStore::connect(&database.url).await?;
    check(&store).await?;
    store.close().await;
    Ok(())
}
