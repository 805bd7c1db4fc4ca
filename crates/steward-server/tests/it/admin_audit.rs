//! Audit records of the admin plane over real HTTP: tenant checkpoints (a token scoped to one tenant
//! learns nothing of another tenant's chains from any field, signed payloads included, and can verify
//! its own checkpoint with the published manifest key) and the actor of `admin_action` events (token
//! id and role).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::common;

use common::admin_call as call;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestServer, free_port_env};
use http::Method;
use serde_json::{Value, json};
use steward_store::audit::{ChainHead, Checkpoint};
use steward_types::{CheckpointId, Timestamp};

async fn created(server: &TestServer, path: &str, token: &str, body: Value) -> Value {
    let (status, body) = call(server, Method::POST, path, token, Some(body)).await;
    assert_eq!(status, 201, "{path}: {body}");
    body
}

/// A tenant with two workloads, so its chain has several events.
async fn busy_tenant(server: &TestServer, owner: &str, name: &str) -> String {
    let tenant = created(server, "/v1/tenants", owner, json!({"name": name})).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    for workload in ["agent-1", "agent-2"] {
        created(server, &format!("/v1/tenants/{tenant_id}/workloads"), owner, json!({"name": workload}))
            .await;
    }
    tenant_id
}

/// Every event of `tenant_id`, read with the owner token.
async fn events_of(server: &TestServer, owner: &str, tenant_id: &str) -> Vec<Value> {
    let (status, page) =
        call(server, Method::GET, &format!("/v1/audit/events?tenant_id={tenant_id}&limit=1000"), owner, None)
            .await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().unwrap().clone()
}

/// The decoded JSON payload of a compact JWS (without checking its signature).
fn jws_payload(jws: &str) -> Value {
    let payload = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The raw Ed25519 public key of `kid` from the published keyset.
async fn published_key(server: &TestServer, token: &str, kid: &str) -> Vec<u8> {
    let (status, keyset) = call(server, Method::GET, "/v1/keys/manifest", token, None).await;
    assert_eq!(status, 200, "{keyset}");
    let key = keyset["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("kid is published");
    URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_scoped_token_sees_only_its_own_signed_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let owner = server.owner_token();
    let a = busy_tenant(&server, &owner, "alpha").await;
    let b = busy_tenant(&server, &owner, "bravo").await;
    let auditor = created(
        &server,
        "/v1/admin/tokens",
        &owner,
        json!({"name": "a-auditor", "role": "auditor", "tenant_ids": [a]}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // What B's chain reveals: its events' ids and chain hashes (and the tenant id itself).
    let b_events = events_of(&server, &owner, &b).await;
    assert!(b_events.len() >= 3, "{b_events:?}");
    let mut secrets_of_b: Vec<String> = vec![b.clone()];
    for event in &b_events {
        secrets_of_b.push(event["event_id"].as_str().unwrap().to_owned());
        secrets_of_b.push(event["chain"]["hash"].as_str().unwrap().to_owned());
        secrets_of_b.push(event["chain"]["chain_id"].as_str().unwrap().to_owned());
    }
    let a_events = events_of(&server, &owner, &a).await;
    let a_newest = a_events[0].clone();

    // The final checkpoint is written at shutdown.
    server.stop().await;
    let server = TestServer::start(dir.path(), free_port_env(&[])).await.unwrap();

    // The owner still gets whole checkpoints: every tenant's head, one signature over all of them.
    let (status, all) = call(&server, Method::GET, "/v1/audit/checkpoints", &owner, None).await;
    assert_eq!(status, 200, "{all}");
    let whole = &all["checkpoints"][0];
    assert_eq!(whole["tenant_id"], Value::Null, "{whole}");
    let tenants: Vec<&str> =
        whole["heads"].as_array().unwrap().iter().map(|h| h["tenant_id"].as_str().unwrap()).collect();
    assert!(tenants.contains(&a.as_str()) && tenants.contains(&b.as_str()), "{whole}");
    let key = published_key(&server, &owner, whole["kid"].as_str().unwrap()).await;
    let payload =
        steward_crypto::verify_compact_jws_ed25519(&key, whole["signature"].as_str().unwrap()).unwrap();
    let signed: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(signed["heads"], whole["heads"]);
    assert!(signed.get("tenant_id").is_none(), "{signed}");

    // The auditor of A: nothing in the answer, nor in any signed payload, names B's chain.
    let response = server.admin(Method::GET, "/v1/audit/checkpoints", Some(&auditor), None).await;
    assert_eq!(response.status, 200);
    let scoped = response.json();
    let mut texts = vec![String::from_utf8(response.body.to_vec()).unwrap()];
    for checkpoint in scoped["checkpoints"].as_array().unwrap() {
        let jws = checkpoint["signature"].as_str().unwrap();
        texts.push(jws_payload(jws).to_string());
        for part in jws.split('.').take(2) {
            texts.push(String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(part).unwrap()).into_owned());
        }
    }
    for text in &texts {
        for secret in &secrets_of_b {
            assert!(!text.contains(secret.as_str()), "{secret} of tenant B leaked into {text}");
        }
    }

    // A verifies its own checkpoint with the published key, and it names A's newest event.
    let checkpoints = scoped["checkpoints"].as_array().unwrap();
    assert!(!checkpoints.is_empty(), "{scoped}");
    let mine = &checkpoints[0];
    assert_eq!(mine["tenant_id"], a.as_str(), "{mine}");
    assert_eq!(mine["checkpoint_id"], whole["checkpoint_id"], "the same checkpoint, A's part of it");
    let key = published_key(&server, &auditor, mine["kid"].as_str().unwrap()).await;
    let payload = steward_crypto::verify_compact_jws_ed25519(&key, mine["signature"].as_str().unwrap())
        .expect("A's checkpoint verifies under the published key");
    let heads: Vec<ChainHead> = serde_json::from_value(mine["heads"].clone()).unwrap();
    assert_eq!(
        payload,
        Checkpoint::tenant_payload(
            &CheckpointId::parse(mine["checkpoint_id"].as_str().unwrap()).unwrap(),
            mine["writer_id"].as_str().unwrap(),
            Timestamp::parse_rfc3339(mine["created_at"].as_str().unwrap()).unwrap(),
            &a,
            &heads,
        )
        .unwrap(),
        "the signature covers exactly the fields shown"
    );
    assert_eq!(heads.len(), 1, "{mine}");
    assert_eq!(heads[0].event_id, a_newest["event_id"].as_str().unwrap());
    assert_eq!(heads[0].hash, a_newest["chain"]["hash"].as_str().unwrap());
    assert_eq!(heads[0].seq, a_newest["chain"]["seq"].as_i64().unwrap());

    // The owner filtering on B gets B's tenant checkpoint only; the auditor may not ask for B.
    let (_, filtered) =
        call(&server, Method::GET, &format!("/v1/audit/checkpoints?tenant_id={b}"), &owner, None).await;
    let filtered = filtered["checkpoints"].as_array().unwrap();
    assert!(!filtered.is_empty());
    for checkpoint in filtered {
        assert_eq!(checkpoint["tenant_id"], b.as_str());
        let payload = jws_payload(checkpoint["signature"].as_str().unwrap()).to_string();
        assert!(!payload.contains(a.as_str()), "{payload}");
    }
    let (status, refused) =
        call(&server, Method::GET, &format!("/v1/audit/checkpoints?tenant_id={b}"), &auditor, None).await;
    assert_eq!((status, refused["error"].as_str().unwrap()), (403, "admin_tenant_forbidden"));

    // Verification against the checkpointed heads still passes.
    let (_, report) =
        call(&server, Method::GET, &format!("/v1/audit/verify?tenant_id={a}"), &auditor, None).await;
    assert_eq!(report["ok"], true, "{report}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_action_events_name_the_token_and_its_role() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let owner = server.owner_token();
    let (_, me) = call(&server, Method::GET, "/v1/admin/whoami", &owner, None).await;
    let owner_id = me["token_id"].as_str().unwrap().to_owned();

    let tenant = created(&server, "/v1/tenants", &owner, json!({"name": "acme"})).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let admin = created(
        &server,
        "/v1/admin/tokens",
        &owner,
        json!({"name": "acme admin", "role": "admin", "tenant_ids": [tenant_id]}),
    )
    .await;
    let admin_id = admin["token_id"].as_str().unwrap().to_owned();
    created(
        &server,
        &format!("/v1/tenants/{tenant_id}/workloads"),
        admin["token"].as_str().unwrap(),
        json!({"name": "agent"}),
    )
    .await;

    let (status, page) = call(
        &server,
        Method::GET,
        &format!("/v1/audit/events?tenant_id={tenant_id}&event_type=admin_action"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    let by_action = |action: &str| -> Value {
        events
            .iter()
            .find(|e| e["metadata"]["action"] == action)
            .unwrap_or_else(|| panic!("{action}: {page}"))["actor"]
            .clone()
    };
    assert_eq!(by_action("tenant.create"), json!({"type": "admin", "id": owner_id, "role": "owner"}));
    assert_eq!(by_action("workload.create"), json!({"type": "admin", "id": admin_id, "role": "admin"}));

    // The actor is part of the chained event: verification still passes.
    let (_, report) =
        call(&server, Method::GET, &format!("/v1/audit/verify?tenant_id={tenant_id}"), &owner, None).await;
    assert_eq!(report["ok"], true, "{report}");
    server.stop().await;
}
