use steward_types::Timestamp;

use super::*;
use crate::audit::{Actor, EventType};

fn chained(seq: i64) -> AuditEvent {
    let at = Timestamp::from_unix_micros(1_795_000_000_000_001).unwrap();
    let mut event = AuditEvent::new(EventType::AdminAction, Actor::admin("tok_x"), at).with_tenant("t_1");
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
    let key = hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]);
    assert_eq!(compute_hash(&[1; 32], &event).unwrap(), hex::encode(hmac::sign(&key, &message).as_ref()));
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
