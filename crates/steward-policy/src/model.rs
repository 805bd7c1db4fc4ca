//! The validated rule. [`PolicyRule::from_json`] is the only way to build one, so every value of
//! these types satisfies the rules of `spec/pipeline.md` "Policy"; [`PolicyRule::to_json`] gives
//! its normalized form (method uppercase, defaults spelled out) for storage and display.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use steward_types::{IntegrationId, TenantId, WorkloadId};

use crate::raw::{RawConstraints, RawRateLimit, RawRule, RawScope};
use crate::{METHODS, PolicyError};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleType {
    Allow,
    Deny,
    ApprovalRequired,
    RateLimit,
}

impl RuleType {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleType::Allow => "allow",
            RuleType::Deny => "deny",
            RuleType::ApprovalRequired => "approval_required",
            RuleType::RateLimit => "rate_limit",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "allow" => Some(RuleType::Allow),
            "deny" => Some(RuleType::Deny),
            "approval_required" => Some(RuleType::ApprovalRequired),
            "rate_limit" => Some(RuleType::RateLimit),
            _ => None,
        }
    }
}

/// Which calls a rule applies to. The first five fields always match exactly; the optional ones
/// narrow the rule further when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub tenant_id: TenantId,
    pub integration_id: IntegrationId,
    pub action_group: String,
    /// Uppercase, one of [`METHODS`].
    pub method: String,
    /// A bare lowercase host; IPv6 literals in brackets, RFC 5952 (as in canonical requests).
    pub host: String,
    pub workload_id: Option<WorkloadId>,
    pub template_id: Option<String>,
    pub template_version: Option<u64>,
    /// Unique and sorted; `[]` means "no query".
    pub query_keys: Option<Vec<String>>,
}

/// Conditions an allow rule needs to hold (all listed must).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Constraints {
    pub max_body_bytes: Option<u64>,
    pub allowed_query_keys: Option<Vec<String>>,
    pub body_json: Vec<BodyJsonCheck>,
}

/// One check on a JSON request body at `pointer`.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyJsonCheck {
    pub pointer: String,
    pub check: BodyCheck,
}

/// The kinds of body checks.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyCheck {
    AllowedValues(Vec<Value>),
    MaxLength(u64),
    MaxNumber(f64),
    AllowedEmailDomains(Vec<String>),
    AllowedEmails(Vec<String>),
}

impl BodyCheck {
    const KINDS: [&'static str; 5] =
        ["allowed_values", "max_length", "max_number", "allowed_email_domains", "allowed_emails"];
}

/// Whose bucket a rate limit fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitPer {
    Workload,
    Rule,
}

impl RateLimitPer {
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitPer::Workload => "workload",
            RateLimitPer::Rule => "rule",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max_requests: u64,
    pub interval_seconds: u64,
    pub per: RateLimitPer,
}

/// A validated policy rule.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRule {
    rule_type: RuleType,
    scope: Scope,
    constraints: Option<Constraints>,
    rate_limit: Option<RateLimit>,
    bypass_template_approval: bool,
    description: Option<String>,
}

/// Longest accepted description, in bytes.
const MAX_DESCRIPTION: usize = 1024;
/// Longest rate-limit interval: one year.
const MAX_INTERVAL_SECONDS: u64 = 366 * 24 * 3600;

impl PolicyRule {
    /// Parses and validates a rule as written; the first failure wins.
    pub fn from_json(value: &Value) -> Result<Self, PolicyError> {
        let raw: RawRule = section("rule", value)?;
        let rule_type = RuleType::parse(&raw.rule_type).ok_or_else(|| {
            PolicyError::new(
                "rule_type",
                format!("{:?} is not allow, deny, approval_required or rate_limit", raw.rule_type),
            )
        })?;
        let scope = check_scope(section("scope", &raw.scope)?)?;
        let constraints = match &raw.constraints {
            None | Some(Value::Null) => None,
            // Any rule type: an allow rule's constraints must hold for it to allow; a deny,
            // approval-required or rate-limit rule with constraints applies only where they hold.
            Some(value) => Some(check_constraints(section("constraints", value)?)?),
        };
        let rate_limit = match &raw.rate_limit {
            None | Some(Value::Null) => None,
            Some(value) => Some(check_rate_limit(section("rate_limit", value)?)?),
        };
        match (rule_type, rate_limit.is_some()) {
            (RuleType::RateLimit, false) => {
                return Err(PolicyError::new("rate_limit", "a rate_limit rule needs a rate_limit block"));
            }
            (RuleType::RateLimit, true) | (_, false) => {}
            (_, true) => {
                return Err(PolicyError::new("rate_limit", "only rate_limit rules have a rate_limit block"));
            }
        }
        let bypass_template_approval = raw.bypass_template_approval.unwrap_or(false);
        if bypass_template_approval && rule_type != RuleType::Allow {
            return Err(PolicyError::new("bypass_template_approval", "may only be true on allow rules"));
        }
        if let Some(description) = &raw.description
            && (description.len() > MAX_DESCRIPTION || description.chars().any(char::is_control))
        {
            return Err(PolicyError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION} bytes without control characters"),
            ));
        }
        Ok(PolicyRule {
            rule_type,
            scope,
            constraints,
            rate_limit,
            bypass_template_approval,
            description: raw.description,
        })
    }

    pub fn rule_type(&self) -> RuleType {
        self.rule_type
    }
    pub fn scope(&self) -> &Scope {
        &self.scope
    }
    pub fn constraints(&self) -> Option<&Constraints> {
        self.constraints.as_ref()
    }
    pub fn rate_limit(&self) -> Option<&RateLimit> {
        self.rate_limit.as_ref()
    }
    pub fn bypass_template_approval(&self) -> bool {
        self.bypass_template_approval
    }
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The normalized JSON form; `from_json(to_json())` gives the same rule back.
    pub fn to_json(&self) -> Value {
        let s = &self.scope;
        let mut scope = Map::new();
        scope.insert("tenant_id".into(), s.tenant_id.as_str().into());
        scope.insert("integration_id".into(), s.integration_id.as_str().into());
        scope.insert("action_group".into(), s.action_group.clone().into());
        scope.insert("method".into(), s.method.clone().into());
        scope.insert("host".into(), s.host.clone().into());
        if let Some(w) = &s.workload_id {
            scope.insert("workload_id".into(), w.as_str().into());
        }
        if let Some(t) = &s.template_id {
            scope.insert("template_id".into(), t.clone().into());
        }
        if let Some(v) = s.template_version {
            scope.insert("template_version".into(), v.into());
        }
        if let Some(keys) = &s.query_keys {
            scope.insert("query_keys".into(), json!(keys));
        }
        let mut rule = Map::new();
        rule.insert("rule_type".into(), self.rule_type.as_str().into());
        rule.insert("scope".into(), Value::Object(scope));
        if let Some(c) = &self.constraints {
            rule.insert("constraints".into(), constraints_json(c));
        }
        if let Some(r) = &self.rate_limit {
            rule.insert(
                "rate_limit".into(),
                json!({"max_requests": r.max_requests, "interval_seconds": r.interval_seconds, "per": r.per.as_str()}),
            );
        }
        rule.insert("bypass_template_approval".into(), self.bypass_template_approval.into());
        if let Some(d) = &self.description {
            rule.insert("description".into(), d.clone().into());
        }
        Value::Object(rule)
    }
}

fn constraints_json(c: &Constraints) -> Value {
    let mut out = Map::new();
    if let Some(n) = c.max_body_bytes {
        out.insert("max_body_bytes".into(), n.into());
    }
    if let Some(keys) = &c.allowed_query_keys {
        out.insert("allowed_query_keys".into(), json!(keys));
    }
    if !c.body_json.is_empty() {
        let checks = c
            .body_json
            .iter()
            .map(|check| {
                let (kind, value) = match &check.check {
                    BodyCheck::AllowedValues(v) => ("allowed_values", json!(v)),
                    BodyCheck::MaxLength(n) => ("max_length", json!(n)),
                    BodyCheck::MaxNumber(n) => ("max_number", json!(n)),
                    BodyCheck::AllowedEmailDomains(d) => ("allowed_email_domains", json!(d)),
                    BodyCheck::AllowedEmails(e) => ("allowed_emails", json!(e)),
                };
                json!({"pointer": check.pointer, kind: value})
            })
            .collect::<Vec<_>>();
        out.insert("body_json".into(), Value::Array(checks));
    }
    Value::Object(out)
}

/// Deserializes one section strictly; a shape error names the section.
fn section<T: DeserializeOwned>(name: &str, value: &Value) -> Result<T, PolicyError> {
    serde_json::from_value(value.clone()).map_err(|e| PolicyError::new(name, format!("malformed: {e}")))
}

fn non_blank(field: &str, value: &str) -> Result<(), PolicyError> {
    if value.trim().is_empty() { Err(PolicyError::new(field, "must not be blank")) } else { Ok(()) }
}

fn check_scope(raw: RawScope) -> Result<Scope, PolicyError> {
    non_blank("scope.tenant_id", &raw.tenant_id)?;
    let tenant_id =
        TenantId::parse(&raw.tenant_id).map_err(|e| PolicyError::new("scope.tenant_id", e.to_string()))?;
    non_blank("scope.integration_id", &raw.integration_id)?;
    let integration_id = IntegrationId::parse(&raw.integration_id)
        .map_err(|e| PolicyError::new("scope.integration_id", e.to_string()))?;
    non_blank("scope.action_group", &raw.action_group)?;
    if raw.action_group.len() > 64 || raw.action_group.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PolicyError::new("scope.action_group", "must be at most 64 characters without spaces"));
    }
    let method = raw.method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(PolicyError::new(
            "scope.method",
            format!("{:?} is not one of {}", raw.method, METHODS.join(" ")),
        ));
    }
    let host = check_host(&raw.host)?;
    let workload_id = match &raw.workload_id {
        Some(w) => {
            non_blank("scope.workload_id", w)?;
            Some(WorkloadId::parse(w).map_err(|e| PolicyError::new("scope.workload_id", e.to_string()))?)
        }
        None => None,
    };
    if let Some(t) = &raw.template_id {
        let ok = t.strip_prefix("tpl_").is_some_and(|rest| {
            !rest.is_empty()
                && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
        if !ok {
            return Err(PolicyError::new("scope.template_id", format!("{t:?} must match ^tpl_[a-z0-9_]+$")));
        }
    }
    if raw.template_version == Some(0) {
        return Err(PolicyError::new("scope.template_version", "must be at least 1"));
    }
    if let Some(keys) = &raw.query_keys {
        check_keys("scope.query_keys", keys)?;
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(PolicyError::new("scope.query_keys", "must be unique and sorted"));
        }
    }
    Ok(Scope {
        tenant_id,
        integration_id,
        action_group: raw.action_group,
        method,
        host,
        workload_id,
        template_id: raw.template_id,
        template_version: raw.template_version,
        query_keys: raw.query_keys,
    })
}

/// A bare lowercase host: a DNS name or an IP literal (IPv6 in brackets), no scheme, port, path,
/// userinfo or wildcard. An IPv6 literal, in any RFC 3986 spelling, comes back in the RFC 5952 form
/// that templates and canonical requests use (`[::127.0.0.1]` → `[::7f00:1]`), so the rule meets them.
fn check_host(host: &str) -> Result<String, PolicyError> {
    let bad = |why: &str| PolicyError::new("scope.host", format!("{host:?} {why}"));
    if host.is_empty() {
        return Err(bad("must not be blank"));
    }
    if host.contains('*') {
        return Err(bad("is a wildcard; name one host"));
    }
    if host.contains("://") {
        return Err(bad("has a scheme; give the bare host"));
    }
    if host.contains(['/', '?', '#', '@']) {
        return Err(bad("has a path, query or userinfo; give the bare host"));
    }
    if host.starts_with('[') {
        if !host.ends_with(']') {
            return Err(bad("is not a bracketed IPv6 address (or has a port)"));
        }
        return steward_canon::normalize_host(host).map_err(|why| PolicyError::new("scope.host", why));
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("must be lowercase"));
    }
    if host.contains(':') {
        return Err(bad("has a port; give the bare host"));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(bad("is not a valid host name"));
    }
    Ok(host.to_owned())
}

fn check_keys(field: &str, keys: &[String]) -> Result<(), PolicyError> {
    for key in keys {
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control() || "&=#".contains(c)) {
            return Err(PolicyError::new(field, format!("{key:?} is not a query key")));
        }
    }
    let mut sorted = keys.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != keys.len() {
        return Err(PolicyError::new(field, "lists a key twice"));
    }
    Ok(())
}

fn check_constraints(raw: RawConstraints) -> Result<Constraints, PolicyError> {
    if let Some(keys) = &raw.allowed_query_keys {
        check_keys("constraints.allowed_query_keys", keys)?;
    }
    let mut body_json = Vec::new();
    for (i, value) in raw.body_json.unwrap_or_default().iter().enumerate() {
        body_json.push(check_body_json(&format!("constraints.body_json[{i}]"), value)?);
    }
    Ok(Constraints {
        max_body_bytes: raw.max_body_bytes,
        allowed_query_keys: raw.allowed_query_keys,
        body_json,
    })
}

fn check_body_json(field: &str, value: &Value) -> Result<BodyJsonCheck, PolicyError> {
    let object = value.as_object().ok_or_else(|| PolicyError::new(field, "must be an object"))?;
    let pointer = object
        .get("pointer")
        .and_then(Value::as_str)
        .ok_or_else(|| PolicyError::new(format!("{field}.pointer"), "is required (a JSON pointer)"))?;
    let escapes_ok = pointer.split('~').skip(1).all(|rest| rest.starts_with(['0', '1']));
    if !(pointer.is_empty() || pointer.starts_with('/')) || !escapes_ok {
        return Err(PolicyError::new(
            format!("{field}.pointer"),
            format!("{pointer:?} is not a JSON pointer"),
        ));
    }
    let mut kinds = object.keys().filter(|k| *k != "pointer");
    let (Some(kind), None) = (kinds.next(), kinds.next()) else {
        return Err(PolicyError::new(
            field,
            format!("needs exactly one of {} besides pointer", BodyCheck::KINDS.join(", ")),
        ));
    };
    let at = format!("{field}.{kind}");
    let value = &object[kind];
    let strings = |value: &Value| -> Result<Vec<String>, PolicyError> {
        let list: Vec<String> = serde_json::from_value(value.clone())
            .map_err(|_| PolicyError::new(&at, "must be a list of strings"))?;
        if list.is_empty() || list.iter().any(|s| s.trim().is_empty()) {
            return Err(PolicyError::new(&at, "must be a non-empty list of non-blank strings"));
        }
        Ok(list)
    };
    let check = match kind.as_str() {
        "allowed_values" => match value {
            Value::Array(values) if !values.is_empty() => BodyCheck::AllowedValues(values.clone()),
            _ => return Err(PolicyError::new(&at, "must be a non-empty list of JSON values")),
        },
        "max_length" => BodyCheck::MaxLength(
            value.as_u64().ok_or_else(|| PolicyError::new(&at, "must be a non-negative integer"))?,
        ),
        "max_number" => BodyCheck::MaxNumber(
            value
                .as_f64()
                .filter(|n| n.is_finite())
                .ok_or_else(|| PolicyError::new(&at, "must be a number"))?,
        ),
        "allowed_email_domains" => {
            let domains = strings(value)?;
            if let Some(bad) =
                domains.iter().find(|d| d.contains('@') || d.bytes().any(|b| b.is_ascii_uppercase()))
            {
                return Err(PolicyError::new(&at, format!("{bad:?} is not a lowercase domain")));
            }
            BodyCheck::AllowedEmailDomains(domains)
        }
        "allowed_emails" => {
            let emails = strings(value)?;
            if let Some(bad) = emails.iter().find(|e| !e.contains('@')) {
                return Err(PolicyError::new(&at, format!("{bad:?} is not an email address")));
            }
            BodyCheck::AllowedEmails(emails)
        }
        other => {
            return Err(PolicyError::new(
                field,
                format!("{other:?} is not one of pointer, {}", BodyCheck::KINDS.join(", ")),
            ));
        }
    };
    Ok(BodyJsonCheck { pointer: pointer.to_owned(), check })
}

fn check_rate_limit(raw: RawRateLimit) -> Result<RateLimit, PolicyError> {
    if raw.max_requests == 0 {
        return Err(PolicyError::new("rate_limit.max_requests", "must be at least 1"));
    }
    if raw.interval_seconds == 0 || raw.interval_seconds > MAX_INTERVAL_SECONDS {
        return Err(PolicyError::new(
            "rate_limit.interval_seconds",
            format!("must be between 1 and {MAX_INTERVAL_SECONDS}"),
        ));
    }
    let per = match raw.per.as_deref() {
        None | Some("workload") => RateLimitPer::Workload,
        Some("rule") => RateLimitPer::Rule,
        Some(other) => {
            return Err(PolicyError::new("rate_limit.per", format!("{other:?} is not workload or rule")));
        }
    };
    Ok(RateLimit { max_requests: raw.max_requests, interval_seconds: raw.interval_seconds, per })
}
