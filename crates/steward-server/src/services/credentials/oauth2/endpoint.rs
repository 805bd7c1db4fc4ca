//! The token endpoint exchange, pure parts: the stored `oauth2` configuration, the form request of
//! RFC 6749 §6 (refresh) and §4.4 (client credentials) with `client_secret_post` or
//! `client_secret_basic` (§2.3.1), and the answer (§5.1 success, §5.2 error).
//!
//! Nothing here logs, and no error carries a token, a secret or the endpoint's free-text
//! `error_description`: only the endpoint's `error` code (when it is a well-formed RFC 6749 code),
//! an HTTP status or a fixed reason.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use zeroize::Zeroizing;

/// Lifetime assumed when the endpoint omits `expires_in` (RFC 6749 makes it RECOMMENDED only).
pub const DEFAULT_EXPIRES_IN_SECONDS: i64 = 3600;
/// Longest lifetime believed: a year (a larger value is clamped, never trusted blindly).
const MAX_EXPIRES_IN_SECONDS: i64 = 365 * 24 * 3600;

/// The grant a secret type stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// `oauth2_refresh_token`: the secret is the refresh token.
    RefreshToken,
    /// `oauth2_client_credentials`: the secret is the client secret.
    ClientCredentials,
}

impl Grant {
    pub fn from_secret_type(secret_type: &str) -> Option<Self> {
        match secret_type {
            "oauth2_refresh_token" => Some(Grant::RefreshToken),
            "oauth2_client_credentials" => Some(Grant::ClientCredentials),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Post,
    Basic,
}

/// The `oauth2` block as stored (without the client secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Config {
    pub token_host: String,
    pub token_port: u16,
    /// Origin-form path and query of the token URL.
    pub path: String,
    pub query: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub auth_method: AuthMethod,
}

impl OAuth2Config {
    /// Parses the stored block; `None` when it is missing or not what the admin API writes.
    pub fn from_stored(value: &Value) -> Option<Self> {
        let url = url::Url::parse(value.get("token_url")?.as_str()?).ok()?;
        if url.scheme() != "https" {
            return None;
        }
        let token_host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
        let client_id = value.get("client_id")?.as_str()?.to_owned();
        let scopes = value
            .get("scopes")?
            .as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        let auth_method = match value.get("auth_method")?.as_str()? {
            "client_secret_post" => AuthMethod::Post,
            "client_secret_basic" => AuthMethod::Basic,
            _ => return None,
        };
        Some(Self {
            token_host,
            token_port: url.port_or_known_default()?,
            path: url.path().to_owned(),
            query: url.query().unwrap_or_default().to_owned(),
            client_id,
            scopes,
            auth_method,
        })
    }
}

/// The form request: headers and body, both wiped when dropped.
pub struct TokenRequest {
    pub headers: Vec<(String, Zeroizing<String>)>,
    pub body: Zeroizing<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest").finish_non_exhaustive()
    }
}

/// Builds the token request. `secret` is the refresh token (refresh grant) or the client secret
/// (client credentials); `client_secret` the separately stored client secret of a refresh-token
/// integration (`None` for a public client).
pub fn token_request(
    config: &OAuth2Config,
    grant: Grant,
    secret: &str,
    client_secret: Option<&str>,
) -> TokenRequest {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    let client_secret = match grant {
        Grant::RefreshToken => {
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", secret);
            client_secret
        }
        Grant::ClientCredentials => {
            form.append_pair("grant_type", "client_credentials");
            Some(secret)
        }
    };
    if !config.scopes.is_empty() {
        form.append_pair("scope", &config.scopes.join(" "));
    }
    let mut headers = vec![
        ("content-type".to_owned(), Zeroizing::new("application/x-www-form-urlencoded".to_owned())),
        ("accept".to_owned(), Zeroizing::new("application/json".to_owned())),
    ];
    match (config.auth_method, client_secret) {
        (AuthMethod::Basic, Some(client_secret)) => {
            // RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding.
            let mut pair = Zeroizing::new(String::new());
            pair.push_str(&form_encode(&config.client_id));
            pair.push(':');
            pair.push_str(&form_encode(client_secret));
            let mut value = Zeroizing::new("Basic ".to_owned());
            value.push_str(&STANDARD.encode(pair.as_bytes()));
            headers.push(("authorization".to_owned(), value));
        }
        (AuthMethod::Post, Some(client_secret)) => {
            form.append_pair("client_id", &config.client_id);
            form.append_pair("client_secret", client_secret);
        }
        // A public client (no secret) identifies itself with client_id alone (§3.2.1).
        (_, None) => {
            form.append_pair("client_id", &config.client_id);
        }
    }
    TokenRequest { headers, body: Zeroizing::new(form.finish()) }
}

fn form_encode(text: &str) -> Zeroizing<String> {
    Zeroizing::new(url::form_urlencoded::byte_serialize(text.as_bytes()).collect())
}

/// A successful answer (§5.1).
pub struct TokenAnswer {
    pub access_token: Zeroizing<String>,
    pub expires_in: i64,
    pub refresh_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// Why the endpoint gave no usable token: a short code for the message and the audit (an RFC 6749
/// error code such as `invalid_grant`, or `http_<status>`, `invalid_token_response`) — never a
/// token or free text from the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: String,
    /// Whether retrying with the same secret cannot help (the secret must be written again).
    pub permanent: bool,
}

/// Reads the endpoint's answer.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<TokenAnswer, Refused> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if status != 200 {
        let code = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .filter(|c| is_error_code(c))
            .map(str::to_owned);
        return Err(match code {
            Some(code) if (400..500).contains(&status) => {
                let permanent = matches!(
                    code.as_str(),
                    "invalid_grant"
                        | "invalid_client"
                        | "unauthorized_client"
                        | "unsupported_grant_type"
                        | "invalid_scope"
                );
                Refused { code, permanent }
            }
            _ => Refused { code: format!("http_{status}"), permanent: false },
        });
    }
    let malformed = || Refused { code: "invalid_token_response".to_owned(), permanent: false };
    let json = json.ok_or_else(malformed)?;
    let access_token = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| is_token_text(t))
        .ok_or_else(malformed)?;
    let token_type = json.get("token_type").and_then(Value::as_str).ok_or_else(malformed)?;
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(Refused { code: "unsupported_token_type".to_owned(), permanent: false });
    }
    let expires_in = match json.get("expires_in") {
        None | Some(Value::Null) => DEFAULT_EXPIRES_IN_SECONDS,
        Some(Value::Number(n)) => {
            n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).ok_or_else(malformed)?
        }
        // Some providers send it as a string.
        Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| malformed())?,
        Some(_) => return Err(malformed()),
    };
    if expires_in <= 0 {
        return Err(malformed());
    }
    let refresh_token = match json.get("refresh_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if is_token_text(t) => Some(Zeroizing::new(t.clone())),
        Some(_) => return Err(malformed()),
    };
    Ok(TokenAnswer {
        access_token: Zeroizing::new(access_token.to_owned()),
        expires_in: expires_in.min(MAX_EXPIRES_IN_SECONDS),
        refresh_token,
    })
}

/// RFC 6749 §5.2 `error`: `%x20-21 / %x23-5B / %x5D-7E`; kept to a short identifier here so it can go
/// into messages and the audit as is.
fn is_error_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// A token Steward can inject and scrub: 8 to 16 KiB of visible ASCII.
fn is_token_text(token: &str) -> bool {
    (8..=16 * 1024).contains(&token.len()) && token.bytes().all(|b| (0x21..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn config(method: &str, scopes: &[&str]) -> OAuth2Config {
        OAuth2Config::from_stored(&json!({
            "token_url": "https://oauth2.example.com:8443/token?x=1",
            "client_id": "client id:1",
            "scopes": scopes,
            "auth_method": method,
            "client_secret_set": true,
        }))
        .unwrap()
    }

    #[test]
    fn the_stored_config_parses() {
        let c = config("client_secret_basic", &["a", "b"]);
        assert_eq!(
            (c.token_host.as_str(), c.token_port, c.path.as_str(), c.query.as_str()),
            ("oauth2.example.com", 8443, "/token", "x=1")
        );
        assert_eq!(c.auth_method, AuthMethod::Basic);
        assert!(OAuth2Config::from_stored(&json!({"token_url": "http://x/token", "client_id": "c", "scopes": [], "auth_method": "client_secret_post"})).is_none());
        assert_eq!(OAuth2Config::from_stored(&json!({"token_url": "https://x/t", "client_id": "c", "scopes": [], "auth_method": "client_secret_post"})).unwrap().token_port, 443);
    }

    #[test]
    fn refresh_with_post_puts_the_client_in_the_form() {
        let r = token_request(
            &config("client_secret_post", &["s1", "s2"]),
            Grant::RefreshToken,
            "rt/+=x",
            Some("cs&y"),
        );
        assert_eq!(
            r.body.as_str(),
            "grant_type=refresh_token&refresh_token=rt%2F%2B%3Dx&scope=s1+s2&client_id=client+id%3A1&client_secret=cs%26y"
        );
        assert!(!r.headers.iter().any(|(n, _)| n == "authorization"));
        assert!(r.headers.iter().any(|(n, v)| n == "accept" && v.as_str() == "application/json"));
    }

    #[test]
    fn client_credentials_with_basic_encodes_both_parts() {
        let r =
            token_request(&config("client_secret_basic", &[]), Grant::ClientCredentials, "s:e cret", None);
        assert_eq!(r.body.as_str(), "grant_type=client_credentials");
        let (_, value) = r.headers.iter().find(|(n, _)| n == "authorization").unwrap();
        let decoded = STANDARD.decode(value.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "client+id%3A1:s%3Ae+cret");
    }

    #[test]
    fn a_public_client_sends_its_id_only() {
        let r =
            token_request(&config("client_secret_basic", &[]), Grant::RefreshToken, "refresh-token", None);
        assert_eq!(
            r.body.as_str(),
            "grant_type=refresh_token&refresh_token=refresh-token&client_id=client+id%3A1"
        );
    }

    #[test]
    fn answers_are_parsed_strictly() {
        let ok = parse_answer(200, br#"{"access_token":"at-12345678","token_type":"bearer","expires_in":"120","refresh_token":"rt-12345678"}"#).unwrap();
        assert_eq!((ok.access_token.as_str(), ok.expires_in), ("at-12345678", 120));
        assert_eq!(ok.refresh_token.unwrap().as_str(), "rt-12345678");
        assert_eq!(
            parse_answer(200, br#"{"access_token":"at-12345678","token_type":"Bearer"}"#).unwrap().expires_in,
            3600
        );
        for bad in [
            &br#"{"token_type":"Bearer"}"#[..],
            br#"{"access_token":"at-12345678"}"#,
            b"<html>",
            br#"{"access_token":"a b c d e f","token_type":"Bearer"}"#,
            br#"{"access_token":"at-12345678","token_type":"Bearer","expires_in":-1}"#,
        ] {
            assert_eq!(parse_answer(200, bad).unwrap_err().code, "invalid_token_response");
        }
        assert_eq!(
            parse_answer(200, br#"{"access_token":"at-12345678","token_type":"mac"}"#).unwrap_err().code,
            "unsupported_token_type"
        );
        assert_eq!(
            parse_answer(400, br#"{"error":"invalid_grant","error_description":"rt-secret leaked?"}"#)
                .unwrap_err(),
            Refused { code: "invalid_grant".into(), permanent: true }
        );
        assert_eq!(
            parse_answer(400, br#"{"error":"temporarily_unavailable"}"#).unwrap_err(),
            Refused { code: "temporarily_unavailable".into(), permanent: false }
        );
        assert_eq!(parse_answer(503, br#"{"error":"invalid_grant"}"#).unwrap_err().code, "http_503");
        assert_eq!(
            parse_answer(400, br#"{"error":"at-12345678 with spaces"}"#).unwrap_err().code,
            "http_400"
        );
    }
}
