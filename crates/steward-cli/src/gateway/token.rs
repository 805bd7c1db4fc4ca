//! The gateway's local capability: `stw_gw_` + 43 base64url characters, random per start or kept in
//! `--token-file` (read when it exists, else generated and written with mode 0600). Presented as
//! `authorization: Bearer …`, `x-api-key` or `api-key` — the slots SDKs fill with their API key —
//! and compared in constant time.

use std::path::Path;

use zeroize::Zeroizing;

const PREFIX: &str = "stw_gw_";

/// The token this gateway accepts. `Debug` is redacted.
#[derive(Clone)]
pub struct LocalToken {
    value: Zeroizing<String>,
    hash: [u8; 32],
}

impl std::fmt::Debug for LocalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalToken([REDACTED])")
    }
}

/// The request headers that may carry the local token; all are removed before forwarding.
pub const TOKEN_HEADERS: [&str; 3] = ["authorization", "x-api-key", "api-key"];

impl LocalToken {
    pub fn generate() -> Self {
        Self::from_value(steward_crypto::generate_token(PREFIX).expose().to_owned())
    }

    fn from_value(value: String) -> Self {
        let hash = steward_crypto::hash_token(&value);
        Self { value: Zeroizing::new(value), hash }
    }

    /// `--token-file F`: the token in F when F exists (it must be a gateway token), else a new one
    /// written to F with mode 0600 (never replacing a file that appeared meanwhile).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let value = text.trim();
                if !is_well_formed(value) {
                    return Err(format!(
                        "{}: not a gateway token (expected {PREFIX} and 43 base64url characters); remove the \
                         file to have a new one generated",
                        path.display()
                    ));
                }
                Ok(Self::from_value(value.to_owned()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let token = Self::generate();
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                file.write_all(format!("{}\n", token.expose()).as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(token)
            }
            Err(error) => Err(format!("{}: {error}", path.display())),
        }
    }

    /// The token itself (for `--print-env` and the child's environment only).
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether a presented value is this token (constant time over the hashes).
    pub fn matches(&self, presented: &str) -> bool {
        steward_crypto::hashes_equal(&self.hash, &steward_crypto::hash_token(presented))
    }

    /// Whether any of the three slots carries this token (`authorization` with the `Bearer` scheme).
    pub fn accepts(&self, headers: &http::HeaderMap) -> bool {
        let mut accepted = false;
        for name in TOKEN_HEADERS {
            for value in headers.get_all(name) {
                let Ok(value) = value.to_str() else { continue };
                let presented = if name == "authorization" {
                    match value.split_once(' ') {
                        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                        _ => continue,
                    }
                } else {
                    value.trim()
                };
                // No early exit: every slot is checked, so timing says nothing about which matched.
                accepted |= self.matches(presented);
            }
        }
        accepted
    }
}

fn is_well_formed(value: &str) -> bool {
    value.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn tokens_are_well_formed_and_random() {
        let token = LocalToken::generate();
        assert!(is_well_formed(token.expose()), "{}", token.expose());
        assert_ne!(token.expose(), LocalToken::generate().expose());
        assert_eq!(format!("{token:?}"), "LocalToken([REDACTED])");
    }

    #[test]
    fn every_slot_is_accepted_and_nothing_else() {
        let token = LocalToken::generate();
        let value = token.expose().to_owned();
        assert!(token.accepts(&headers(&[("authorization", &format!("Bearer {value}"))])));
        assert!(token.accepts(&headers(&[("authorization", &format!("bearer {value}"))])));
        assert!(token.accepts(&headers(&[("x-api-key", &value)])));
        assert!(token.accepts(&headers(&[("api-key", &value)])));
        assert!(!token.accepts(&headers(&[])));
        assert!(!token.accepts(&headers(&[("authorization", &value)])), "no scheme");
        assert!(!token.accepts(&headers(&[("authorization", &format!("Basic {value}"))])));
        assert!(!token.accepts(&headers(&[("x-api-key", &format!("{value}x"))])));
        assert!(!token.accepts(&headers(&[("x-other", &value)])));
        let other = LocalToken::generate();
        assert!(!token.accepts(&headers(&[("x-api-key", other.expose())])));
    }

    #[test]
    fn the_token_file_is_created_private_then_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let first = LocalToken::from_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let second = LocalToken::from_file(&path).unwrap();
        assert_eq!(first.expose(), second.expose());
        std::fs::write(&path, "not a token\n").unwrap();
        assert!(LocalToken::from_file(&path).unwrap_err().contains("not a gateway token"));
    }
}
