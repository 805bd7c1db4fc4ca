//! The template model. [`Template::from_json`] applies every publish-time rule of `pipeline.md`
//! "Templates" in order; a `Template` value is therefore always valid and nothing downstream re-checks.

mod allowlist;
mod injection;
mod pattern;
mod raw;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;
use steward_types::ErrorCode;

pub use allowlist::{HeaderAllowlist, entries_allow};
pub use injection::{Injection, InjectionKind, SECRET_PLACEHOLDER};
pub use pattern::PathPattern;

use crate::error::TemplateError;
use crate::http;
use crate::method::Method;
use crate::percent::{has_encoded_separator, normalize_percent};
use raw::{RawBodyPolicy, RawDuplicateKeys, RawGroup, RawTemplate};

/// A validated template version.
#[derive(Debug, Clone)]
pub struct Template {
    id: String,
    version: u64,
    provider: String,
    schemes: Vec<String>,
    ports: Vec<u16>,
    hosts: Vec<String>,
    default_injection: Option<Injection>,
    groups: Vec<PathGroup>,
    source: Value,
}

/// How risky a group's actions are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskTier {
    Low,
    Medium,
    High,
}

/// Whether a group's actions need a human approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    None,
    Required,
}

/// Which query keys may repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuplicateQueryKeys {
    Forbidden,
    AllowAll,
    Allow(Vec<String>),
}

impl DuplicateQueryKeys {
    /// True when `key` may appear more than once.
    pub fn allows(&self, key: &str) -> bool {
        match self {
            DuplicateQueryKeys::Forbidden => false,
            DuplicateQueryKeys::AllowAll => true,
            DuplicateQueryKeys::Allow(keys) => keys.iter().any(|k| k == key),
        }
    }
}

/// A group's body limits: size and media types (lowercase, no parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPolicy {
    max_bytes: u64,
    content_types: Vec<String>,
}

impl BodyPolicy {
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn content_types(&self) -> &[String] {
        &self.content_types
    }

    pub fn allows_content_type(&self, media_type: &str) -> bool {
        self.content_types.iter().any(|t| t == media_type)
    }
}

/// One path group: which requests it admits and under what policy.
#[derive(Debug, Clone)]
pub struct PathGroup {
    id: String,
    description: Option<String>,
    risk_tier: RiskTier,
    approval_mode: ApprovalMode,
    methods: Vec<Method>,
    patterns: Vec<PathPattern>,
    query_allowlist: Vec<String>,
    header_forward_allowlist: HeaderAllowlist,
    response_header_allowlist: HeaderAllowlist,
    body_policy: BodyPolicy,
    approval_preview: Vec<String>,
    duplicate_query_keys: DuplicateQueryKeys,
    allow_encoded_slashes: bool,
}

impl PathGroup {
    pub fn id(&self) -> &str {
        &self.id
    }
    /// What the group is for, in words (shown to people and to models choosing a tool).
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    pub fn risk_tier(&self) -> RiskTier {
        self.risk_tier
    }
    pub fn approval_mode(&self) -> ApprovalMode {
        self.approval_mode
    }
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }
    pub fn patterns(&self) -> &[PathPattern] {
        &self.patterns
    }
    /// Query keys a request may carry (already percent-normalized).
    pub fn query_allowlist(&self) -> &[String] {
        &self.query_allowlist
    }
    /// Request headers forwarded upstream: exact names and `name-*` prefix entries (lowercase).
    pub fn header_forward_allowlist(&self) -> &HeaderAllowlist {
        &self.header_forward_allowlist
    }
    /// Response headers returned to the workload: exact names and `name-*` prefix entries (lowercase).
    pub fn response_header_allowlist(&self) -> &HeaderAllowlist {
        &self.response_header_allowlist
    }
    pub fn body_policy(&self) -> &BodyPolicy {
        &self.body_policy
    }
    /// JSON pointers into a JSON request body that an approver sees.
    pub fn approval_preview(&self) -> &[String] {
        &self.approval_preview
    }
    pub fn duplicate_query_keys(&self) -> &DuplicateQueryKeys {
        &self.duplicate_query_keys
    }
    /// `constraints.allow_encoded_slashes`: whether this group admits paths with an encoded `/` or
    /// `\` (`%2F`, `%5C`) in a segment. Off by default.
    pub fn allows_encoded_slashes(&self) -> bool {
        self.allow_encoded_slashes
    }
    /// True when this group admits `method` on the normalized `path`. A path with an encoded `/` or
    /// `\` in a segment is admitted only by a group that allows encoded slashes: otherwise a pattern
    /// written for one segment (`[^/]+`) would match what an upstream that decodes `%2F` reads as
    /// several.
    pub fn matches(&self, method: Method, path: &str) -> bool {
        self.methods.contains(&method)
            && (self.allow_encoded_slashes || !has_encoded_separator(path))
            && self.patterns.iter().any(|p| p.is_match(path))
    }
}

impl Template {
    /// Parses and validates a template as published. Unknown fields → `template_invalid`; then each rule
    /// of the spec in its order, the first failure winning.
    pub fn from_json(value: &Value) -> Result<Self, TemplateError> {
        let raw: RawTemplate = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            invalid(format!("template is malformed at {path}: {}", e.into_inner()))
        })?;
        check_template_id(&raw.template_id)?;
        if raw.provider.is_empty() || raw.provider.len() > 64 {
            return Err(invalid("provider must be 1-64 characters".into()));
        }
        if raw.version < 1 {
            return Err(invalid("version must be at least 1".into()));
        }
        if raw.allowed_schemes != ["https"] {
            return Err(invalid(format!(
                "allowed_schemes must be exactly [\"https\"], got {:?}",
                raw.allowed_schemes
            )));
        }
        let ports = check_ports(&raw.allowed_ports)?;
        if raw.redirect_policy.mode != "deny" {
            return Err(invalid(format!(
                "redirect_policy.mode must be \"deny\", got {:?}",
                raw.redirect_policy.mode
            )));
        }
        let default_injection = match &raw.default_injection {
            Some(v) => Some(injection::parse(v, ErrorCode::TemplateInvalid)?),
            None => None,
        };
        let hosts = check_hosts(&raw.allowed_hosts)?;
        if raw.path_groups.is_empty() {
            return Err(invalid("path_groups must not be empty".into()));
        }
        let mut seen = HashSet::new();
        let mut groups = Vec::with_capacity(raw.path_groups.len());
        for (i, group) in raw.path_groups.into_iter().enumerate() {
            if !seen.insert(group.group_id.clone()) {
                return Err(TemplateError::new(
                    ErrorCode::TemplateGroupDuplicate,
                    format!("path_groups[{i}]: group_id {:?} is used twice", group.group_id),
                ));
            }
            groups.push(check_group(i, group)?);
        }
        let _ = raw.description;
        Ok(Template {
            id: raw.template_id,
            version: raw.version,
            provider: raw.provider,
            schemes: raw.allowed_schemes,
            ports,
            hosts,
            default_injection,
            groups,
            source: value.clone(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn provider(&self) -> &str {
        &self.provider
    }
    /// Allowed schemes (always `["https"]` today).
    pub fn schemes(&self) -> &[String] {
        &self.schemes
    }
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
    /// Normalized hosts: lowercase ASCII (IDNA applied), no trailing dot, IPv6 in brackets (RFC 5952).
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }
    pub fn default_injection(&self) -> Option<&Injection> {
        self.default_injection.as_ref()
    }
    /// Groups in template order.
    pub fn groups(&self) -> &[PathGroup] {
        &self.groups
    }
    pub fn group(&self, id: &str) -> Option<&PathGroup> {
        self.groups.iter().find(|g| g.id == id)
    }
    /// The first group, in template order, admitting `method` on the normalized `path`.
    pub fn select_group(&self, method: Method, path: &str) -> Option<&PathGroup> {
        self.groups.iter().find(|g| g.matches(method, path))
    }
    /// The template as published (for storage and for re-validation).
    pub fn to_json(&self) -> &Value {
        &self.source
    }
    /// The RFC 8785 (JCS) serialization of the published JSON: equal strings mean identical bodies.
    pub fn canonical_json(&self) -> String {
        // Serializing a `serde_json::Value` cannot fail: its keys are strings and its numbers finite.
        serde_jcs::to_string(&self.source).unwrap_or_default()
    }
}

fn invalid(message: String) -> TemplateError {
    TemplateError::new(ErrorCode::TemplateInvalid, message)
}

fn check_template_id(id: &str) -> Result<(), TemplateError> {
    let ok = id.strip_prefix("tpl_").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 64
            && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("template_id {id:?} must match ^tpl_[a-z0-9_]+$ (at most 64 after tpl_)")))
    }
}

fn check_ports(raw: &[u64]) -> Result<Vec<u16>, TemplateError> {
    if raw.is_empty() {
        return Err(invalid("allowed_ports must not be empty".into()));
    }
    let mut ports = Vec::with_capacity(raw.len());
    for &port in raw {
        let port = u16::try_from(port)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| invalid(format!("allowed_ports: {port} is not in 1-65535")))?;
        if ports.contains(&port) {
            return Err(TemplateError::new(
                ErrorCode::TemplateAllowlistDuplicate,
                format!("allowed_ports: {port} is listed twice"),
            ));
        }
        ports.push(port);
    }
    Ok(ports)
}

fn check_hosts(raw: &[String]) -> Result<Vec<String>, TemplateError> {
    if raw.is_empty() {
        return Err(invalid("allowed_hosts must not be empty".into()));
    }
    let mut hosts: Vec<String> = Vec::with_capacity(raw.len());
    for entry in raw {
        let trimmed = entry.trim();
        if trimmed.contains('*') {
            return Err(TemplateError::new(
                ErrorCode::TemplateHostWildcardForbidden,
                format!("allowed_hosts: {entry:?} is a wildcard; list each host"),
            ));
        }
        let host = crate::host::normalize_host(trimmed).map_err(|why| {
            TemplateError::new(ErrorCode::TemplateHostInvalid, format!("allowed_hosts: {why}"))
        })?;
        if hosts.contains(&host) {
            return Err(TemplateError::new(
                ErrorCode::TemplateAllowlistDuplicate,
                format!("allowed_hosts: {entry:?} normalizes to {host:?}, which is already listed"),
            ));
        }
        hosts.push(host);
    }
    Ok(hosts)
}

fn check_group(i: usize, raw: RawGroup) -> Result<PathGroup, TemplateError> {
    let at = |field: &str| format!("path_groups[{i}].{field}");
    let id_ok = (1..=64).contains(&raw.group_id.len())
        && raw
            .group_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'));
    if !id_ok {
        return Err(invalid(format!(
            "{}: {:?} must be 1-64 of a-z, 0-9, '_', '-', '.'",
            at("group_id"),
            raw.group_id
        )));
    }
    let risk_tier = match raw.risk_tier.as_str() {
        "low" => RiskTier::Low,
        "medium" => RiskTier::Medium,
        "high" => RiskTier::High,
        other => return Err(invalid(format!("{}: {other:?} is not low, medium or high", at("risk_tier")))),
    };
    let approval_mode = match raw.approval_mode.as_str() {
        "none" => ApprovalMode::None,
        "required" => ApprovalMode::Required,
        other => return Err(invalid(format!("{}: {other:?} is not none or required", at("approval_mode")))),
    };
    let methods = check_methods(&at("methods"), &raw.methods)?;
    if raw.path_patterns.is_empty() {
        return Err(invalid(format!("{} must not be empty", at("path_patterns"))));
    }
    let patterns = raw
        .path_patterns
        .iter()
        .enumerate()
        .map(|(j, p)| {
            PathPattern::compile(p).map_err(|e| {
                TemplateError::new(e.code(), format!("path_groups[{i}].path_patterns[{j}]: {}", e.message()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let header_forward_allowlist =
        HeaderAllowlist::parse(&at("header_forward_allowlist"), &raw.header_forward_allowlist)?;
    let response_header_allowlist = match &raw.response_header_allowlist {
        Some(list) => HeaderAllowlist::parse(&at("response_header_allowlist"), list)?,
        None => {
            let mut list = vec!["content-type".to_owned()];
            list.extend(header_forward_allowlist.iter().filter(|h| *h != "content-type").cloned());
            HeaderAllowlist::from_validated(list)
        }
    };
    let approval_preview = check_pointers(&at("approval_preview"), raw.approval_preview)?;
    let body_policy = check_body_policy(&at("body_policy"), raw.body_policy)?;
    let constraints = raw.constraints.unwrap_or_default();
    let allow_encoded_slashes = constraints.allow_encoded_slashes.unwrap_or(false);
    let duplicate_query_keys = match constraints.allow_duplicate_query_keys {
        None | Some(RawDuplicateKeys::All(false)) => DuplicateQueryKeys::Forbidden,
        Some(RawDuplicateKeys::All(true)) => DuplicateQueryKeys::AllowAll,
        Some(RawDuplicateKeys::Keys(keys)) => {
            DuplicateQueryKeys::Allow(check_query_keys(&at("constraints.allow_duplicate_query_keys"), keys)?)
        }
    };
    let query_allowlist = check_query_keys(&at("query_allowlist"), raw.query_allowlist)?;
    if let Some(description) = &raw.description
        && (description.len() > 1024 || description.chars().any(char::is_control))
    {
        return Err(invalid(format!(
            "{} must be at most 1024 bytes without control characters",
            at("description")
        )));
    }
    Ok(PathGroup {
        id: raw.group_id,
        description: raw.description,
        risk_tier,
        approval_mode,
        methods,
        patterns,
        query_allowlist,
        header_forward_allowlist,
        response_header_allowlist,
        body_policy,
        approval_preview,
        duplicate_query_keys,
        allow_encoded_slashes,
    })
}

fn check_methods(field: &str, raw: &[String]) -> Result<Vec<Method>, TemplateError> {
    if raw.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    let mut methods = Vec::with_capacity(raw.len());
    for name in raw {
        let method = Method::parse(name).ok_or_else(|| {
            invalid(format!("{field}: {name:?} is not one of GET HEAD POST PUT PATCH DELETE"))
        })?;
        if methods.contains(&method) {
            return Err(invalid(format!("{field}: {name} is listed twice")));
        }
        methods.push(method);
    }
    Ok(methods)
}

fn check_query_keys(field: &str, raw: Vec<String>) -> Result<Vec<String>, TemplateError> {
    let mut keys: Vec<String> = Vec::with_capacity(raw.len());
    for key in raw {
        let allowed_chars =
            key.bytes().all(|b| crate::percent::is_unreserved(b) || b"!$'()*+,;:@/?%".contains(&b));
        if key.is_empty() || !allowed_chars || normalize_percent(&key).ok().as_deref() != Some(key.as_str()) {
            return Err(invalid(format!(
                "{field}: {key:?} is not a non-empty, percent-normalized query key (no '&', '=', '#', spaces)"
            )));
        }
        if keys.contains(&key) {
            return Err(TemplateError::new(
                ErrorCode::TemplateAllowlistDuplicate,
                format!("{field}: {key:?} is listed twice"),
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn check_pointers(field: &str, raw: Vec<String>) -> Result<Vec<String>, TemplateError> {
    for pointer in &raw {
        let escapes_ok = pointer.split('~').skip(1).all(|rest| rest.starts_with(['0', '1']));
        if !pointer.starts_with('/') || !escapes_ok {
            return Err(invalid(format!(
                "{field}: {pointer:?} is not a JSON pointer (RFC 6901) into the body"
            )));
        }
    }
    Ok(raw)
}

fn check_body_policy(field: &str, raw: Option<RawBodyPolicy>) -> Result<BodyPolicy, TemplateError> {
    let Some(raw) = raw else { return Ok(BodyPolicy { max_bytes: 0, content_types: Vec::new() }) };
    let mut content_types: Vec<String> = Vec::with_capacity(raw.content_types.len());
    for entry in &raw.content_types {
        let lower = entry.to_ascii_lowercase();
        if !http::is_media_type(&lower) {
            return Err(invalid(format!(
                "{field}.content_types: {entry:?} is not a type/subtype media type"
            )));
        }
        if content_types.contains(&lower) {
            return Err(TemplateError::new(
                ErrorCode::TemplateAllowlistDuplicate,
                format!("{field}.content_types: {entry:?} is listed twice"),
            ));
        }
        content_types.push(lower);
    }
    Ok(BodyPolicy { max_bytes: raw.max_bytes, content_types })
}
