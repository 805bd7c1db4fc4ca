//! RFC 8785 (JCS) serialization of audit events, byte for byte what `serde_jcs` writes.
//!
//! [`compute_hash`](super::compute_hash) defines the chain hash as `serde_jcs` of the event's JSON
//! value, and stays the reference (verification uses it). Building that value and running `serde_jcs`
//! (which allocates on every write call and buffers each object in a map of byte vectors) was the
//! audit path's biggest CPU cost; this writes straight into one buffer. Only the structure is written
//! here: objects with their entries sorted the way `serde_jcs` sorts them (by the bytes of the quoted,
//! escaped key), arrays, and no whitespace. Every leaf is written by the same code `serde_jcs` uses:
//! strings and integers by `serde_json` (whose escaping and integer format `serde_jcs` keeps),
//! numbers of a `Value` by `serde_jcs` itself (it formats floats the ECMAScript way).

use serde::Serialize;
use serde_json::{Map, Value};

use super::event::{Actor, AuditEvent, Destination, PolicyRef};
use crate::StoreError;

/// Appends the canonical form of `event` with `chain: null`, and returns where that `null` starts.
///
/// The same bytes as JCS of `serde_json::to_value(event)` (the tests compare them on varied events),
/// written from the fields without building the value. Every struct is destructured completely, so a
/// new field is a compile error here rather than a silent difference; keys are written in canonical
/// order. The leaves are strings, integers and unit enums, which `serde_json` writes exactly as JCS
/// does; the free-form parts (descriptor, metadata) go through [`write_value`].
pub(crate) fn write_unchained_event(out: &mut Vec<u8>, event: &AuditEvent) -> Result<usize, StoreError> {
    let AuditEvent {
        event_id,
        timestamp,
        request_id,
        correlation_id,
        tenant_id,
        workload_id,
        integration_id,
        event_type,
        decision,
        reason_code,
        action_group,
        risk_tier,
        destination,
        latency_ms,
        upstream_status_code,
        canonical_descriptor,
        policy,
        actor,
        metadata,
        chain: _,
    } = event;
    out.extend_from_slice(b"{\"action_group\":");
    leaf(out, action_group)?;
    let Actor { actor_type, id, role } = actor;
    out.extend_from_slice(b",\"actor\":{\"id\":");
    leaf(out, id)?;
    // Skipped when absent, as `serde` skips it, so events written before it existed hash the same.
    if let Some(role) = role {
        out.extend_from_slice(b",\"role\":");
        leaf(out, role)?;
    }
    out.extend_from_slice(b",\"type\":");
    leaf(out, actor_type)?;
    out.extend_from_slice(b"},\"canonical_descriptor\":");
    match canonical_descriptor {
        Some(value) => write_value(out, value)?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"chain\":");
    let chain_at = out.len();
    out.extend_from_slice(b"null,\"correlation_id\":");
    leaf(out, correlation_id)?;
    out.extend_from_slice(b",\"decision\":");
    leaf(out, decision)?;
    out.extend_from_slice(b",\"destination\":");
    match destination {
        Some(Destination { scheme, host, port, path_group }) => {
            out.extend_from_slice(b"{\"host\":");
            leaf(out, host)?;
            out.extend_from_slice(b",\"path_group\":");
            leaf(out, path_group)?;
            out.extend_from_slice(b",\"port\":");
            leaf(out, port)?;
            out.extend_from_slice(b",\"scheme\":");
            leaf(out, scheme)?;
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"event_id\":");
    leaf(out, event_id)?;
    out.extend_from_slice(b",\"event_type\":");
    leaf(out, event_type)?;
    out.extend_from_slice(b",\"integration_id\":");
    leaf(out, integration_id)?;
    out.extend_from_slice(b",\"latency_ms\":");
    leaf(out, latency_ms)?;
    out.extend_from_slice(b",\"metadata\":");
    write_object(out, metadata)?;
    out.extend_from_slice(b",\"policy\":");
    match policy {
        Some(PolicyRef { rule_id, rule_type, approval_id }) => {
            out.extend_from_slice(b"{\"approval_id\":");
            leaf(out, approval_id)?;
            out.extend_from_slice(b",\"rule_id\":");
            leaf(out, rule_id)?;
            out.extend_from_slice(b",\"rule_type\":");
            leaf(out, rule_type)?;
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"reason_code\":");
    leaf(out, reason_code)?;
    out.extend_from_slice(b",\"request_id\":");
    leaf(out, request_id)?;
    out.extend_from_slice(b",\"risk_tier\":");
    leaf(out, risk_tier)?;
    out.extend_from_slice(b",\"tenant_id\":");
    leaf(out, tenant_id)?;
    out.extend_from_slice(b",\"timestamp\":");
    leaf(out, timestamp)?;
    out.extend_from_slice(b",\"upstream_status_code\":");
    leaf(out, upstream_status_code)?;
    out.extend_from_slice(b",\"workload_id\":");
    leaf(out, workload_id)?;
    out.push(b'}');
    Ok(chain_at)
}

/// A string, an integer, a unit enum or `None`: `serde_json` writes these exactly as JCS does.
fn leaf<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), StoreError> {
    serde_json::to_writer(&mut *out, value).map_err(not_jcs)
}

/// Appends the canonical form of `value` to `out`.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), StoreError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => serde_jcs::to_writer(&mut *out, number).map_err(not_jcs)?,
        Value::String(text) => write_str(out, text)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

/// Appends the canonical form of an object to `out`.
fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) -> Result<(), StoreError> {
    // Quote and escape every key once, into one buffer, and sort by those bytes: `serde_jcs`'s order.
    let mut keys = Vec::new();
    let mut sorted = Vec::new();
    for (key, value) in map {
        let start = keys.len();
        write_str(&mut keys, key)?;
        sorted.push((start..keys.len(), value));
    }
    sorted.sort_unstable_by(|a, b| keys[a.0.clone()].cmp(&keys[b.0.clone()]));
    out.push(b'{');
    for (i, (quoted, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&keys[quoted]);
        out.push(b':');
        write_value(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

/// Appends `text` as a JSON string, escaped as `serde_json` (and so `serde_jcs`) escapes it.
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) -> Result<(), StoreError> {
    serde_json::to_writer(&mut *out, text).map_err(not_jcs)
}

fn not_jcs(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("audit event is not JCS-able: {error}"))
}

#[cfg(test)]
mod tests;
