//! How a secret is put into the upstream request: a header (with a format), HTTP basic auth, or a query
//! parameter. Parsed from the integration's `injection` or the template's `default_injection`.

use serde::Deserialize;
use serde_json::{Value, json};
use steward_types::ErrorCode;

use crate::error::TemplateError;
use crate::http;
use crate::percent::is_unreserved;

/// The placeholder a header format must contain exactly once.
pub const SECRET_PLACEHOLDER: &str = "{secret}";

/// A validated injection. Read it through [`Injection::kind`]; build it only through
/// [`Injection::from_json`] or [`Injection::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    kind: InjectionKind,
}

/// The validated shape of an [`Injection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectionKind {
    /// A header `name` (lowercase) whose value is `format` with `{secret}` replaced.
    Header { name: String, format: String },
    /// `authorization: Basic base64(username:secret)`.
    Basic { username: String },
    /// A query parameter `name` carrying the secret; clients may not send that key.
    Query { name: String },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawInjection {
    Header { name: String, format: Option<String> },
    Basic { username: String },
    Query { name: String },
}

impl Default for Injection {
    /// `{"type": "header", "name": "authorization", "format": "Bearer {secret}"}`.
    fn default() -> Self {
        Self {
            kind: InjectionKind::Header { name: "authorization".into(), format: "Bearer {secret}".into() },
        }
    }
}

impl Injection {
    /// Parses and validates an injection as written on an integration; every failure is
    /// `validation_failed`.
    pub fn from_json(value: &Value) -> Result<Self, TemplateError> {
        parse(value, ErrorCode::ValidationFailed)
    }

    /// The validated shape.
    pub fn kind(&self) -> &InjectionKind {
        &self.kind
    }

    /// The query key this injection writes, which requests may therefore not carry.
    pub fn query_key(&self) -> Option<&str> {
        match &self.kind {
            InjectionKind::Query { name } => Some(name),
            _ => None,
        }
    }

    /// The header this injection writes (`authorization` for basic), which replaces any client header
    /// of that name.
    pub fn header_name(&self) -> Option<&str> {
        match &self.kind {
            InjectionKind::Header { name, .. } => Some(name),
            InjectionKind::Basic { .. } => Some("authorization"),
            InjectionKind::Query { .. } => None,
        }
    }

    /// The JSON form, as it would be written.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            InjectionKind::Header { name, format } => {
                json!({"type": "header", "name": name, "format": format})
            }
            InjectionKind::Basic { username } => json!({"type": "basic", "username": username}),
            InjectionKind::Query { name } => json!({"type": "query", "name": name}),
        }
    }
}

/// Shape errors get `shape_code` (`template_invalid` inside a template); rule violations are always
/// `validation_failed`.
pub(crate) fn parse(value: &Value, shape_code: ErrorCode) -> Result<Injection, TemplateError> {
    let raw: RawInjection = serde_json::from_value(value.clone())
        .map_err(|e| TemplateError::new(shape_code, format!("injection is malformed: {e}")))?;
    let failed = |message: String| TemplateError::new(ErrorCode::ValidationFailed, message);
    let kind = match raw {
        RawInjection::Header { name, format } => {
            let name = name.to_ascii_lowercase();
            if !http::is_token(&name) {
                return Err(failed(format!("injection header name {name:?} is not an HTTP token")));
            }
            if http::never_injectable(&name) {
                return Err(failed(format!("injection header name {name:?} may not be injected into")));
            }
            let format = format.unwrap_or_else(|| SECRET_PLACEHOLDER.to_owned());
            if format.matches(SECRET_PLACEHOLDER).count() != 1 {
                return Err(failed(format!(
                    "injection format {format:?} must contain {{secret}} exactly once"
                )));
            }
            if !format.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(failed("injection format must be visible ASCII and spaces".into()));
            }
            InjectionKind::Header { name, format }
        }
        RawInjection::Basic { username } => {
            if username.is_empty()
                || username.contains(':')
                || !username.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(failed(format!(
                    "basic injection username {username:?} must be non-empty visible ASCII without ':'"
                )));
            }
            InjectionKind::Basic { username }
        }
        RawInjection::Query { name } => {
            if name.is_empty() || !name.bytes().all(is_unreserved) {
                return Err(failed(format!(
                    "query injection name {name:?} must be non-empty letters, digits, '-', '.', '_' or '~'"
                )));
            }
            InjectionKind::Query { name }
        }
    };
    Ok(Injection { kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(value: Value) -> Option<ErrorCode> {
        Injection::from_json(&value).err().map(|e| e.code())
    }

    #[test]
    fn accepts_the_spec_forms() {
        let header =
            Injection::from_json(&json!({"type": "header", "name": "X-Api-Key", "format": "{secret}"}));
        assert_eq!(header.unwrap().header_name(), Some("x-api-key"));
        let basic = Injection::from_json(&json!({"type": "basic", "username": "api"})).unwrap();
        assert_eq!(basic.header_name(), Some("authorization"));
        let query = Injection::from_json(&json!({"type": "query", "name": "key"})).unwrap();
        assert_eq!(query.query_key(), Some("key"));
        assert_eq!(Injection::from_json(&Injection::default().to_json()).unwrap(), Injection::default());
    }

    #[test]
    fn rejects() {
        for name in [
            "host",
            "content-length",
            "transfer-encoding",
            "cookie",
            "dpop",
            "x-steward-x",
            "connection",
            "bad name",
        ] {
            assert_eq!(
                code(json!({"type": "header", "name": name})),
                Some(ErrorCode::ValidationFailed),
                "{name}"
            );
        }
        assert_eq!(
            code(json!({"type": "header", "name": "x", "format": "Bearer"})),
            Some(ErrorCode::ValidationFailed)
        );
        assert_eq!(code(json!({"type": "basic", "username": "a:b"})), Some(ErrorCode::ValidationFailed));
        assert_eq!(code(json!({"type": "query", "name": "a&b"})), Some(ErrorCode::ValidationFailed));
        assert_eq!(code(json!({"type": "cookie", "name": "a"})), Some(ErrorCode::ValidationFailed));
        assert_eq!(
            code(json!({"type": "query", "name": "k", "extra": 1})),
            Some(ErrorCode::ValidationFailed)
        );
        let in_template = parse(&json!({"type": "nope"}), ErrorCode::TemplateInvalid);
        assert_eq!(in_template.unwrap_err().code(), ErrorCode::TemplateInvalid);
    }
}
