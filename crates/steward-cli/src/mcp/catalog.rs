//! The tools of `steward mcp`: one per (integration, path group) of the verified manifest
//! (`spec/mcp.md` §1). Pure: a manifest in, tool definitions and their call targets out.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};
use steward_client::{Manifest, ManifestGroup, MatchRule};

/// MCP tool names are at most 64 characters of `[A-Za-z0-9_-]` for the clients we serve.
const MAX_NAME: usize = 64;

/// Where a tool's calls go: the integration and the template's (first) host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub integration_id: String,
    pub integration_name: String,
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

impl Target {
    /// `scheme://host[:port]` (the port left out when it is the scheme's default).
    pub fn origin(&self) -> String {
        let default_port = match self.scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        };
        match self.port {
            Some(port) if Some(port) != default_port => format!("{}://{}:{port}", self.scheme, self.host),
            _ => format!("{}://{}", self.scheme, self.host),
        }
    }
}

/// One tool: its MCP definition and what a call needs to build the execute request.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolEntry {
    pub tool: Tool,
    pub target: Target,
    pub group: ManifestGroup,
}

/// The tools of one manifest, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub tools: BTreeMap<String, ToolEntry>,
}

impl Catalog {
    /// The tools of a verified manifest. A rule without a usable host is skipped (and named in
    /// the returned warnings, for the log), as is a name that two groups would share after
    /// sanitizing.
    pub fn from_manifest(manifest: &Manifest) -> (Self, Vec<String>) {
        let mut tools = BTreeMap::new();
        let mut warnings = Vec::new();
        for rule in &manifest.match_rules {
            let Some(target) = target_of(rule) else {
                warnings
                    .push(format!("integration {} has no host in its manifest rule; no tools", rule.name));
                continue;
            };
            for group in &rule.groups {
                let name = tool_name(&rule.name, &group.group_id);
                if tools.contains_key(&name) {
                    warnings.push(format!(
                        "tool name {name} is taken (integration {}, group {}); the group is left out",
                        rule.name, group.group_id
                    ));
                    continue;
                }
                let tool = build_tool(&name, rule, group, &target);
                tools.insert(name, ToolEntry { tool, target: target.clone(), group: group.clone() });
            }
        }
        (Self { tools }, warnings)
    }

    pub fn list(&self) -> Vec<Tool> {
        self.tools.values().map(|entry| entry.tool.clone()).collect()
    }
}

/// `<integration_name>__<group_id>`, characters outside `[A-Za-z0-9_-]` replaced by `_`, cut to 64.
pub fn tool_name(integration: &str, group: &str) -> String {
    format!("{integration}__{group}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .take(MAX_NAME)
        .collect()
}

/// The first scheme, host and port of the rule's `match` (the template's allowed values).
fn target_of(rule: &MatchRule) -> Option<Target> {
    let first_str = |key: &str| {
        rule.matcher.get(key).and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str)
    };
    let host = first_str("hosts")?.to_owned();
    let scheme = first_str("schemes").unwrap_or("https").to_ascii_lowercase();
    let port = rule
        .matcher
        .get("ports")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok());
    Some(Target {
        integration_id: rule.integration_id.clone(),
        integration_name: rule.name.clone(),
        scheme,
        host,
        port,
    })
}

fn read_only(group: &ManifestGroup) -> bool {
    !group.methods.is_empty()
        && group.methods.iter().all(|m| m.eq_ignore_ascii_case("GET") || m.eq_ignore_ascii_case("HEAD"))
}

fn needs_approval(group: &ManifestGroup) -> bool {
    group.approval_mode == "required"
}

fn describe(rule: &MatchRule, group: &ManifestGroup, target: &Target) -> String {
    let approval = if needs_approval(group) { " Every call needs human approval." } else { "" };
    let lead = match group.description.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        Some(description) => description.to_owned(),
        None => format!(
            "Calls the {} API ({}) through Steward, which adds the credentials: {} on paths matching {}. \
             Risk tier {}.",
            rule.provider,
            target.origin(),
            group.methods.join(", "),
            group.path_patterns.join(" or "),
            group.risk_tier
        ),
    };
    format!("{lead}{approval}")
}

fn build_tool(name: &str, rule: &MatchRule, group: &ManifestGroup, target: &Target) -> Tool {
    let annotations = ToolAnnotations::with_title(format!("{} {}", rule.name, group.group_id))
        .read_only(read_only(group))
        .destructive(group.risk_tier == "high")
        .open_world(true);
    let mut tool = Tool::default();
    tool.name = name.to_owned().into();
    tool.description = Some(describe(rule, group, target).into());
    tool.input_schema = Arc::new(input_schema(group, target));
    tool.annotations = Some(annotations);
    tool
}

fn string_properties(names: &[String]) -> Value {
    Value::Object(names.iter().map(|n| (n.clone(), json!({"type": "string"}))).collect())
}

/// The arguments a call takes (`spec/mcp.md` §1); unknown properties are refused.
fn input_schema(group: &ManifestGroup, target: &Target) -> JsonObject {
    let mut properties = serde_json::Map::new();
    let mut method = json!({"type": "string", "enum": group.methods, "description": "The HTTP method."});
    if let Some(first) = group.methods.first() {
        method["default"] = json!(first);
    }
    properties.insert("method".into(), method);
    properties.insert(
        "path".into(),
        json!({"type": "string", "description": format!(
            "The request path on {}, starting with '/', without the query. It must match one of these \
             regular expressions: {}.",
            target.origin(),
            group.path_patterns.join(", ")
        )}),
    );
    properties.insert(
        "query".into(),
        json!({"type": "object", "description": if group.query_allowlist.is_empty() {
                "Query parameters: none are allowed for this tool.".to_owned()
            } else {
                format!("Query parameters (string values); allowed keys: {}.", group.query_allowlist.join(", "))
            },
            "properties": string_properties(&group.query_allowlist), "additionalProperties": false}),
    );
    properties.insert(
        "headers".into(),
        json!({"type": "object", "description": if group.header_forward_allowlist.is_empty() {
                "Request headers: none are forwarded for this tool.".to_owned()
            } else {
                format!("Request headers; allowed names: {}.", group.header_forward_allowlist.join(", "))
            },
            "properties": string_properties(&group.header_forward_allowlist), "additionalProperties": false}),
    );
    properties.insert(
        "body".into(),
        json!({"description": "A JSON request body (any JSON value), sent as application/json."}),
    );
    properties.insert(
        "body_text".into(),
        json!({"type": "string", "description": "A text request body, sent with content_type (instead of body)."}),
    );
    properties.insert(
        "content_type".into(),
        json!({"type": "string", "description": "The content type of body_text (default text/plain)."}),
    );
    let schema = json!({
        "type": "object",
        "properties": properties,
        "required": ["path"],
        "additionalProperties": false,
    });
    match schema {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
