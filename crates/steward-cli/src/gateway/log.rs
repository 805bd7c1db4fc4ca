//! JSON-lines logs on stderr: one object per line with `timestamp`, `level`, `message` and fields.
//! Never bodies, never tokens, never query strings (they may carry keys).

use std::io::Write;

use steward_types::{Clock, SystemClock};

pub fn info(message: &str, fields: serde_json::Value) {
    write("info", message, fields);
}

pub fn warn(message: &str, fields: serde_json::Value) {
    write("warn", message, fields);
}

fn write(level: &str, message: &str, fields: serde_json::Value) {
    let mut line = serde_json::json!({
        "timestamp": SystemClock.now().to_rfc3339(),
        "level": level,
        "target": "steward::gateway",
        "message": message,
    });
    if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}
