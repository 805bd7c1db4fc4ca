//! A tool call in both directions: arguments → the execute request (envelope mode), and Steward's
//! answer → the tool result (`spec/mcp.md` §1). Pure, so every shape is unit-tested.

use base64::Engine;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use serde_json::{Value, json};
use steward_client::{
    ApprovalSummary, ClientContext, ClientError, ExecuteRequest, ExecutedResponse, HeaderField,
};

use super::catalog::ToolEntry;

const KNOWN_ARGUMENTS: [&str; 7] =
    ["method", "path", "query", "headers", "body", "body_text", "content_type"];

/// The execute request for a call, or why the arguments cannot make one (a message for the model).
pub fn build_request(entry: &ToolEntry, arguments: Option<&JsonObject>) -> Result<ExecuteRequest, String> {
    let empty = JsonObject::new();
    let arguments = arguments.unwrap_or(&empty);
    if let Some(unknown) = arguments.keys().find(|k| !KNOWN_ARGUMENTS.contains(&k.as_str())) {
        return Err(format!("unknown argument {unknown:?}; this tool takes {}", KNOWN_ARGUMENTS.join(", ")));
    }
    let group = &entry.group;
    let method = match arguments.get("method") {
        None | Some(Value::Null) => group.methods.first().cloned().unwrap_or_else(|| "GET".to_owned()),
        Some(Value::String(method)) => match group.methods.iter().find(|m| m.eq_ignore_ascii_case(method)) {
            Some(allowed) => allowed.clone(),
            None => {
                return Err(format!("method {method:?} is not one of {}", group.methods.join(", ")));
            }
        },
        Some(_) => return Err("method must be a string".to_owned()),
    };
    let path = match arguments.get("path") {
        Some(Value::String(path)) if path.starts_with('/') => path.clone(),
        Some(Value::String(_)) => return Err("path must start with '/'".to_owned()),
        None | Some(Value::Null) => return Err("path is required".to_owned()),
        Some(_) => return Err("path must be a string".to_owned()),
    };
    if path.contains('?') || path.contains('#') {
        return Err("path must not contain '?' or '#': pass query parameters in query".to_owned());
    }
    let query = string_map(arguments.get("query"), "query")?;
    let mut headers: Vec<HeaderField> = string_map(arguments.get("headers"), "headers")?
        .into_iter()
        .map(|(name, value)| HeaderField { name, value })
        .collect();

    // Models often send `null` for an optional argument: that is the same as leaving it out.
    let present = |name: &str| arguments.get(name).filter(|v| !v.is_null());
    let body = match (present("body"), present("body_text")) {
        (Some(_), Some(_)) => return Err("pass either body (JSON) or body_text, not both".to_owned()),
        (Some(body), None) => {
            set_content_type(&mut headers, "application/json");
            Some(serde_json::to_vec(body).map_err(|e| format!("body: {e}"))?)
        }
        (None, Some(Value::String(text))) => {
            let content_type = match arguments.get("content_type") {
                None | Some(Value::Null) => "text/plain; charset=utf-8".to_owned(),
                Some(Value::String(content_type)) => content_type.clone(),
                Some(_) => return Err("content_type must be a string".to_owned()),
            };
            set_content_type(&mut headers, &content_type);
            Some(text.as_bytes().to_vec())
        }
        (None, Some(_)) => return Err("body_text must be a string".to_owned()),
        (None, None) => None,
    };

    let mut url = format!("{}{path}", entry.target.origin());
    if !query.is_empty() {
        let encoded: Vec<String> = query
            .iter()
            .map(|(key, value)| format!("{}={}", encode_component(key), encode_component(value)))
            .collect();
        url.push('?');
        url.push_str(&encoded.join("&"));
    }
    let mut request =
        ExecuteRequest::new(&entry.target.integration_id, &method, &url, headers, body.as_deref());
    request.client_context =
        Some(ClientContext { source: Some("steward-mcp".to_owned()), ..ClientContext::default() });
    Ok(request)
}

/// An object of string values (numbers and booleans are accepted and written as text).
fn string_map(value: Option<&Value>, field: &str) -> Result<Vec<(String, String)>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(object)) => object
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                Value::Number(n) => Ok((key.clone(), n.to_string())),
                Value::Bool(b) => Ok((key.clone(), b.to_string())),
                _ => Err(format!("{field}.{key} must be a string")),
            })
            .collect(),
        Some(_) => Err(format!("{field} must be an object of string values")),
    }
}

/// A caller's content-type header wins over the one the body kind implies.
fn set_content_type(headers: &mut Vec<HeaderField>, value: &str) {
    if !headers.iter().any(|h| h.name.eq_ignore_ascii_case("content-type")) {
        headers.push(HeaderField { name: "content-type".to_owned(), value: value.to_owned() });
    }
}

/// RFC 3986 percent-encoding of a query key or value (unreserved characters kept).
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An executed call: the body as text, `{status_code, headers, body}` as structured content, an
/// error result when the upstream answered 400 or more.
pub fn executed_result(response: &ExecutedResponse) -> CallToolResult {
    let mut headers = serde_json::Map::new();
    for header in &response.headers {
        match headers.get_mut(&header.name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&header.value);
            }
            _ => {
                headers.insert(header.name.clone(), Value::String(header.value.clone()));
            }
        }
    }
    let mut structured = json!({"status_code": response.status_code, "headers": headers});
    let text = match std::str::from_utf8(&response.body) {
        Ok(text) => {
            structured["body"] =
                serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned()));
            if text.is_empty() {
                format!("(empty body; upstream status {})", response.status_code)
            } else {
                text.to_owned()
            }
        }
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&response.body);
            structured["body"] = Value::String(encoded.clone());
            structured["body_encoding"] = json!("base64");
            format!(
                "(the upstream body is not UTF-8 text: {} bytes, base64-encoded below; upstream status {})\n{encoded}",
                response.body.len(),
                response.status_code
            )
        }
    };
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result.is_error = Some(response.status_code >= 400);
    result
}

/// A refusal the model can read: `"<code>: <message> (correlation <id>)"`.
pub fn refusal_result(error: &ClientError) -> CallToolResult {
    let text = match error {
        ClientError::Broker { code, message, correlation_id, .. } => match correlation_id {
            Some(id) => format!("{code}: {message} (correlation {id})"),
            None => format!("{code}: {message}"),
        },
        ClientError::Transport(detail) => format!("broker_unreachable: cannot reach Steward: {detail}"),
        other => format!("steward_client_error: {other}"),
    };
    error_text(text)
}

/// An error result with one text item.
pub fn error_text(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// The admin command that approves a pending call once.
pub fn approve_command(approval_id: &str) -> String {
    format!("steward admin approvals approve {approval_id} --once")
}

/// A call waiting for a human: what it is, and how an administrator lets it through.
pub fn approval_result(
    approval_id: &str,
    expires_at: &str,
    summary: &ApprovalSummary,
    status: &str,
    waited_seconds: Option<u64>,
) -> CallToolResult {
    let command = approve_command(approval_id);
    let waited = match waited_seconds {
        Some(seconds) => format!(" Waited {seconds} s without a decision."),
        None => String::new(),
    };
    let text = if status == "pending" {
        format!(
            "approval_required: this call needs a human approval (approval {approval_id}, expires {expires_at}): \
             {} {}{} [action group {}, {} risk].{waited} An administrator approves it with: {command} — \
             then call this tool again with the same arguments.",
            summary.method, summary.destination_host, summary.path, summary.action_group, summary.risk_tier
        )
    } else {
        format!(
            "approval_{status}: approval {approval_id} for {} {}{} is {status}; the call was not made.",
            summary.method, summary.destination_host, summary.path
        )
    };
    let mut result = error_text(text);
    result.structured_content = Some(json!({
        "approval_id": approval_id,
        "status": status,
        "expires_at": expires_at,
        "summary": summary,
        "approve_command": command,
    }));
    result
}

#[cfg(test)]
mod tests;
