//! Integration secrets as written through the admin API: parsing and validating `secret` and the
//! `oauth2` block (`spec/pipeline.md` "Forwarding", "OAuth2 integrations"), and sealing them into
//! envelopes bound to their integration and version, recording the hosts and the injection the
//! secret may be sent to and with (host binding).
//!
//! Secrets arrive as untyped JSON and are taken apart by hand so that no error message — serde's
//! included, which quote the offending value — can ever repeat a secret. Messages name the field only.

use serde_json::{Map, Value, json};
use steward_canon::{Injection, Template};
use steward_store::catalog::NewSecretVersion;
use steward_types::{ErrorCode, IntegrationId, TenantId, Timestamp};
use zeroize::Zeroizing;

use crate::http::ApiError;
use crate::services::AppState;
use crate::services::credentials::envelope::{client_secret_context, seal_record, secret_context};

/// Shortest secret accepted: shorter ones could not be scrubbed from responses reliably.
const MIN_SECRET_BYTES: usize = 8;
/// Longest secret accepted (an envelope is not a file store).
const MAX_SECRET_BYTES: usize = 16 * 1024;

/// A validated secret, ready to seal.
pub(crate) struct SecretInput {
    pub secret_type: &'static str,
    pub value: Zeroizing<String>,
    pub oauth2: Option<OAuth2Input>,
}

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretInput").field("secret_type", &self.secret_type).finish_non_exhaustive()
    }
}

/// The `oauth2` block: everything but the client secret is configuration, stored in clear.
pub(crate) struct OAuth2Input {
    pub config: Value,
    pub token_host: String,
    pub client_secret: Option<Zeroizing<String>>,
}

/// Parses `{type, value}` (plus `extra` keys the caller handles, e.g. `oauth2` in a PUT body) and the
/// `oauth2` block.
pub(crate) fn parse_secret(
    secret: &Value,
    extra: &[&str],
    oauth2: Option<&Value>,
) -> Result<SecretInput, ApiError> {
    let object = secret.as_object().ok_or_else(|| {
        ApiError::new(ErrorCode::RequestBodySchemaInvalid, "secret: must be an object {type, value}")
    })?;
    reject_unknown("secret", object, &["type", "value"], extra, ErrorCode::RequestBodySchemaInvalid)?;
    let secret_type = match object.get("type").and_then(Value::as_str) {
        Some("api_key") => "api_key",
        Some("oauth2_refresh_token") => "oauth2_refresh_token",
        Some("oauth2_client_credentials") => "oauth2_client_credentials",
        _ => {
            return Err(ApiError::new(
                ErrorCode::SecretInvalid,
                "secret.type must be api_key, oauth2_refresh_token or oauth2_client_credentials",
            ));
        }
    };
    let value = secret_value("secret.value", object.get("value"))?;
    let oauth2 = match (secret_type, oauth2.filter(|v| !v.is_null())) {
        ("api_key", None) => None,
        ("api_key", Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "oauth2: only oauth2_* secret types take it",
            ));
        }
        (_, None) => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                format!("oauth2: a {secret_type} secret needs the oauth2 block"),
            ));
        }
        (_, Some(block)) => Some(parse_oauth2(secret_type, block)?),
    };
    Ok(SecretInput { secret_type, value, oauth2 })
}

fn reject_unknown(
    field: &str,
    object: &Map<String, Value>,
    known: &[&str],
    extra: &[&str],
    code: ErrorCode,
) -> Result<(), ApiError> {
    // The offending key is not quoted: next to a secret, even a key may be one pasted by mistake.
    if object.keys().any(|k| !known.contains(&k.as_str()) && !extra.contains(&k.as_str())) {
        let allowed: Vec<&str> = known.iter().chain(extra).copied().collect();
        return Err(ApiError::new(code, format!("{field}: unknown field; allowed: {}", allowed.join(", "))));
    }
    Ok(())
}

/// A secret string: 8 bytes to 16 KiB of visible ASCII and spaces.
fn secret_value(field: &str, value: Option<&Value>) -> Result<Zeroizing<String>, ApiError> {
    let Some(Value::String(text)) = value else {
        return Err(ApiError::new(ErrorCode::SecretInvalid, format!("{field} must be a string")));
    };
    if text.len() < MIN_SECRET_BYTES || text.len() > MAX_SECRET_BYTES {
        return Err(ApiError::new(
            ErrorCode::SecretInvalid,
            format!("{field} must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes long"),
        ));
    }
    if !text.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(ApiError::new(
            ErrorCode::SecretInvalid,
            format!("{field} may contain only visible ASCII characters and spaces"),
        ));
    }
    Ok(Zeroizing::new(text.clone()))
}

fn parse_oauth2(secret_type: &str, block: &Value) -> Result<OAuth2Input, ApiError> {
    let failed = |message: String| ApiError::new(ErrorCode::ValidationFailed, message);
    let object = block.as_object().ok_or_else(|| failed("oauth2: must be an object".into()))?;
    reject_unknown(
        "oauth2",
        object,
        &["token_url", "client_id", "client_secret", "scopes", "auth_method"],
        &[],
        ErrorCode::ValidationFailed,
    )?;
    let token_url = object
        .get("token_url")
        .and_then(Value::as_str)
        .ok_or_else(|| failed("oauth2.token_url: an https URL is required".into()))?;
    let parsed =
        url::Url::parse(token_url).map_err(|e| failed(format!("oauth2.token_url: not a URL ({e})")))?;
    if parsed.scheme() != "https" {
        return Err(failed("oauth2.token_url: must be an https URL".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.fragment().is_some() {
        return Err(failed("oauth2.token_url: may not carry userinfo or a fragment".into()));
    }
    let token_host = parsed
        .host_str()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| failed("oauth2.token_url: needs a host".into()))?;
    let client_id = object
        .get("client_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 512 && id.bytes().all(|b| (0x20..=0x7e).contains(&b)))
        .ok_or_else(|| failed("oauth2.client_id: 1-512 visible ASCII characters are required".into()))?;
    let client_secret = match object.get("client_secret") {
        None | Some(Value::Null) => None,
        Some(_) if secret_type == "oauth2_client_credentials" => {
            return Err(failed(
                "oauth2.client_secret: for oauth2_client_credentials the secret value is the client secret"
                    .into(),
            ));
        }
        Some(value) => Some(secret_value("oauth2.client_secret", Some(value))?),
    };
    let scopes = match object.get("scopes") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .filter(|s| {
                        !s.is_empty()
                            && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
                    })
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        failed("oauth2.scopes: each scope is a non-empty RFC 6749 scope token".into())
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(failed("oauth2.scopes: a list of scopes is required (may be empty)".into())),
    };
    let auth_method = match object.get("auth_method").and_then(Value::as_str) {
        Some(m @ ("client_secret_post" | "client_secret_basic")) => m,
        _ => {
            return Err(failed(
                "oauth2.auth_method: must be client_secret_post or client_secret_basic".into(),
            ));
        }
    };
    let config = json!({
        "token_url": parsed.as_str(),
        "client_id": client_id,
        "scopes": scopes,
        "auth_method": auth_method,
        "client_secret_set": client_secret.is_some(),
    });
    Ok(OAuth2Input { config, token_host, client_secret })
}

/// What a secret version is bound to when it is written: the hosts the integration's template
/// allows and the injection it will be sent with (`spec/pipeline.md` "Forwarding", host binding).
pub(crate) struct Binding<'a> {
    pub template: &'a Template,
    /// The integration's own injection (normalized JSON), if it has one.
    pub own_injection: Option<&'a Value>,
}

impl Binding<'_> {
    /// The injection an API key goes out with: the integration's own, else the template's
    /// default, else bearer — the same choice `CanonContext::effective_injection` makes at execute.
    fn injection(&self) -> Result<Injection, ApiError> {
        match self.own_injection.filter(|v| !v.is_null()) {
            Some(value) => Injection::from_json(value)
                .map_err(|e| ApiError::new(e.code(), format!("injection: {}", e.message()))),
            None => Ok(self.template.default_injection().cloned().unwrap_or_default()),
        }
    }
}

/// Seals a secret as version `version`, bound to the template's hosts plus the OAuth2 token host,
/// and to the injection it will be sent with (bearer for OAuth2 secrets, which always go out as
/// `Authorization: Bearer <access token>`).
pub(crate) fn seal_secret(
    state: &AppState,
    tenant_id: &TenantId,
    integration_id: &IntegrationId,
    version: u64,
    input: &SecretInput,
    binding: &Binding<'_>,
    now: Timestamp,
) -> Result<NewSecretVersion, ApiError> {
    let bound_injection = match &input.oauth2 {
        Some(_) => crate::services::credentials::oauth2::bearer_injection(),
        None => binding.injection()?,
    };
    let keyring = state.keyring.load();
    let envelope =
        seal_record(&keyring, &secret_context(tenant_id, integration_id, version), input.value.as_bytes())
            .map_err(ApiError::internal)?;
    let mut bound_hosts = binding.template.hosts().to_vec();
    let mut client_secret = None;
    if let Some(oauth2) = &input.oauth2 {
        if !bound_hosts.contains(&oauth2.token_host) {
            bound_hosts.push(oauth2.token_host.clone());
        }
        if let Some(secret) = &oauth2.client_secret {
            let context = client_secret_context(tenant_id, integration_id, version);
            client_secret =
                Some(seal_record(&keyring, &context, secret.as_bytes()).map_err(ApiError::internal)?);
        }
    }
    Ok(NewSecretVersion {
        version,
        secret_type: input.secret_type.to_owned(),
        envelope,
        bound_hosts,
        bound_injection: bound_injection.to_json(),
        oauth2: input.oauth2.as_ref().map(|o| o.config.clone()),
        client_secret,
        created_at: now,
    })
}
