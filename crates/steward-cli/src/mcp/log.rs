//! Logs of `steward mcp`: JSON lines on stderr (stdout is the protocol on stdio). Callers pass
//! only names, ids and codes — never a body, a secret or a token.

/// One JSON line: `{"ts", "component": "steward-mcp", "event", …fields}`.
pub fn event(event: &str, fields: &[(&str, &str)]) {
    let mut line = serde_json::Map::new();
    use steward_types::Clock;
    line.insert("ts".into(), steward_types::SystemClock.now().to_string().into());
    line.insert("component".into(), "steward-mcp".into());
    line.insert("event".into(), event.into());
    for (name, value) in fields {
        line.insert((*name).into(), (*value).into());
    }
    eprintln!("{}", serde_json::Value::Object(line));
}
