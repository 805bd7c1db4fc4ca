use base64::engine::general_purpose::STANDARD as STANDARD_B64;
use serde_json::json;

use super::*;

fn context() -> EnvelopeContext {
    integration_secret("t_1", "i_1", 3)
}

fn integration_secret(tenant_id: &str, integration_id: &str, secret_version: u64) -> EnvelopeContext {
    EnvelopeContext::IntegrationSecret {
        tenant_id: tenant_id.to_owned(),
        integration_id: integration_id.to_owned(),
        secret_version,
    }
}

#[test]
fn round_trip() {
    let ring = Keyring::generate();
    let envelope = seal(&ring, &context(), b"sk-live-123").unwrap();
    assert_eq!(envelope.kek_id(), "k1");
    assert_eq!(&**open(&ring, &context(), &envelope).unwrap(), b"sk-live-123");

    let parsed = Envelope::from_json(&envelope.to_json()).unwrap();
    assert_eq!(parsed, envelope);
    assert_eq!(&**open(&ring, &context(), &parsed).unwrap(), b"sk-live-123");

    let empty = seal(&ring, &context(), b"").unwrap();
    assert!(open(&ring, &context(), &empty).unwrap().is_empty());
}

#[test]
fn serialized_form_is_exact() {
    let ring = Keyring::generate();
    let envelope = seal(&ring, &context(), b"x").unwrap();
    let json = envelope.to_json();
    assert!(json.starts_with(r#"{"v":1,"kek_id":"k1","wrapped_dek":""#), "{json}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let object = value.as_object().unwrap();
    assert_eq!(object.len(), 5);
    for field in ["wrapped_dek", "nonce", "ciphertext"] {
        let text = object[field].as_str().unwrap();
        assert!(!text.contains(['=', '+', '/']), "{field}: {text}");
    }
    assert_eq!(URL_SAFE_NO_PAD.decode(object["nonce"].as_str().unwrap()).unwrap().len(), 12);
}

#[test]
fn from_json_rejects_malformed_envelopes() {
    let ring = Keyring::generate();
    let good: serde_json::Value =
        serde_json::from_str(&seal(&ring, &context(), b"x").unwrap().to_json()).unwrap();
    let variants = [
        ("v", json!(2)),
        ("nonce", json!("AAAA")),
        ("wrapped_dek", json!("AAAA")),
        ("ciphertext", json!("AAAA")),
        ("ciphertext", json!("not base64url!")),
        ("kek_id", json!("")),
        ("extra", json!(1)),
    ];
    for (field, value) in variants {
        let mut bad = good.clone();
        bad[field] = value;
        assert!(matches!(Envelope::from_json(&bad.to_string()), Err(EnvelopeError::Format(_))), "{field}");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("nonce");
    assert!(Envelope::from_json(&missing.to_string()).is_err());
}

#[test]
fn another_context_fails() {
    let ring = Keyring::generate();
    let envelope = seal(&ring, &context(), b"secret").unwrap();
    let other_rows = [
        integration_secret("t_2", "i_1", 3),
        integration_secret("t_1", "i_1", 4),
        EnvelopeContext::IntegrationOAuth2ClientSecret {
            tenant_id: "t_1".into(),
            integration_id: "i_1".into(),
            secret_version: 3,
        },
    ];
    for other in other_rows {
        assert!(matches!(open(&ring, &other, &envelope), Err(EnvelopeError::Decrypt)), "{other:?}");
        assert!(matches!(rewrap(&ring, &other, &envelope), Err(EnvelopeError::Decrypt)), "{other:?}");
    }
    // A recorded context is checked, not trusted: a missing field or another row fails.
    for other in [
        json!({"kind": "integration_secret", "tenant_id": "t_1", "integration_id": "i_1"}),
        json!({"kind": "integration_secret", "tenant_id": "t_1", "integration_id": "i_1", "secret_version": 4}),
    ] {
        assert!(matches!(rewrap_recorded(&ring, &other, &envelope), Err(EnvelopeError::Decrypt)), "{other}");
    }
    // Key order does not matter: the AAD is the canonical (RFC 8785) form.
    let reordered: serde_json::Value = serde_json::from_str(
        r#"{"secret_version":3,"integration_id":"i_1","tenant_id":"t_1","kind":"integration_secret"}"#,
    )
    .unwrap();
    let rewrapped = rewrap_recorded(&ring, &reordered, &envelope).unwrap();
    assert_eq!(&**open(&ring, &context(), &rewrapped).unwrap(), b"secret");
}

/// Every context serializes exactly as the `json!` object the server sealed with before the enum
/// existed, so envelopes already in databases still open.
#[test]
fn each_context_is_byte_identical_to_its_stored_form() {
    let cases = [
        (EnvelopeContext::WorkloadCaKey, json!({"kind": "workload_ca_key"})),
        (EnvelopeContext::AuditKey, json!({"kind": "audit_key"})),
        (
            EnvelopeContext::ManifestSigningKey { kid: "mk_01".into() },
            json!({"kind": "manifest_signing_key", "kid": "mk_01"}),
        ),
        (
            integration_secret("t_1", "i_1", 3),
            json!({"kind": "integration_secret", "tenant_id": "t_1", "integration_id": "i_1", "secret_version": 3}),
        ),
        (
            EnvelopeContext::IntegrationOAuth2ClientSecret {
                tenant_id: "t_1".into(),
                integration_id: "i_1".into(),
                secret_version: 3,
            },
            json!({
                "kind": "integration_oauth2_client_secret",
                "tenant_id": "t_1",
                "integration_id": "i_1",
                "secret_version": 3,
            }),
        ),
        (
            EnvelopeContext::IntegrationOAuth2AccessToken {
                tenant_id: "t_1".into(),
                integration_id: "i_1".into(),
                secret_version: u64::MAX,
            },
            json!({
                "kind": "integration_oauth2_access_token",
                "tenant_id": "t_1",
                "integration_id": "i_1",
                "secret_version": u64::MAX,
            }),
        ),
        (
            EnvelopeContext::ApprovalPreview { tenant_id: "t_1".into(), approval_id: "apr_1".into() },
            json!({"kind": "approval_preview", "tenant_id": "t_1", "approval_id": "apr_1"}),
        ),
        (
            EnvelopeContext::IdempotentResponse {
                tenant_id: "t_1".into(),
                workload_id: "w_1".into(),
                integration_id: "i_1".into(),
                idempotency_key: "k \"quoted\" \u{e9}".into(),
            },
            json!({
                "kind": "idempotent_response",
                "tenant_id": "t_1",
                "workload_id": "w_1",
                "integration_id": "i_1",
                "idempotency_key": "k \"quoted\" \u{e9}",
            }),
        ),
    ];
    for (context, old) in cases {
        assert_eq!(context.aad(), aad_bytes(&old), "{context:?}");
        assert_eq!(context.to_jcs().as_bytes(), aad_bytes(&old), "{context:?}");
    }
    // The literal strings, so a change to the JSON library cannot move both sides at once.
    assert_eq!(EnvelopeContext::WorkloadCaKey.to_jcs(), r#"{"kind":"workload_ca_key"}"#);
    assert_eq!(EnvelopeContext::AuditKey.to_jcs(), r#"{"kind":"audit_key"}"#);
    assert_eq!(
        EnvelopeContext::ManifestSigningKey { kid: "mk_01".into() }.to_jcs(),
        r#"{"kid":"mk_01","kind":"manifest_signing_key"}"#
    );
    assert_eq!(
        integration_secret("t_1", "i_1", 3).to_jcs(),
        r#"{"integration_id":"i_1","kind":"integration_secret","secret_version":3,"tenant_id":"t_1"}"#
    );
    assert_eq!(
        EnvelopeContext::ApprovalPreview { tenant_id: "t_1".into(), approval_id: "apr_1".into() }.to_jcs(),
        r#"{"approval_id":"apr_1","kind":"approval_preview","tenant_id":"t_1"}"#
    );
}

/// An envelope sealed the old way (AAD = JCS of the `json!` context) opens with the typed context.
#[test]
fn envelopes_sealed_with_the_json_context_open_with_the_typed_one() {
    let ring = Keyring::generate();
    let old_context = json!({"kind": "integration_secret", "tenant_id": "t_1", "integration_id": "i_1", "secret_version": 3});
    let aad = aad_bytes(&old_context);
    let dek = Zeroizing::new(random_bytes::<DEK_LEN>());
    let nonce = random_bytes::<NONCE_LEN>();
    let mut ciphertext = b"sk-old".to_vec();
    aes_key(&dek)
        .unwrap()
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad[..]), &mut ciphertext)
        .unwrap();
    let (kek_id, kek) = ring.active_key();
    let old = Envelope {
        kek_id: kek_id.to_owned(),
        wrapped_dek: wrap_dek(kek, &dek, &aad).unwrap(),
        nonce,
        ciphertext,
    };
    assert_eq!(&**open(&ring, &context(), &old).unwrap(), b"sk-old");
}

#[test]
fn aad_is_rfc8785() {
    assert_eq!(
        aad_bytes(&json!({"b": 1, "a": "x", "c": [true, null]})),
        br#"{"a":"x","b":1,"c":[true,null]}"#
    );
}

#[test]
fn a_flipped_bit_anywhere_fails() {
    let ring = Keyring::generate();
    let envelope = seal(&ring, &context(), b"secret value").unwrap();
    for i in 0..envelope.wrapped_dek.len() {
        let mut bad = envelope.clone();
        bad.wrapped_dek[i] ^= 0x01;
        assert!(matches!(open(&ring, &context(), &bad), Err(EnvelopeError::Decrypt)), "wrapped_dek[{i}]");
    }
    for i in 0..envelope.nonce.len() {
        let mut bad = envelope.clone();
        bad.nonce[i] ^= 0x80;
        assert!(matches!(open(&ring, &context(), &bad), Err(EnvelopeError::Decrypt)), "nonce[{i}]");
    }
    for i in 0..envelope.ciphertext.len() {
        let mut bad = envelope.clone();
        bad.ciphertext[i] ^= 0x10;
        assert!(matches!(open(&ring, &context(), &bad), Err(EnvelopeError::Decrypt)), "ciphertext[{i}]");
        assert!(matches!(rewrap(&ring, &context(), &bad), Err(EnvelopeError::Decrypt)), "ciphertext[{i}]");
    }
}

#[test]
fn unknown_kek() {
    let ring = Keyring::generate();
    let mut envelope = seal(&ring, &context(), b"secret").unwrap();
    envelope.kek_id = "k7".to_owned();
    assert!(matches!(open(&ring, &context(), &envelope), Err(EnvelopeError::UnknownKek(id)) if id == "k7"));
    // A keyring that merely reuses the id with different key material fails to decrypt.
    let other = Keyring::generate();
    let envelope = seal(&ring, &context(), b"secret").unwrap();
    assert!(matches!(open(&other, &context(), &envelope), Err(EnvelopeError::Decrypt)));
}

#[test]
fn rewrap_moves_to_the_active_kek_and_keeps_the_ciphertext() {
    let mut ring = Keyring::generate();
    let envelope = seal(&ring, &context(), b"secret").unwrap();
    let new_id = ring.add_generated_key();
    ring.set_active(&new_id).unwrap();

    let rewrapped = rewrap(&ring, &context(), &envelope).unwrap();
    assert_eq!(rewrapped.kek_id(), "k2");
    assert_eq!(rewrapped.nonce, envelope.nonce);
    assert_eq!(rewrapped.ciphertext, envelope.ciphertext);
    assert_ne!(rewrapped.wrapped_dek, envelope.wrapped_dek);
    assert_eq!(&**open(&ring, &context(), &rewrapped).unwrap(), b"secret");

    // Once k1 is gone, only the rewrapped envelope opens.
    let json =
        format!(r#"{{"active":"k2","keys":{{"k2":"{}"}}}}"#, STANDARD_B64.encode(ring.key("k2").unwrap()));
    let without_k1 = Keyring::parse_json(&json).unwrap();
    assert!(matches!(open(&without_k1, &context(), &envelope), Err(EnvelopeError::UnknownKek(_))));
    assert_eq!(&**open(&without_k1, &context(), &rewrapped).unwrap(), b"secret");
}

#[test]
fn each_seal_uses_fresh_keys_and_nonces() {
    let ring = Keyring::generate();
    let a = seal(&ring, &context(), b"same").unwrap();
    let b = seal(&ring, &context(), b"same").unwrap();
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.wrapped_dek, b.wrapped_dek);
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn debug_hides_content() {
    let ring = Keyring::generate();
    let envelope = seal(&ring, &context(), b"x").unwrap();
    let debug = format!("{envelope:?}");
    assert!(debug.contains("k1") && !debug.contains("wrapped_dek"), "{debug}");
}
