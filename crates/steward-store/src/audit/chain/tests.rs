use steward_types::Timestamp;

use super::*;
use crate::audit::{Actor, EventType};

fn chained(seq: i64) -> AuditEvent {
    let at = Timestamp::from_unix_micros(1_795_000_000_000_001).unwrap();
    let mut event =
        AuditEvent::new(EventType::AdminAction, Actor::admin("tok_x", "owner"), at).with_tenant("t_1");
    event.chain = Some(ChainLink {
        chain_id: chain_id_for("t_1", "wr_1"),
        seq,
        prev_hash: GENESIS_HASH.into(),
        hash: String::new(),
    });
    event
}

#[test]
fn hash_is_lowercase_hex_and_ignores_the_stored_hash() {
    let event = chained(1);
    let hash = compute_hash(&[1; 32], &event).unwrap();
    assert_eq!(hash.len(), 64);
    assert!(hash.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    let mut with_hash = event.clone();
    with_hash.chain.as_mut().unwrap().hash = hash.clone();
    assert_eq!(compute_hash(&[1; 32], &with_hash).unwrap(), hash);
}

#[test]
fn hash_depends_on_key_fields_and_link() {
    let event = chained(1);
    let base = compute_hash(&[1; 32], &event).unwrap();
    assert_ne!(compute_hash(&[2; 32], &event).unwrap(), base);
    assert_ne!(compute_hash(&[1; 32], &chained(2)).unwrap(), base);
    let edited = event.clone().with_metadata("k", serde_json::json!(1));
    assert_ne!(compute_hash(&[1; 32], &edited).unwrap(), base);
    let mut relinked = event;
    relinked.chain.as_mut().unwrap().prev_hash = "1".repeat(64);
    assert_ne!(compute_hash(&[1; 32], &relinked).unwrap(), base);
}

#[test]
fn hash_matches_the_spec_formula() {
    let event = chained(1);
    let mut value = serde_json::to_value(&event).unwrap();
    value["chain"] = serde_json::json!({"chain_id": "t_1/wr_1", "seq": 1, "prev_hash": GENESIS_HASH});
    let mut message = format!("{GENESIS_HASH}\n").into_bytes();
    message.extend(serde_jcs::to_vec(&value).unwrap());
    assert_eq!(
        compute_hash(&[1; 32], &event).unwrap(),
        hex::encode(steward_crypto::hmac_sha256(&[1; 32], &message))
    );
}

#[test]
fn stored_events_need_a_chain_and_round_trip_through_their_body() {
    let mut unchained = chained(1);
    unchained.chain = None;
    assert!(StoredEvent::new(unchained, "wr_1".into()).is_err());
    let stored = StoredEvent::new(chained(1), "wr_1".into()).unwrap();
    let body = stored.body_json().unwrap();
    assert_eq!(StoredEvent::from_body(&body, "wr_1".into()).unwrap(), stored);
    assert!(StoredEvent::from_body("{}", "wr_1".into()).is_err());
}

/// Events that stress the serialization: every field set, unusual strings and numbers, keys whose
/// UTF-8 and UTF-16 orders differ, nested `chain` keys.
fn varied_events() -> Vec<AuditEvent> {
    use serde_json::json;

    use crate::audit::{Decision, Destination, PolicyRef};
    let at = Timestamp::from_unix_micros(1_795_000_000_123_457).unwrap();
    let full = AuditEvent::new(EventType::Execute, Actor::workload("w_1"), at)
        .with_tenant("t_1")
        .with_request_id("req-1")
        .with_correlation_id("corr-1")
        .with_workload("w_1")
        .with_integration("i_1")
        .with_decision(Decision::Allowed)
        .with_reason_code("policy_allow")
        .with_action_group("openai_responses")
        .with_risk_tier("low")
        .with_destination(Destination {
            scheme: "https".into(),
            host: "api.openai.com".into(),
            port: 443,
            path_group: Some("openai_responses".into()),
        })
        .with_latency_ms(u64::MAX)
        .with_upstream_status_code(200)
        .with_canonical_descriptor(json!({"method": "POST", "query": {"b": "hmac:01", "a": "hmac:00"}}))
        .with_policy(PolicyRef { rule_id: Some("pol_1".into()), rule_type: None, approval_id: None });
    let odd = AuditEvent::new(EventType::Violation, Actor::system("sweeper"), at)
        .with_tenant("t_\"quoted\"\\\n\u{1}é😀")
        .with_reason_code("line\nbreak\t\u{7f}\u{2028}</script>")
        .with_canonical_descriptor(json!([
            1.0,
            0.1,
            -0.0,
            1e21,
            1e-7,
            5e-324,
            i64::MIN,
            u64::MAX,
            null,
            true
        ]))
        .with_metadata("\u{e000}", json!("private use sorts after an astral char in UTF-16"))
        .with_metadata("😀", json!({"z": 1, "a": [{"y": null, "x": 2.5}]}))
        .with_metadata("", json!(""))
        .with_metadata("chained", json!({"chain": 1}));
    let mut preset_chain = full.clone().with_metadata("n", json!(7));
    preset_chain.chain = Some(ChainLink {
        chain_id: "forged".into(),
        seq: 99,
        prev_hash: "f".repeat(64),
        hash: "e".repeat(64),
    });
    let mut admin = AuditEvent::new(EventType::ApprovalDecided, Actor::admin("tok_1", "ad\"min"), at)
        .with_decision(Decision::ApprovalRequired)
        .with_destination(Destination { scheme: "http".into(), host: "h".into(), port: 0, path_group: None })
        .with_policy(PolicyRef {
            rule_id: Some("pol_2".into()),
            rule_type: Some("require_approval".into()),
            approval_id: Some("apr_1".into()),
        });
    admin.metadata.insert("a".into(), json!(null));
    vec![
        AuditEvent::new(EventType::KeyRotated, Actor::system("steward"), at),
        admin,
        full.clone(),
        odd,
        preset_chain,
        full.clone().with_canonical_descriptor(json!({"chain": {"seq": 1}})),
        full.clone().with_canonical_descriptor(json!({"chain": null})),
        full.clone().with_metadata("chain", serde_json::Value::Null),
        full.with_metadata("a\"chain", serde_json::Value::Null),
    ]
}

#[test]
fn linking_a_prepared_event_equals_compute_hash_and_body_json() {
    let audit_key = [3_u8; 32];
    let key = HmacKey::new(&audit_key);
    let links = [
        (chain_id_for("t_1", "wr_1"), 1, GENESIS_HASH.to_owned()),
        (chain_id_for("t_\"x\"\n😀", "wr_\\2"), 123_456_789_012, "ab".repeat(32)),
        (chain_id_for("global", "wr_3"), i64::MAX, "0123456789abcdef".repeat(4)),
    ];
    for (i, event) in varied_events().into_iter().enumerate() {
        for (chain_id, seq, prev_hash) in &links {
            let stored = Unchained::new(event.clone())
                .unwrap()
                .link(&key, chain_id.clone(), *seq, prev_hash.clone(), "wr_1".into())
                .unwrap();
            let mut expected = event.clone();
            expected.chain = Some(ChainLink {
                chain_id: chain_id.clone(),
                seq: *seq,
                prev_hash: prev_hash.clone(),
                hash: String::new(),
            });
            let hash = compute_hash(&audit_key, &expected).unwrap();
            expected.chain.as_mut().unwrap().hash = hash;
            assert_eq!(stored.event(), &expected, "event {i} at seq {seq}");
            assert_eq!(stored.writer_id(), "wr_1");
            // The body is the RFC 8785 form of the whole event (decision 0024).
            let value = serde_json::to_value(&expected).unwrap();
            assert_eq!(stored.body(), serde_jcs::to_string(&value).unwrap(), "event {i}: body");
            assert_eq!(stored, StoredEvent::new(expected, "wr_1".into()).unwrap());
        }
    }
}

#[test]
fn the_unchained_canonical_form_is_jcs_of_the_json_value() {
    for (i, event) in varied_events().into_iter().enumerate() {
        let mut event = event;
        event.chain = None;
        let mut out = Vec::new();
        let chain_at = crate::audit::jcs::write_unchained_event(&mut out, &event).unwrap();
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            serde_jcs::to_string(&value).unwrap(),
            "event {i}"
        );
        assert!(
            out[..chain_at].ends_with(b"\"chain\":") && out[chain_at..].starts_with(b"null"),
            "event {i}"
        );
    }
}

/// Every way a body can be stored: as the writer stores it now (RFC 8785, decision 0024), as releases
/// before 0024 stored it (`serde_json` of the event), and the same event reformatted.
fn stored_bodies(event: &AuditEvent) -> Vec<(&'static str, String)> {
    let canonical = StoredEvent::new(event.clone(), "wr_1".into()).unwrap().body().to_owned();
    let legacy = serde_json::to_string(event).unwrap();
    let pretty = serde_json::to_string_pretty(event).unwrap();
    vec![("canonical", canonical), ("legacy", legacy), ("pretty", pretty)]
}

fn linked(event: AuditEvent, audit_key: &[u8; 32], seq: i64) -> AuditEvent {
    let mut event = event;
    event.chain = Some(ChainLink {
        chain_id: chain_id_for("t_\"x\"\n😀", "wr_1"),
        seq,
        prev_hash: "ab".repeat(32),
        hash: String::new(),
    });
    let hash = compute_hash(audit_key, &event).unwrap();
    event.chain.as_mut().unwrap().hash = hash;
    event
}

#[test]
fn a_skimmed_body_hashes_as_its_parsed_event_in_every_stored_form() {
    use crate::audit::skim::SkimmedEvent;
    let audit_key = [5_u8; 32];
    let key = HmacKey::new(&audit_key);
    let mut scratch = Vec::new();
    for (i, event) in varied_events().into_iter().enumerate() {
        let event = linked(event, &audit_key, 7 + i as i64);
        let expected = &event.chain.as_ref().unwrap().hash;
        for (form, body) in stored_bodies(&event) {
            let skim = SkimmedEvent::parse(&body).unwrap();
            assert_eq!(skim.event_id, event.event_id.as_str(), "event {i}, {form}");
            assert_eq!(skim.chain_tenant(), event.chain_tenant(), "event {i}, {form}");
            let hash = skim.chain_hash(&key, &body, &mut scratch).unwrap();
            assert_eq!(hash, expected.as_bytes(), "event {i}, {form}");
        }
    }
}

#[test]
fn a_skimmed_body_that_was_altered_does_not_hash_as_the_event() {
    use crate::audit::skim::SkimmedEvent;
    let audit_key = [5_u8; 32];
    let key = HmacKey::new(&audit_key);
    let mut scratch = Vec::new();
    let event = linked(chained(1).with_metadata("note", serde_json::json!("paid 10")), &audit_key, 1);
    let link = event.chain.clone().unwrap();
    let body = StoredEvent::new(event, "wr_1".into()).unwrap().body().to_owned();
    let link_json = format!(
        "{{\"chain_id\":{},\"hash\":\"{}\",\"prev_hash\":\"{}\",\"seq\":1}}",
        serde_json::to_string(&link.chain_id).unwrap(),
        link.hash,
        link.prev_hash
    );
    assert!(body.contains(&format!("\"chain\":{link_json}")), "{body}");
    let unhashed = link_json.replace(&format!(",\"hash\":\"{}\"", link.hash), "");
    let altered = [
        // A value edited in place.
        body.replace("paid 10", "paid 99"),
        // The link's `hash` moved into a nested copy of the link, the top-level link left without:
        // the bytes around the nested copy are the hashed bytes, but that is not the stored event.
        body.replace(&format!("\"chain\":{link_json}"), &format!("\"chain\":{unhashed}")).replace(
            "\"note\":\"paid 10\"",
            &format!("\"note\":\"paid 10\",\"x\":{{\"chain\":{link_json}}}"),
        ),
        // A second top-level member after the link (the writer never writes one).
        body.replacen('{', "{\"zz\":1,", 1),
    ];
    for (n, altered) in altered.iter().enumerate() {
        let fits = SkimmedEvent::parse(altered).is_ok_and(|skim| {
            skim.chain.as_ref().is_some_and(|link| {
                skim.chain_hash(&key, altered, &mut scratch).is_ok_and(|hash| hash == link.hash.as_bytes())
            })
        });
        assert!(!fits, "alteration {n} went unnoticed: {altered}");
    }
    // The unaltered body fits.
    let skim = SkimmedEvent::parse(&body).unwrap();
    assert_eq!(skim.chain_hash(&key, &body, &mut scratch).unwrap(), link.hash.as_bytes());
}
