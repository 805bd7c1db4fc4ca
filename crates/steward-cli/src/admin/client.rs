//! The admin API client of `steward admin`: where the server is, which token to send, and the
//! mapping of answers to exit codes (0 ok, 1 API error, 2 usage error).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::Value;

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments or local input (exit 2).
    Usage(String),
    /// The API answered with an error (exit 1): its code and message are printed.
    Api { status: u16, code: String, message: String },
    /// The server could not be reached or answered something that is not the API (exit 1).
    Transport(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Api { .. } | CliError::Transport(_) => 1,
        }
    }

    pub fn render(&self) -> String {
        match self {
            CliError::Usage(message) => format!("usage error: {message}"),
            CliError::Api { status, code, message } => format!("error {code} (HTTP {status}): {message}"),
            CliError::Transport(message) => format!("error: {message}"),
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// A connected admin API.
#[derive(Debug)]
pub struct AdminClient {
    base: String,
    /// Where `base` came from, for the message of an unreachable server.
    source: String,
    token: String,
    http: reqwest::Client,
}

/// The admin URL and where it came from.
#[derive(Debug, Clone)]
pub struct AdminUrl {
    pub url: String,
    /// `--admin-url`, `STEWARD_ADMIN_URL`, `admin.listen in <file>` or the default.
    pub source: String,
}

/// A status and body as received.
struct Answer {
    status: u16,
    body: Bytes,
}

/// A raw 2xx answer's body (for the JSON-lines export).
#[derive(Debug)]
pub struct RawAnswer {
    pub body: Bytes,
}

impl AdminClient {
    pub fn new(admin_url: &AdminUrl, token: String, ca_file: Option<&Path>) -> CliResult<Self> {
        let base = admin_url.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "the admin URL must start with http:// or https://, got {:?} (from {})",
                admin_url.url, admin_url.source
            )));
        }
        let ca = match ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| CliError::Usage(format!("cannot read --ca-file {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let http = steward_client::operator_client(ca.as_deref(), Duration::from_secs(60))
            .map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(Self { base, source: admin_url.source.clone(), token, http })
    }

    pub async fn get(&self, path: &str) -> CliResult<Value> {
        self.json(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> CliResult<Value> {
        self.json(Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> CliResult<Value> {
        self.json(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> CliResult<Value> {
        self.json(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> CliResult<Value> {
        self.json(Method::DELETE, path, None).await
    }

    /// One call; a 2xx answer's JSON (null when empty), anything else an [`CliError::Api`].
    pub async fn json(&self, method: Method, path: &str, body: Option<Value>) -> CliResult<Value> {
        let answer = self.raw(method, path, body).await?;
        if answer.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| CliError::Transport(format!("the server's answer is not JSON: {e}")))
    }

    /// One call, the body unparsed; non-2xx answers are errors.
    pub async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> CliResult<RawAnswer> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("accept", "application/json");
        if let Some(value) = body {
            request = request.header("content-type", "application/json").body(value.to_string());
        }
        let unreachable = |e: reqwest::Error| {
            CliError::Transport(format!(
                "cannot reach the admin API at {} (from {}): {}. Is `steward serve` running there? Point at \
                 another server with --admin-url URL (or STEWARD_ADMIN_URL), or at its data directory with \
                 --data-dir DIR (or STEWARD_DATA_DIR), whose steward.toml gives admin.listen",
                self.base,
                self.source,
                steward_client::error_chain(&e)
            ))
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let response = Answer { status, body: response.bytes().await.map_err(unreachable)? };
        if (200..300).contains(&response.status) {
            return Ok(RawAnswer { body: response.body });
        }
        let parsed: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        Err(CliError::Api {
            status: response.status,
            code: parsed["error"].as_str().unwrap_or("unknown_error").to_owned(),
            message: parsed["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&response.body).chars().take(300).collect()),
        })
    }
}

/// The default data directory, as for `steward serve`.
pub const DEFAULT_DATA_DIR: &str = "steward-data";
/// The admin listener when nothing says otherwise.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:8080";

/// The data directory `steward admin` reads its defaults from: `--data-dir` / `STEWARD_DATA_DIR`
/// (which must exist), else `./steward-data`, else the current directory when it is one (holds
/// `steward.toml` or `admin-token`). `None` when there is none.
pub fn find_data_dir(given: Option<PathBuf>) -> CliResult<Option<PathBuf>> {
    let is_data_dir = |dir: &Path| dir.join("steward.toml").is_file() || dir.join("admin-token").is_file();
    match given {
        Some(dir) if is_data_dir(&dir) => Ok(Some(dir)),
        Some(dir) => Err(CliError::Usage(format!(
            "--data-dir {}: no steward.toml or admin-token there (the directory steward init created)",
            dir.display()
        ))),
        None => {
            Ok([PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from(".")].into_iter().find(|d| is_data_dir(d)))
        }
    }
}

/// The admin URL: `--admin-url` / `STEWARD_ADMIN_URL`, else `admin.listen` of the data directory's
/// `steward.toml` (with the `STEWARD_*` overlay `steward serve` applies; `https` when `admin.tls_cert`
/// is set, else `http`), else `http://127.0.0.1:8080`.
pub fn resolve_admin_url(given: Option<String>, data_dir: Option<&Path>) -> CliResult<AdminUrl> {
    if let Some(url) = given.filter(|u| !u.trim().is_empty()) {
        let url = url.trim().to_owned();
        let source = if std::env::var("STEWARD_ADMIN_URL").is_ok_and(|v| v.trim() == url) {
            "STEWARD_ADMIN_URL"
        } else {
            "--admin-url"
        };
        return Ok(AdminUrl { url, source: source.to_owned() });
    }
    let Some(config_path) = data_dir.map(|d| d.join("steward.toml")).filter(|p| p.is_file()) else {
        return Ok(AdminUrl {
            url: DEFAULT_ADMIN_URL.to_owned(),
            source: "the default: no --admin-url, STEWARD_ADMIN_URL or data directory".to_owned(),
        });
    };
    let env = steward_server::startup::Environment::from_process();
    let loaded = steward_server::config::load(Some(&config_path), &env.vars).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the admin address from {}: {e} (or pass --admin-url)",
            config_path.display()
        ))
    })?;
    Ok(AdminUrl {
        url: crate::urls::admin_url(&loaded.config.admin),
        source: if std::env::var_os("STEWARD_ADMIN__LISTEN").is_some() {
            format!("STEWARD_ADMIN__LISTEN, over admin.listen in {}", config_path.display())
        } else {
            format!("admin.listen in {}", config_path.display())
        },
    })
}

/// The admin token: `--token` / `STEWARD_ADMIN_TOKEN`, else `--token-file`, else the data
/// directory's `admin-token` (see [`find_data_dir`]).
pub fn resolve_token(
    token: Option<String>,
    token_file: Option<PathBuf>,
    data_dir: Option<&Path>,
) -> CliResult<String> {
    if let Some(token) = token.filter(|t| !t.trim().is_empty()) {
        return Ok(token.trim().to_owned());
    }
    let (path, required) = match (token_file, data_dir) {
        (Some(path), _) => (path, true),
        (None, Some(dir)) => (dir.join("admin-token"), false),
        (None, None) => (PathBuf::from(DEFAULT_DATA_DIR).join("admin-token"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Ok(_) => Err(CliError::Usage(format!("the token file {} is empty", path.display()))),
        Err(e) if required => {
            Err(CliError::Usage(format!("cannot read --token-file {}: {e}", path.display())))
        }
        Err(_) => Err(CliError::Usage(
            "no admin token: pass --token-file FILE, set STEWARD_ADMIN_TOKEN, pass --data-dir DIR (or set \
             STEWARD_DATA_DIR) of a data directory holding admin-token, or run next to ./steward-data"
                .into(),
        )),
    }
}

/// A secret from a file (one trailing newline dropped) or an environment variable — never from the
/// command line, where it would land in shell history and process listings.
pub fn read_secret(file: Option<&Path>, env: Option<&str>) -> CliResult<String> {
    let value = match (file, env) {
        (Some(path), None) => {
            let mut text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("cannot read --secret-file {}: {e}", path.display())))?;
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            text
        }
        (None, Some(name)) => std::env::var(name).map_err(|_| {
            CliError::Usage(format!("the environment variable {name} (--secret-env) is not set"))
        })?,
        _ => {
            return Err(CliError::Usage("give exactly one of --secret-file FILE or --secret-env VAR".into()));
        }
    };
    if value.is_empty() {
        return Err(CliError::Usage("the secret is empty".into()));
    }
    Ok(value)
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `?a=1&b=2` from the pairs that have a value (empty when none do).
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v)))).collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// A path segment from user input (ids are checked by the server; this only keeps `/` and `?` out).
pub fn segment(value: &str) -> String {
    encode(value)
}
