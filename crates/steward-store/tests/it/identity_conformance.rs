//! The identity part of the storage conformance suite (admin tokens, tenants, workloads, enrollment
//! tokens, certificates, sessions): every test runs against SQLite and PostgreSQL.

use crate::harness;

use std::sync::Arc;

use harness::{Harness, admin_token, envelope, new_deployment, t0};
use steward_store::{
    AdminRole, AdminTokenRecord, CertificateRecord, EnrollmentTokenRecord, KeyRotationOutcome,
    RecentSessions, RecordCertificateOutcome, RevokeAdminTokenOutcome, SessionInsertOutcome, SessionRecord,
    SigningKeyRecord, Store, StoreError, TenantRecord, WorkloadRecord,
};
use steward_types::{EnrollmentTokenId, SessionId, SigningKeyId, TenantId, Timestamp, TokenId, WorkloadId};

backend_suite!(
    admin_tokens_list_and_revoke,
    last_owner_token_is_protected,
    concurrent_owner_revocations_keep_one,
    tenants_insert_get_list_update,
    workloads_insert_get_list_update,
    enrollment_tokens_supersede_and_consume,
    concurrent_consumption_records_one_certificate,
    certificates_list_lookup_and_revoke,
    delete_workload_revokes_everything_and_keeps_rows,
    sessions_insert_and_revoke,
    session_rate_limit_counts_a_window,
    concurrent_limited_session_inserts_never_exceed_the_limit,
    automatic_key_rotation_checks_age_under_the_lock,
    change_counter_moves_with_identity_changes_only,
    malformed_stored_ids_are_decode_errors,
);

fn tenant(name: &str) -> TenantRecord {
    TenantRecord {
        tenant_id: TenantId::generate(),
        name: name.to_owned(),
        dpop_required: false,
        approval_webhook_url: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn workload(tenant: &TenantRecord, name: &str) -> WorkloadRecord {
    let workload_id = WorkloadId::generate();
    WorkloadRecord {
        san_uri: format!("spiffe://steward/tenants/{}/workloads/{}", tenant.tenant_id, workload_id),
        workload_id,
        tenant_id: tenant.tenant_id.clone(),
        name: name.to_owned(),
        enabled: true,
        ip_allowlist: vec!["10.0.0.0/8".to_owned(), "::1".to_owned()],
        dpop_required: false,
        created_at: t0(),
        updated_at: t0(),
        deleted_at: None,
    }
}

fn enrollment_token(workload: &WorkloadRecord, hash_byte: u8, at: Timestamp) -> EnrollmentTokenRecord {
    EnrollmentTokenRecord {
        token_id: EnrollmentTokenId::generate(),
        workload_id: workload.workload_id.clone(),
        token_hash: [hash_byte; 32],
        created_at: at,
        expires_at: at.plus_seconds(3600),
        used_at: None,
        superseded_at: None,
    }
}

fn certificate(workload: &WorkloadRecord, serial: &str) -> CertificateRecord {
    CertificateRecord {
        serial: serial.to_owned(),
        workload_id: workload.workload_id.clone(),
        not_before: t0().plus_seconds(-300),
        not_after: t0().plus_seconds(86_400),
        thumbprint: format!("thumb-{serial}"),
        identity_started_at: t0(),
        issued_at: t0(),
        revoked_at: None,
    }
}

fn session(workload: &WorkloadRecord, hash_byte: u8) -> SessionRecord {
    SessionRecord {
        session_id: SessionId::generate(),
        workload_id: workload.workload_id.clone(),
        token_hash: [hash_byte; 32],
        scopes: vec!["execute".to_owned()],
        cert_thumbprint: "thumb".to_owned(),
        dpop_jkt: Some("jkt".to_owned()),
        created_at: t0(),
        expires_at: t0().plus_seconds(900),
        revoked_at: None,
    }
}

/// A store with a deployment (whose owner token is the first token) and one tenant + workload.
async fn with_workload(store: &Arc<dyn Store>) -> anyhow::Result<(TenantRecord, WorkloadRecord)> {
    store.initialize_deployment(new_deployment("ident")).await?;
    let tenant = tenant("acme");
    store.insert_tenant(&tenant).await?;
    let workload = workload(&tenant, "agent-1");
    store.insert_workload(&workload, &enrollment_token(&workload, 1, t0())).await?;
    Ok((tenant, workload))
}

async fn admin_tokens_list_and_revoke(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let init = new_deployment("tokens");
    store.initialize_deployment(init.clone()).await?;
    let admin = AdminTokenRecord { created_at: t0().plus_seconds(1), ..admin_token(9, AdminRole::Admin) };
    store.insert_admin_token(&admin).await?;
    let listed = store.list_admin_tokens().await?;
    assert_eq!(listed, vec![init.owner_token.clone(), admin.clone()]);

    let now = t0().plus_seconds(10);
    assert_eq!(store.revoke_admin_token(&admin.token_id, now).await?, RevokeAdminTokenOutcome::Revoked);
    // Revoking again changes nothing (the first revocation time stays).
    assert_eq!(
        store.revoke_admin_token(&admin.token_id, now.plus_seconds(5)).await?,
        RevokeAdminTokenOutcome::Revoked
    );
    let got = store.admin_token_by_hash(&admin.token_hash).await?.expect("token");
    assert_eq!(got.revoked_at, Some(now));
    assert_eq!(
        store.revoke_admin_token(&TokenId::parse("tok_missing").expect("a valid id"), now).await?,
        RevokeAdminTokenOutcome::NotFound
    );
    Ok(())
}

async fn last_owner_token_is_protected(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let init = new_deployment("owners");
    store.initialize_deployment(init.clone()).await?;
    let first = init.owner_token.clone();
    let now = t0().plus_seconds(10);
    assert_eq!(store.revoke_admin_token(&first.token_id, now).await?, RevokeAdminTokenOutcome::LastOwner);

    // An expired second owner does not count as active.
    let expired =
        AdminTokenRecord { expires_at: Some(t0().plus_seconds(5)), ..admin_token(2, AdminRole::Owner) };
    store.insert_admin_token(&expired).await?;
    assert_eq!(store.revoke_admin_token(&first.token_id, now).await?, RevokeAdminTokenOutcome::LastOwner);
    // Revoking the expired one is fine: it is not active.
    assert_eq!(store.revoke_admin_token(&expired.token_id, now).await?, RevokeAdminTokenOutcome::Revoked);

    let second = AdminTokenRecord { expires_at: None, ..admin_token(3, AdminRole::Owner) };
    store.insert_admin_token(&second).await?;
    assert_eq!(store.revoke_admin_token(&first.token_id, now).await?, RevokeAdminTokenOutcome::Revoked);
    assert_eq!(store.revoke_admin_token(&second.token_id, now).await?, RevokeAdminTokenOutcome::LastOwner);
    assert!(store.admin_token_by_hash(&second.token_hash).await?.expect("second").revoked_at.is_none());
    Ok(())
}

async fn concurrent_owner_revocations_keep_one(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let init = new_deployment("race");
    store.initialize_deployment(init.clone()).await?;
    let mut ids = vec![init.owner_token.token_id.clone()];
    for i in 1..6u8 {
        let owner = AdminTokenRecord { expires_at: None, ..admin_token(i, AdminRole::Owner) };
        store.insert_admin_token(&owner).await?;
        ids.push(owner.token_id);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.revoke_admin_token(&id, t0().plus_seconds(60)).await });
    }
    let mut refused = 0;
    while let Some(joined) = tasks.join_next().await {
        if joined?? == RevokeAdminTokenOutcome::LastOwner {
            refused += 1;
        }
    }
    assert_eq!(refused, 1, "exactly one revocation is refused");
    let active = store.list_admin_tokens().await?.into_iter().filter(|t| t.revoked_at.is_none()).count();
    assert_eq!(active, 1);
    Ok(())
}

async fn tenants_insert_get_list_update(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let acme = TenantRecord {
        approval_webhook_url: Some("https://hooks.example/approve".to_owned()),
        dpop_required: true,
        ..tenant("acme")
    };
    store.insert_tenant(&acme).await?;
    let other = TenantRecord { created_at: t0().plus_seconds(1), ..tenant("other") };
    store.insert_tenant(&other).await?;
    assert_eq!(store.tenant(&acme.tenant_id).await?, Some(acme.clone()));
    assert_eq!(store.tenant(&TenantId::parse("t_missing").expect("a valid id")).await?, None);
    assert_eq!(store.list_tenants().await?, vec![acme.clone(), other.clone()]);

    let duplicate = tenant("acme");
    assert!(matches!(store.insert_tenant(&duplicate).await, Err(StoreError::Conflict(_))));

    let renamed = TenantRecord {
        name: "acme-2".to_owned(),
        dpop_required: false,
        approval_webhook_url: None,
        updated_at: t0().plus_seconds(5),
        ..acme.clone()
    };
    assert!(store.update_tenant(&renamed).await?);
    assert_eq!(store.tenant(&acme.tenant_id).await?, Some(renamed));
    let clash = TenantRecord { name: "acme-2".to_owned(), ..other.clone() };
    assert!(matches!(store.update_tenant(&clash).await, Err(StoreError::Conflict(_))));
    assert!(!store.update_tenant(&tenant("ghost")).await?);
    Ok(())
}

async fn workloads_insert_get_list_update(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let (acme, first) = with_workload(&store).await?;
    assert_eq!(store.workload(&first.workload_id).await?, Some(first.clone()));
    assert_eq!(store.workload(&WorkloadId::parse("w_missing").expect("a valid id")).await?, None);

    let duplicate = workload(&acme, "agent-1");
    let result = store.insert_workload(&duplicate, &enrollment_token(&duplicate, 2, t0())).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    // Nothing of the failed insert is left (its token included).
    assert_eq!(store.enrollment_token_by_hash(&[2; 32]).await?, None);

    // The same name in another tenant is fine.
    let other = tenant("other");
    store.insert_tenant(&other).await?;
    let elsewhere = workload(&other, "agent-1");
    store.insert_workload(&elsewhere, &enrollment_token(&elsewhere, 3, t0())).await?;
    let second = WorkloadRecord { created_at: t0().plus_seconds(1), ..workload(&acme, "agent-2") };
    store.insert_workload(&second, &enrollment_token(&second, 4, t0())).await?;
    assert_eq!(store.list_workloads(&acme.tenant_id).await?, vec![first.clone(), second]);

    let patched = WorkloadRecord {
        enabled: false,
        ip_allowlist: vec![],
        dpop_required: true,
        updated_at: t0().plus_seconds(9),
        ..first.clone()
    };
    assert!(store.update_workload(&patched).await?);
    let got = store.workload(&first.workload_id).await?.expect("workload");
    assert_eq!(got, patched);
    assert!(!got.is_active());
    Ok(())
}

async fn enrollment_tokens_supersede_and_consume(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let (_, workload) = with_workload(&store).await?;
    let first = store.enrollment_token_by_hash(&[1; 32]).await?.expect("first token");
    assert_eq!(first.used_at, None);

    let later = t0().plus_seconds(10);
    let second = enrollment_token(&workload, 5, later);
    assert!(store.issue_enrollment_token(&second).await?);
    let first = store.enrollment_token_by_hash(&[1; 32]).await?.expect("first token");
    assert_eq!(first.superseded_at, Some(later), "reissuing supersedes the earlier unused token");

    // The superseded token cannot be consumed; the new one can, once.
    let now = later.plus_seconds(1);
    let outcome = store.record_certificate(Some(&first.token_id), &certificate(&workload, "01"), now).await?;
    assert_eq!(outcome, RecordCertificateOutcome::TokenUnusable);
    assert_eq!(store.certificate("01").await?, None, "nothing written");
    let outcome =
        store.record_certificate(Some(&second.token_id), &certificate(&workload, "02"), now).await?;
    assert_eq!(outcome, RecordCertificateOutcome::Recorded);
    assert_eq!(store.enrollment_token_by_hash(&[5; 32]).await?.expect("second").used_at, Some(now));
    let outcome =
        store.record_certificate(Some(&second.token_id), &certificate(&workload, "03"), now).await?;
    assert_eq!(outcome, RecordCertificateOutcome::TokenUnusable);

    // An expired token cannot be consumed.
    let third = enrollment_token(&workload, 6, later);
    store.issue_enrollment_token(&third).await?;
    let outcome = store
        .record_certificate(Some(&third.token_id), &certificate(&workload, "04"), third.expires_at)
        .await?;
    assert_eq!(outcome, RecordCertificateOutcome::TokenUnusable);

    // A disabled workload gets nothing, and its token stays usable.
    store.update_workload(&WorkloadRecord { enabled: false, ..workload.clone() }).await?;
    let outcome = store.record_certificate(Some(&third.token_id), &certificate(&workload, "05"), now).await?;
    assert_eq!(outcome, RecordCertificateOutcome::WorkloadInactive);
    assert_eq!(store.enrollment_token_by_hash(&[6; 32]).await?.expect("third").used_at, None);
    // No token at all (a renewal) still needs an active workload.
    let outcome = store.record_certificate(None, &certificate(&workload, "06"), now).await?;
    assert_eq!(outcome, RecordCertificateOutcome::WorkloadInactive);
    store.update_workload(&WorkloadRecord { enabled: true, ..workload.clone() }).await?;
    assert_eq!(
        store.record_certificate(None, &certificate(&workload, "06"), now).await?,
        RecordCertificateOutcome::Recorded
    );

    // Unknown or deleted workloads get no new token.
    let ghost = WorkloadRecord { workload_id: WorkloadId::generate(), ..workload.clone() };
    assert!(!store.issue_enrollment_token(&enrollment_token(&ghost, 7, later)).await?);
    Ok(())
}

async fn concurrent_consumption_records_one_certificate(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let (_, workload) = with_workload(&store).await?;
    let token = store.enrollment_token_by_hash(&[1; 32]).await?.expect("token");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        let token_id = token.token_id.clone();
        let certificate = certificate(&workload, &format!("aa{i:02}"));
        tasks.spawn(async move {
            store.record_certificate(Some(&token_id), &certificate, t0().plus_seconds(1)).await
        });
    }
    let mut recorded = 0;
    while let Some(joined) = tasks.join_next().await {
        if joined?? == RecordCertificateOutcome::Recorded {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1);
    assert_eq!(store.list_certificates(&workload.workload_id).await?.len(), 1);
    Ok(())
}

async fn certificates_list_lookup_and_revoke(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let (acme, workload) = with_workload(&store).await?;
    let first = certificate(&workload, "0a");
    let second = CertificateRecord { issued_at: t0().plus_seconds(1), ..certificate(&workload, "0b") };
    store.record_certificate(None, &first, t0()).await?;
    store.record_certificate(None, &second, t0()).await?;
    assert_eq!(store.list_certificates(&workload.workload_id).await?, vec![first.clone(), second.clone()]);
    assert_eq!(store.certificate("0a").await?, Some(first.clone()));
    assert_eq!(store.certificate_by_thumbprint("thumb-0b").await?, Some(second.clone()));
    assert_eq!(store.certificate_by_thumbprint("nope").await?, None);

    let now = t0().plus_seconds(30);
    let revoked = store.revoke_certificate(&workload.workload_id, "0a", now).await?.expect("revoked");
    assert_eq!(revoked.revoked_at, Some(now));
    // Revoking again keeps the first time.
    let again = store.revoke_certificate(&workload.workload_id, "0a", now.plus_seconds(1)).await?;
    assert_eq!(again.expect("still there").revoked_at, Some(now));
    // Another workload's serial is not found through this one.
    let other = workload_in(&store, &acme, "agent-9").await?;
    assert_eq!(store.revoke_certificate(&other.workload_id, "0b", now).await?, None);
    assert_eq!(store.certificate("0b").await?.expect("0b").revoked_at, None);
    Ok(())
}

async fn workload_in(
    store: &Arc<dyn Store>,
    tenant: &TenantRecord,
    name: &str,
) -> anyhow::Result<WorkloadRecord> {
    let record = workload(tenant, name);
    store.insert_workload(&record, &enrollment_token(&record, 200, t0())).await?;
    Ok(record)
}

async fn delete_workload_revokes_everything_and_keeps_rows(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let (acme, workload) = with_workload(&store).await?;
    let bystander = workload_in(&store, &acme, "bystander").await?;
    store.record_certificate(None, &certificate(&workload, "c1"), t0()).await?;
    store.record_certificate(None, &certificate(&bystander, "c2"), t0()).await?;
    store.insert_session(&session(&workload, 11)).await?;
    store.insert_session(&session(&bystander, 12)).await?;

    let now = t0().plus_seconds(100);
    assert!(store.delete_workload(&workload.workload_id, now).await?);
    let deleted = store.workload(&workload.workload_id).await?.expect("row kept");
    assert_eq!(deleted.deleted_at, Some(now));
    assert!(!deleted.enabled);
    assert_eq!(store.certificate("c1").await?.expect("c1").revoked_at, Some(now));
    assert_eq!(store.session_by_hash(&[11; 32]).await?.expect("s1").revoked_at, Some(now));
    assert_eq!(store.enrollment_token_by_hash(&[1; 32]).await?.expect("token").superseded_at, Some(now));
    // Nothing of the other workload changed.
    assert_eq!(store.certificate("c2").await?.expect("c2").revoked_at, None);
    assert_eq!(store.session_by_hash(&[12; 32]).await?.expect("s2").revoked_at, None);

    // A deleted workload stays deleted: no update, no new token, deleting again changes nothing.
    assert!(!store.update_workload(&WorkloadRecord { enabled: true, ..deleted.clone() }).await?);
    assert!(!store.issue_enrollment_token(&enrollment_token(&workload, 13, now)).await?);
    assert!(store.delete_workload(&workload.workload_id, now.plus_seconds(5)).await?);
    assert_eq!(store.workload(&workload.workload_id).await?, Some(deleted));
    assert!(!store.delete_workload(&WorkloadId::parse("w_missing").expect("a valid id"), now).await?);
    Ok(())
}

async fn sessions_insert_and_revoke(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let (_, workload) = with_workload(&store).await?;
    let first = session(&workload, 21);
    store.insert_session(&first).await?;
    store.insert_session(&session(&workload, 22)).await?;
    assert_eq!(store.session_by_hash(&[21; 32]).await?, Some(first));
    assert_eq!(store.session_by_hash(&[99; 32]).await?, None);
    let now = t0().plus_seconds(3);
    assert_eq!(store.revoke_workload_sessions(&workload.workload_id, now).await?, 2);
    assert_eq!(store.revoke_workload_sessions(&workload.workload_id, now).await?, 0);
    assert_eq!(store.session_by_hash(&[22; 32]).await?.expect("s").revoked_at, Some(now));
    Ok(())
}

fn session_at(workload: &WorkloadRecord, hash_byte: u8, created_at: Timestamp) -> SessionRecord {
    SessionRecord { created_at, expires_at: created_at.plus_seconds(900), ..session(workload, hash_byte) }
}

async fn session_rate_limit_counts_a_window(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let (tenant, workload) = with_workload(&store).await?;
    let id = &workload.workload_id;
    assert_eq!(store.recent_sessions(id, t0()).await?, RecentSessions { count: 0, oldest: None });
    store.insert_session(&session_at(&workload, 1, t0())).await?;
    store.insert_session(&session_at(&workload, 2, t0().plus_seconds(10))).await?;
    store.insert_session(&session_at(&workload, 3, t0().plus_seconds(20))).await?;
    // Another workload's sessions never count.
    let other = workload_in(&store, &tenant, "agent-2").await?;
    store.insert_session(&session_at(&other, 4, t0().plus_seconds(15))).await?;

    // The window start is exclusive.
    let recent = store.recent_sessions(id, t0()).await?;
    assert_eq!(recent, RecentSessions { count: 2, oldest: Some(t0().plus_seconds(10)) });
    assert_eq!(store.recent_sessions(id, t0().plus_seconds(-1)).await?.count, 3);

    // Under the limit: inserted; at it: refused with what the window holds.
    let since = t0().plus_seconds(-1);
    let fourth = session_at(&workload, 5, t0().plus_seconds(30));
    assert_eq!(store.insert_session_limited(&fourth, since, 4).await?, SessionInsertOutcome::Inserted);
    assert_eq!(store.session_by_hash(&[5; 32]).await?, Some(fourth));
    let fifth = session_at(&workload, 6, t0().plus_seconds(31));
    assert_eq!(
        store.insert_session_limited(&fifth, since, 4).await?,
        SessionInsertOutcome::LimitReached(RecentSessions { count: 4, oldest: Some(t0()) })
    );
    assert_eq!(store.session_by_hash(&[6; 32]).await?, None);
    // Later, the oldest left the window.
    assert_eq!(
        store.insert_session_limited(&fifth, t0().plus_seconds(5), 4).await?,
        SessionInsertOutcome::Inserted
    );

    // A disabled or deleted workload gets nothing.
    let mut disabled = other.clone();
    disabled.enabled = false;
    assert!(store.update_workload(&disabled).await?);
    let refused = session_at(&other, 7, t0().plus_seconds(40));
    assert_eq!(
        store.insert_session_limited(&refused, since, 100).await?,
        SessionInsertOutcome::WorkloadInactive
    );
    assert_eq!(store.session_by_hash(&[7; 32]).await?, None);
    let missing = SessionRecord { workload_id: WorkloadId::generate(), ..refused };
    assert_eq!(
        store.insert_session_limited(&missing, since, 100).await?,
        SessionInsertOutcome::WorkloadInactive
    );
    Ok(())
}

async fn concurrent_limited_session_inserts_never_exceed_the_limit(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let (_, workload) = with_workload(&store).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12_u8 {
        let store = Arc::clone(&store);
        let record = session_at(&workload, 100 + i, t0().plus_seconds(1));
        tasks.spawn(async move { store.insert_session_limited(&record, t0(), 5).await });
    }
    let mut inserted = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined?? {
            SessionInsertOutcome::Inserted => inserted += 1,
            SessionInsertOutcome::LimitReached(recent) => assert_eq!(recent.count, 5),
            SessionInsertOutcome::WorkloadInactive => anyhow::bail!("the workload is active"),
        }
    }
    assert_eq!(inserted, 5);
    assert_eq!(store.recent_sessions(&workload.workload_id, t0()).await?.count, 5);
    Ok(())
}

fn signing_key(tag: &str, created_at: Timestamp) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: SigningKeyId::generate(),
        public_key: vec![7; 32],
        private_key: envelope(&format!("env_auto_{tag}"), "k1"),
        created_at,
        retired_at: None,
    }
}

async fn automatic_key_rotation_checks_age_under_the_lock(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    store.initialize_deployment(new_deployment("rot")).await?;
    let first = store.deployment().await?.expect("deployment").active_signing_key;
    assert_eq!(first.created_at, t0());

    // Younger than the threshold: nothing is written.
    let early = signing_key("early", t0().plus_seconds(5));
    let outcome =
        store.rotate_signing_key_if_older_than(&early, t0().plus_seconds(-1), t0().plus_seconds(5)).await?;
    assert_eq!(outcome, KeyRotationOutcome::NotDue);
    assert_eq!(store.deployment().await?.expect("deployment").active_signing_key.kid, first.kid);
    assert_eq!(store.published_signing_keys(t0()).await?.len(), 1);

    // Old enough (the threshold is inclusive): rotated, the old key retired at `now`.
    let now = t0().plus_seconds(100);
    let due = signing_key("due", now);
    let outcome = store.rotate_signing_key_if_older_than(&due, t0(), now).await?;
    assert_eq!(outcome, KeyRotationOutcome::Rotated { retired: Some(first.kid.clone()) });
    let active = store.deployment().await?.expect("deployment").active_signing_key;
    assert_eq!((active.kid.clone(), active.private_key.clone()), (due.kid.clone(), due.private_key.clone()));
    let published = store.published_signing_keys(t0()).await?;
    assert_eq!(published.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(), vec![due.kid.clone(), first.kid]);
    assert_eq!(published[1].retired_at, Some(now));

    // Several instances checking at once with the same threshold: exactly one rotates.
    let later = t0().plus_seconds(200);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let store = Arc::clone(&store);
        let next = signing_key(&format!("race{i}"), later);
        tasks.spawn(async move { store.rotate_signing_key_if_older_than(&next, now, later).await });
    }
    let mut rotated = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined?? {
            KeyRotationOutcome::Rotated { retired } => {
                assert_eq!(retired, Some(due.kid.clone()));
                rotated += 1;
            }
            KeyRotationOutcome::NotDue => {}
        }
    }
    assert_eq!(rotated, 1);
    let keys = store.published_signing_keys(t0()).await?;
    assert_eq!(keys.len(), 3);
    assert_eq!(keys.iter().filter(|k| k.retired_at.is_none()).count(), 1);
    Ok(())
}

/// The read cache's change counter (`Store::change_counter`): revocations and updates move it, in
/// the same transaction; new sessions, certificates and the session-limit row lock do not.
async fn change_counter_moves_with_identity_changes_only(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let (tenant, workload) = with_workload(&store).await?;
    let id = &workload.workload_id;
    let start = store.change_counter().await?;
    // New rows are not changes a cache could hold stale (it only keeps records it found).
    store.insert_session(&session(&workload, 1)).await?;
    store.insert_session_limited(&session_at(&workload, 2, t0()), t0().plus_seconds(-60), 10).await?;
    store.record_certificate(None, &certificate(&workload, "0a"), t0()).await?;
    assert_eq!(
        store.change_counter().await?,
        start,
        "inserts and the session-limit row lock must not move it"
    );

    let mut last = start;
    let mut check = async |what: &str| -> anyhow::Result<()> {
        let now = store.change_counter().await?;
        assert!(now > last, "{what} must move the change counter ({last} → {now})");
        last = now;
        Ok(())
    };
    store.revoke_certificate(id, "0a", t0()).await?;
    check("a certificate revocation").await?;
    store.revoke_workload_sessions(id, t0()).await?;
    check("a session revocation").await?;
    assert!(store.update_workload(&WorkloadRecord { enabled: false, ..workload.clone() }).await?);
    check("disabling a workload").await?;
    assert!(store.update_tenant(&TenantRecord { dpop_required: true, ..tenant.clone() }).await?);
    check("a tenant update").await?;
    Ok(())
}

/// Ids decode through their sqlx `Decode`: a stored id that does not parse as its kind (written by
/// hand, or by a tampered database) makes the read fail with `StoreError::Corrupt`, never a panic
/// and never a record carrying an unchecked id.
async fn malformed_stored_ids_are_decode_errors(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let good = tenant("well-formed");
    store.insert_tenant(&good).await?;
    assert_eq!(store.tenant(&good.tenant_id).await?, Some(good.clone()));

    // A tenant id with the wrong prefix, then a workload whose own id is fine but whose tenant id
    // has characters no id may contain.
    h.raw(
        "INSERT INTO tenants (tenant_id, name, dpop_required, approval_webhook_url, created_at, updated_at) \
         VALUES ('w_not_a_tenant', 'bad-prefix', FALSE, NULL, 2, 2)",
    )
    .await?;
    match store.list_tenants().await {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("tenant id") && message.contains("w_not_a_tenant"), "{message}")
        }
        other => panic!("a malformed tenant id must be a decode error, got {other:?}"),
    }

    // A workload whose own id is fine but whose tenant is that malformed tenant, and one of the
    // good tenant whose own id has characters no id may contain.
    h.raw(&format!(
        "INSERT INTO workloads (workload_id, tenant_id, name, san_uri, enabled, ip_allowlist, dpop_required, \
         created_at, updated_at, deleted_at) VALUES \
         ('w_fine', 'w_not_a_tenant', 'a', 'spiffe://x/a', TRUE, '[]', FALSE, 1, 1, NULL), \
         ('w_UPPER', '{}', 'b', 'spiffe://x/b', TRUE, '[]', FALSE, 1, 1, NULL)",
        good.tenant_id
    ))
    .await?;
    match store.workload(&WorkloadId::parse("w_fine")?).await {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("w_not_a_tenant"), "{message}"),
        other => panic!("a malformed tenant id must be a decode error, got {other:?}"),
    }
    match store.list_workloads(&good.tenant_id).await {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("workload id") && message.contains("w_UPPER"), "{message}")
        }
        other => panic!("a malformed workload id must be a decode error, got {other:?}"),
    }
    Ok(())
}
