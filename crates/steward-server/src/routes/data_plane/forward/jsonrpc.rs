//! What a JSON-RPC request body says about itself (`spec/mcp.md` §2): a remote MCP server is reached
//! in forward mode, one JSON-RPC request per call, and its `execute` audit event records the
//! JSON-RPC `method` and, for `tools/call`, the tool `name` (`params.name`), so an auditor can see
//! which tool was called without the arguments.
//!
//! Only a single JSON object with `"jsonrpc": "2.0"` and a string `method` counts (batches were
//! removed from MCP in 2025-06-18 and are not recorded). The body is scanned once, every other value
//! skipped without being kept; recorded strings are cut to [`MAX_RECORDED_CHARS`] characters.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Longest method or tool name kept in an audit event.
pub const MAX_RECORDED_CHARS: usize = 128;

/// The audit metadata key of the JSON-RPC method.
pub const METHOD_KEY: &str = "jsonrpc_method";
/// The audit metadata key of the tool name of a `tools/call`.
pub const TOOL_NAME_KEY: &str = "jsonrpc_tool_name";

/// A JSON-RPC request's method and, for `tools/call`, its tool name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRpcCall {
    pub method: String,
    pub tool_name: Option<String>,
}

/// The call a body holds, when it is a JSON-RPC 2.0 request (or notification) object. `content_type`
/// must be JSON (`application/json`, parameters ignored); anything else, or a body that is not such
/// an object, is `None`.
pub fn sniff(content_type: Option<&str>, body: &[u8]) -> Option<JsonRpcCall> {
    let media_type = steward_canon::http::media_type(content_type?);
    if media_type != "application/json" || body.is_empty() {
        return None;
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    if probe.jsonrpc.as_deref() != Some("2.0") {
        return None;
    }
    let method = probe.method?;
    let tool_name = if method == "tools/call" { probe.params.and_then(|p| p.0) } else { None };
    Some(JsonRpcCall { method: cut(method), tool_name: tool_name.map(cut) })
}

fn cut(value: String) -> String {
    if value.chars().count() <= MAX_RECORDED_CHARS {
        value
    } else {
        value.chars().take(MAX_RECORDED_CHARS).collect()
    }
}

/// The top level of a JSON-RPC request; other members are skipped. A member of the wrong type
/// makes the whole body "not JSON-RPC" (`sniff` returns `None`), except `params`, which is read
/// leniently.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    jsonrpc: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<ParamsName>,
}

/// `params.name` when `params` is an object whose `name` is a string; `None` for any other value.
/// Every other member and shape is skipped, not kept.
struct ParamsName(Option<String>);

impl<'de> Deserialize<'de> for ParamsName {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ParamsVisitor)
    }
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = ParamsName;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ParamsName, A::Error> {
        let mut name = None;
        let mut seen_name = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "name" {
                // A repeated `name` is ambiguous: servers differ on which one wins (the Python SDK
                // takes the last), so the call names no tool rather than maybe the wrong one (like
                // constraint checks, decision 0017, which treat such a body as not JSON).
                let value = map.next_value::<NameValue>()?.0;
                name = if seen_name { None } else { value };
                seen_name = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(ParamsName(name))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ParamsName, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ParamsName(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<ParamsName, E> {
        Ok(ParamsName(None))
    }
}

/// A string value, or `None` for any other JSON value (skipped).
struct NameValue(Option<String>);

impl<'de> Deserialize<'de> for NameValue {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserializer.deserialize_any(NameVisitor)?;
        Ok(NameValue(value))
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Option<String>, E> {
        Ok(Some(value.to_owned()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    fn call(method: &str, tool: Option<&str>) -> Option<JsonRpcCall> {
        Some(JsonRpcCall { method: method.to_owned(), tool_name: tool.map(str::to_owned) })
    }

    #[test]
    fn a_repeated_tool_name_names_no_tool() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_item","name":"delete_repo"}}"#;
        assert_eq!(sniff(JSON, body), call("tools/call", None));
        let thrice =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b","name":"c"}}"#;
        assert_eq!(sniff(JSON, thrice), call("tools/call", None));
        let method_twice = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}"#;
        assert_eq!(sniff(JSON, method_twice), None);
    }

    #[test]
    fn a_tools_call_gives_its_method_and_tool_name() {
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{"name":"not this","x":[1,{"y":2}]},"name":"search_issues"}}"#;
        assert_eq!(sniff(JSON, body), call("tools/call", Some("search_issues")));
    }

    #[test]
    fn other_methods_and_notifications_give_the_method_only() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"name":"ignored","protocolVersion":"2025-06-18"}}"#;
        assert_eq!(sniff(JSON, body), call("initialize", None));
        let body = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(
            sniff(Some("application/json; charset=utf-8"), body),
            call("notifications/initialized", None)
        );
    }

    #[test]
    fn odd_params_are_read_leniently() {
        for params in [r#"[1,2]"#, r#""x""#, "null", "3", r#"{"name":5}"#, r#"{"name":{"a":"b"}}"#, "{}"] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
            assert_eq!(sniff(JSON, body.as_bytes()), call("tools/call", None), "{params}");
        }
        let body = br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a\"b\u00e9"}}"#;
        assert_eq!(sniff(JSON, body), call("tools/call", Some("a\"b\u{e9}")));
    }

    #[test]
    fn anything_else_is_not_json_rpc() {
        let cases: [(&[u8], Option<&str>); 9] = [
            (br#"{"jsonrpc":"2.0","method":"tools/call"}"#, Some("text/plain")),
            (br#"{"jsonrpc":"2.0","method":"tools/call"}"#, None),
            (br#"{"jsonrpc":"1.0","method":"x"}"#, JSON),
            (br#"{"method":"x"}"#, JSON),
            (br#"{"jsonrpc":"2.0","method":5}"#, JSON),
            (br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, JSON),
            (br#"[{"jsonrpc":"2.0","method":"x"}]"#, JSON),
            (br#"{"model":"gpt-4o","messages":[]}"#, JSON),
            (b"{not json", JSON),
        ];
        for (body, content_type) in cases {
            assert_eq!(sniff(content_type, body), None, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(sniff(JSON, b""), None);
    }

    #[test]
    fn recorded_strings_are_cut() {
        let long = "m".repeat(1000);
        let body = format!(r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"{long}"}}}}"#);
        let sniffed = sniff(JSON, body.as_bytes()).unwrap();
        assert_eq!(sniffed.tool_name.unwrap().len(), MAX_RECORDED_CHARS);
    }
}
