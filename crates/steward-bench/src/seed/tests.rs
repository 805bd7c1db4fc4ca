//! A tiny seed (F = 0.001) on real SQLite: made, checked row by row, reused, and made again when
//! its manifest is gone.

use steward_server::services::credentials::envelope::{open_record, secret_context};
use steward_store::catalog::PolicyFilter;
use steward_types::{IntegrationId, TenantId};

use super::*;
use crate::steward::BENCH_SECRET;

const TINY: f64 = 0.001;

/// A run's private copy opens on its own and holds the seed's bench integration.
async fn check_copy(seeded: &Seeded, postgres_url: Option<&str>) {
    let work = tempfile::tempdir().unwrap();
    let copy = RunCopy::make(seeded, work.path(), postgres_url).await.unwrap();
    assert_ne!(copy.config_path, seeded.config_path);
    let opened = open(&copy.config_path).await.unwrap();
    assert!(
        opened
            .store
            .integration(&IntegrationId::parse(&seeded.manifest.bench_integration_id).unwrap())
            .await
            .unwrap()
            .is_some()
    );
    opened.close().await;
    copy.remove().await.unwrap();
}

async fn check_contents(seeded: &Seeded, expected: CatalogCounts) {
    let m = &seeded.manifest;
    assert_eq!(m.counts, expected);
    assert_eq!(m.stages.len(), 4, "{:?}", m.stages);
    let opened = open(&seeded.config_path).await.unwrap();
    let store = &opened.store;
    let tenants = store.list_tenants().await.unwrap();
    assert_eq!(tenants.len() as u64, expected.tenants);
    assert_eq!(store.list_integrations(None).await.unwrap().len() as u64, expected.integrations);
    assert_eq!(store.list_policies(&PolicyFilter::default()).await.unwrap().len() as u64, expected.policies);
    // The bench's integration shares its tenant with others and carries exactly its four rules.
    let bench_tenant = vec![TenantId::parse(&m.bench_tenant_id).unwrap()];
    let in_tenant = store.list_integrations(Some(&bench_tenant)).await.unwrap();
    assert!(in_tenant.len() > 1, "the bench's tenant holds only the bench's integration");
    let rules = store
        .list_policies(&PolicyFilter {
            tenant_ids: None,
            integration_id: Some(IntegrationId::parse(&m.bench_integration_id).unwrap()),
        })
        .await
        .unwrap();
    assert_eq!(rules.len(), 4);
    let echo = store
        .active_policies(
            &TenantId::parse(&m.bench_tenant_id).unwrap(),
            &IntegrationId::parse(&m.bench_integration_id).unwrap(),
            "bench_echo",
        )
        .await
        .unwrap();
    assert_eq!(echo.len(), 1);
    // Every rule type of the mix is there, some constrained.
    let all = store.list_policies(&PolicyFilter::default()).await.unwrap();
    for kind in ["allow", "deny", "approval_required", "rate_limit"] {
        assert!(all.iter().any(|p| p.rule_type == kind), "no {kind} rule");
    }
    assert!(all.iter().any(|p| p.rule.get("constraints").is_some()));
    assert!(all.iter().any(|p| p.workload_id.is_some()));
    // The secret is a real envelope the seed's keyring opens, bound to its own AAD.
    let secret =
        store.current_secret(&IntegrationId::parse(&m.bench_integration_id).unwrap()).await.unwrap().unwrap();
    let context = secret_context(
        &TenantId::parse(&m.bench_tenant_id).unwrap(),
        &IntegrationId::parse(&m.bench_integration_id).unwrap(),
        1,
    );
    let plain = open_record(&opened.keyring, &context, &secret.envelope).unwrap();
    assert_eq!(plain.as_slice(), BENCH_SECRET.as_bytes());
    // Audit events went through the chained writer.
    assert!(m.audit_events > 0);
    let heads = store.audit_chain_heads(None).await.unwrap();
    let seeded: Vec<_> = heads.iter().filter(|h| h.writer_id.starts_with("wr_seed")).collect();
    assert!(!seeded.is_empty());
    assert_eq!(seeded.iter().map(|h| h.seq as u64).sum::<u64>(), m.audit_events);
    opened.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_seed_is_made_then_reused() {
    let root = tempfile::tempdir().unwrap();
    let options = SeedOptions {
        scale: TINY,
        audit_events: None,
        root: root.path().to_owned(),
        postgres_url: None,
        redis_url: None,
    };
    let first = prepare(&options).await.unwrap();
    assert!(!first.reused);
    assert!(first.dir.ends_with("stwbench-seed-sqlite-0_001"), "{}", first.dir.display());
    check_contents(&first, CatalogCounts { tenants: 10, integrations: 50, policies: 200 }).await;

    let second = prepare(&options).await.unwrap();
    assert!(second.reused);
    assert_eq!(second.manifest, first.manifest);
    check_copy(&second, None).await;

    // Without its manifest a seed is not trusted: it is made again, with new ids.
    std::fs::remove_file(first.dir.join("seed.json")).unwrap();
    let third = prepare(&options).await.unwrap();
    assert!(!third.reused);
    assert_ne!(third.manifest.bench_integration_id, first.manifest.bench_integration_id);
    check_contents(&third, CatalogCounts { tenants: 10, integrations: 50, policies: 200 }).await;

    // The catalog alone (`--seed-audit-events 0`) is a seed of its own, beside the default one.
    let catalog_only = prepare(&SeedOptions { audit_events: Some(0), ..options.clone() }).await.unwrap();
    assert!(!catalog_only.reused);
    assert!(
        catalog_only.dir.ends_with("stwbench-seed-sqlite-0_001_audit0"),
        "{}",
        catalog_only.dir.display()
    );
    assert_eq!(catalog_only.manifest.audit_events, 0);
    assert_eq!(catalog_only.manifest.counts, third.manifest.counts);
    assert!(prepare(&options).await.unwrap().reused, "the default seed is still there");
}

/// Shared mode: the seed's database `stwbench_seed_0_0002` on the test server
/// (`STEWARD_TEST_POSTGRES_URL`), dropped at the end; Redis only for `init`'s configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_postgres_seed_is_made_then_reused() {
    let root = tempfile::tempdir().unwrap();
    let url = steward_testkit::postgres_base_url();
    let options = SeedOptions {
        scale: 0.0002,
        audit_events: None,
        root: root.path().to_owned(),
        postgres_url: Some(url.clone()),
        redis_url: Some(steward_testkit::redis_url()),
    };
    let first = prepare(&options).await.unwrap();
    assert!(!first.reused);
    assert_eq!(first.manifest.database.as_deref(), Some("stwbench_seed_0_0002"));
    check_contents(&first, CatalogCounts { tenants: 2, integrations: 10, policies: 40 }).await;
    let second = prepare(&options).await.unwrap();
    assert!(second.reused);
    assert_eq!(second.manifest, first.manifest);
    check_copy(&second, Some(&url)).await;
    admin_sql(&url, "DROP DATABASE IF EXISTS \"stwbench_seed_0_0002\" WITH (FORCE)").await.unwrap();
    // Its database gone, the directory alone is not reused.
    let third = prepare(&options).await.unwrap();
    assert!(!third.reused);
    admin_sql(&url, "DROP DATABASE IF EXISTS \"stwbench_seed_0_0002\" WITH (FORCE)").await.unwrap();
}

#[test]
fn names_and_counts_follow_the_scale() {
    assert_eq!(scale_key(1.0), "1");
    assert_eq!(scale_key(0.25), "0_25");
    assert_eq!(audit_events_at(1.0), 10_000_000);
    let options = |audit_events| SeedOptions {
        scale: 1.0,
        audit_events,
        root: PathBuf::new(),
        postgres_url: None,
        redis_url: None,
    };
    assert_eq!(seed_key(&options(None)), "1");
    assert_eq!(seed_key(&options(Some(10_000_000))), "1");
    assert_eq!(seed_key(&options(Some(0))), "1_audit0");
    assert_eq!(
        CatalogCounts::at_scale(1.0),
        CatalogCounts { tenants: 10_000, integrations: 50_000, policies: 200_000 }
    );
    assert_eq!(
        replace_database("postgres://postgres@127.0.0.1:5432/x?sslmode=disable", "stwbench_seed_1"),
        "postgres://postgres@127.0.0.1:5432/stwbench_seed_1?sslmode=disable"
    );
    assert_eq!(replace_database("postgres://h", "d"), "postgres://h/d");
}
