//! Putting the secret into the outgoing request, as the integration's [`Injection`] says, and naming
//! the "needles" the scrubber must remove from the answer.
//!
//! Every string that holds the secret is a [`Zeroizing`] buffer, wiped when dropped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use steward_canon::{Injection, InjectionKind, SECRET_PLACEHOLDER};
use zeroize::Zeroizing;

use crate::error::EgressError;

/// Outgoing headers `(lowercase name, value)` whose values may hold the secret.
pub type SecretHeaders = Vec<(String, Zeroizing<String>)>;

/// Byte strings the scrubber must remove from answers.
pub type Needles = Vec<Zeroizing<Vec<u8>>>;

/// The outgoing headers and query with the secret in place, and the needles to scrub.
pub struct Injected {
    headers: SecretHeaders,
    query: Zeroizing<String>,
    needles: Needles,
}

impl std::fmt::Debug for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Injected")
            .field("header_names", &names)
            .field("needles", &self.needles.len())
            .finish_non_exhaustive()
    }
}

impl Injected {
    /// `(lowercase name, value)` in order: the client's headers (minus any of the injected name), then
    /// the injected one.
    pub fn headers(&self) -> &[(String, Zeroizing<String>)] {
        &self.headers
    }
    /// The query string without `?` (empty when there is none).
    pub fn query(&self) -> &str {
        &self.query
    }
    /// What the scrubber removes: the secret and the full injected value.
    pub fn needles(&self) -> &[Zeroizing<Vec<u8>>] {
        &self.needles
    }
    /// Splits into `(headers, query, needles)`.
    pub fn into_parts(self) -> (SecretHeaders, Zeroizing<String>, Needles) {
        (self.headers, self.query, self.needles)
    }
}

/// Applies `injection` with `secret` to the canonical `headers` (`(lowercase name, value)`) and
/// `query` (the canonical query string, without `?`).
///
/// The secret must be non-empty visible ASCII or space (the rule secrets are written under); anything
/// else is refused rather than sent malformed.
pub fn apply_injection(
    headers: &[(String, String)],
    query: &str,
    injection: &Injection,
    secret: &[u8],
) -> Result<Injected, EgressError> {
    if secret.is_empty() || !secret.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(EgressError::InvalidRequest("the secret is empty or not visible ASCII".into()));
    }
    let secret_text = Zeroizing::new(String::from_utf8_lossy(secret).into_owned());
    let mut needles = vec![Zeroizing::new(secret.to_vec())];
    let mut out_query = Zeroizing::new(query.to_owned());
    let injected_header = match injection.kind() {
        InjectionKind::Header { name, format } => {
            let value = Zeroizing::new(format.replacen(SECRET_PLACEHOLDER, &secret_text, 1));
            Some((name.clone(), value))
        }
        InjectionKind::Basic { username } => {
            let mut pair = Zeroizing::new(String::with_capacity(username.len() + 1 + secret.len()));
            pair.push_str(username);
            pair.push(':');
            pair.push_str(&secret_text);
            let encoded = Zeroizing::new(STANDARD.encode(pair.as_bytes()));
            needles.push(Zeroizing::new(encoded.as_bytes().to_vec()));
            let mut value = Zeroizing::new(String::with_capacity(6 + encoded.len()));
            value.push_str("Basic ");
            value.push_str(&encoded);
            Some(("authorization".to_owned(), value))
        }
        InjectionKind::Query { name } => {
            let encoded = percent_encode(secret);
            if !out_query.is_empty() {
                out_query.push('&');
            }
            out_query.push_str(name);
            out_query.push('=');
            out_query.push_str(&encoded);
            None
        }
    };
    let mut out_headers: SecretHeaders = Vec::with_capacity(headers.len() + 1);
    let replaced = injected_header.as_ref().map(|(name, _)| name.as_str());
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if Some(lower.as_str()) == replaced {
            continue;
        }
        out_headers.push((lower, Zeroizing::new(value.clone())));
    }
    if let Some((name, value)) = injected_header {
        if value.as_bytes() != secret {
            needles.push(Zeroizing::new(value.as_bytes().to_vec()));
        }
        out_headers.push((name, value));
    }
    Ok(Injected { headers: out_headers, query: out_query, needles })
}

/// Percent-encodes every byte that is not RFC 3986 unreserved, uppercase hex.
fn percent_encode(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len() * 3));
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn headers() -> Vec<(String, String)> {
        vec![
            ("accept".into(), "application/json".into()),
            ("x-api-key".into(), "client-supplied".into()),
            ("authorization".into(), "Bearer client".into()),
        ]
    }

    fn injection(value: serde_json::Value) -> Injection {
        Injection::from_json(&value).unwrap()
    }

    fn needle_strings(injected: &Injected) -> Vec<String> {
        injected.needles().iter().map(|n| String::from_utf8(n.to_vec()).unwrap()).collect()
    }

    #[test]
    fn default_bearer_replaces_client_authorization() {
        let out = apply_injection(&headers(), "a=1", &Injection::default(), b"s3cr3t-value").unwrap();
        let pairs: Vec<(&str, &str)> = out.headers().iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            vec![
                ("accept", "application/json"),
                ("x-api-key", "client-supplied"),
                ("authorization", "Bearer s3cr3t-value"),
            ]
        );
        assert_eq!(out.query(), "a=1");
        assert_eq!(needle_strings(&out), vec!["s3cr3t-value", "Bearer s3cr3t-value"]);
    }

    #[test]
    fn plain_header_format() {
        let inj = injection(json!({"type": "header", "name": "x-api-key", "format": "{secret}"}));
        let out = apply_injection(&headers(), "", &inj, b"s3cr3t-value").unwrap();
        let keys: Vec<(&str, &str)> = out.headers().iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert!(keys.contains(&("x-api-key", "s3cr3t-value")));
        assert!(!keys.contains(&("x-api-key", "client-supplied")));
        assert_eq!(needle_strings(&out), vec!["s3cr3t-value"]);
    }

    #[test]
    fn basic_auth() {
        let inj = injection(json!({"type": "basic", "username": "api"}));
        let out = apply_injection(&headers(), "", &inj, b"pass word").unwrap();
        let auth: Vec<&str> =
            out.headers().iter().filter(|(n, _)| n == "authorization").map(|(_, v)| v.as_str()).collect();
        let encoded = STANDARD.encode("api:pass word");
        assert_eq!(auth, vec![format!("Basic {encoded}")]);
        assert_eq!(
            needle_strings(&out),
            vec!["pass word".to_owned(), encoded.clone(), format!("Basic {encoded}")]
        );
    }

    #[test]
    fn query() {
        let inj = injection(json!({"type": "query", "name": "key"}));
        let out = apply_injection(&headers(), "limit=5", &inj, b"a b&c=d").unwrap();
        assert_eq!(out.query(), "limit=5&key=a%20b%26c%3Dd");
        assert_eq!(out.headers().len(), 3);
        let out = apply_injection(&[], "", &inj, b"abcdefgh").unwrap();
        assert_eq!(out.query(), "key=abcdefgh");
    }

    #[test]
    fn refuses_unusable_secrets() {
        for bad in [&b""[..], b"line\nbreak", b"\xff\xfe"] {
            let err = apply_injection(&[], "", &Injection::default(), bad).unwrap_err();
            assert_eq!(err.code(), steward_types::ErrorCode::InternalError);
        }
    }
}
