//! The configuration's shape and defaults, exactly `spec/operations.md`. Every struct rejects unknown
//! keys and fills missing ones from its default.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The sections a `STEWARD_<SECTION>__<KEY>` variable may name.
pub const SECTIONS: &[&str] = &[
    "data_plane",
    "admin",
    "storage",
    "keys",
    "session",
    "dpop",
    "enrollment",
    "approval",
    "manifest",
    "idempotency",
    "egress",
    "log",
];

/// The top-level keys settable from the environment.
pub const TOP_LEVEL_KEYS: &[&str] = &["mode", "public_base_url", "trust_domain"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Normal,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    pub public_base_url: String,
    pub trust_domain: String,
    pub data_plane: DataPlaneConfig,
    pub admin: AdminConfig,
    pub storage: StorageConfig,
    pub keys: KeysConfig,
    pub session: SessionConfig,
    pub dpop: DpopConfig,
    pub enrollment: EnrollmentConfig,
    pub approval: ApprovalConfig,
    pub manifest: ManifestConfig,
    pub idempotency: IdempotencyConfig,
    pub egress: EgressConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Development,
            public_base_url: "https://localhost:8081".into(),
            trust_domain: "steward".into(),
            data_plane: DataPlaneConfig::default(),
            admin: AdminConfig::default(),
            storage: StorageConfig::default(),
            keys: KeysConfig::default(),
            session: SessionConfig::default(),
            dpop: DpopConfig::default(),
            enrollment: EnrollmentConfig::default(),
            approval: ApprovalConfig::default(),
            manifest: ManifestConfig::default(),
            idempotency: IdempotencyConfig::default(),
            egress: EgressConfig::default(),
            log: LogConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataPlaneConfig {
    pub listen: SocketAddr,
    pub tls_cert: String,
    pub tls_key: String,
    pub max_body_bytes: u64,
    pub max_connections: u32,
    /// A connection must send a complete request head within this (from accept: PROXY header and TLS
    /// handshake included; over HTTP/2 each stream's header block). Both listeners.
    pub header_read_timeout_ms: u32,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY). Both listeners.
    pub idle_timeout_ms: u32,
    /// Connections at once from one client address (TCP peer, or PROXY v2 source). Both listeners.
    pub max_connections_per_ip: u32,
    /// Forward mode (`spec/gateway.md` §1): the largest request body read from the client; replaces
    /// `egress.max_request_body_bytes` there.
    pub max_forward_body_bytes: u64,
    pub proxy_protocol: bool,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            tls_cert: "tls/server.crt".into(),
            tls_key: "tls/server.key".into(),
            max_body_bytes: 1_048_576,
            max_connections: 10_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections_per_ip: 1000,
            max_forward_body_bytes: 33_554_432,
            proxy_protocol: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub tls_cert: String,
    pub tls_key: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

impl AdminConfig {
    pub fn tls_enabled(&self) -> bool {
        !self.tls_cert.is_empty() && !self.tls_key.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    pub sqlite_path: String,
    pub sqlite_synchronous: SqliteSynchronous,
    pub postgres_url: String,
    pub redis_url: String,
    pub redis_key_prefix: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Sqlite,
            sqlite_path: "steward.db".into(),
            sqlite_synchronous: SqliteSynchronous::Normal,
            postgres_url: String::new(),
            redis_url: String::new(),
            redis_key_prefix: "steward".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    pub kek_file: String,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self { kek_file: "kek.json".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    pub default_ttl_seconds: u32,
    pub max_per_minute: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { default_ttl_seconds: 900, max_per_minute: 60 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpopConfig {
    pub max_skew_seconds: u32,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self { max_skew_seconds: 300 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrollmentConfig {
    pub token_ttl_seconds: u32,
    pub default_cert_ttl_seconds: u32,
    pub max_cert_ttl_seconds: u32,
    pub max_identity_lifetime_days: u32,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        Self {
            token_ttl_seconds: 86_400,
            default_cert_ttl_seconds: 604_800,
            max_cert_ttl_seconds: 2_592_000,
            max_identity_lifetime_days: 90,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalConfig {
    pub pending_ttl_seconds: u32,
    pub approved_ttl_seconds: u32,
    pub webhook_url: String,
    pub webhook_secret: String,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        Self {
            pending_ttl_seconds: 300,
            approved_ttl_seconds: 3600,
            webhook_url: String::new(),
            webhook_secret: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManifestConfig {
    pub ttl_seconds: u32,
    pub key_rotation_days: u32,
}

impl Default for ManifestConfig {
    fn default() -> Self {
        Self { ttl_seconds: 300, key_rotation_days: 30 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdempotencyConfig {
    pub ttl_seconds: u32,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self { ttl_seconds: 86_400 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    pub dns_servers: Vec<SocketAddr>,
    pub dns_timeout_ms: u32,
    pub connect_timeout_ms: u32,
    pub total_timeout_ms: u32,
    pub max_request_body_bytes: u64,
    pub max_response_bytes: u64,
    pub extra_ca_files: Vec<String>,
    pub allow_cidrs: Vec<IpNet>,
    pub static_hosts: BTreeMap<String, Vec<IpAddr>>,
    /// Forward mode: the most response body bytes streamed to the client (replaces
    /// `max_response_bytes` there).
    pub max_stream_bytes: u64,
    /// Forward mode: the longest gap between two response body chunks.
    pub stream_idle_timeout_ms: u32,
    /// Forward mode: the longest a streamed response may last, head to last byte.
    pub max_stream_seconds: u32,
}

/// Forward mode's limits on a streamed response body (`egress.max_stream_bytes`,
/// `egress.stream_idle_timeout_ms`, `egress.max_stream_seconds`), typed for the streaming code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub max_bytes: u64,
    pub idle_timeout: Duration,
    pub max_duration: Duration,
}

impl EgressConfig {
    /// The stream limits, read as `state.config.egress.stream_limits()`.
    pub fn stream_limits(&self) -> StreamLimits {
        StreamLimits {
            max_bytes: self.max_stream_bytes,
            idle_timeout: Duration::from_millis(u64::from(self.stream_idle_timeout_ms)),
            max_duration: Duration::from_secs(u64::from(self.max_stream_seconds)),
        }
    }
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            dns_servers: Vec::new(),
            dns_timeout_ms: 2000,
            connect_timeout_ms: 5000,
            total_timeout_ms: 15_000,
            max_request_body_bytes: 2_097_152,
            max_response_bytes: 2_097_152,
            extra_ca_files: Vec::new(),
            allow_cidrs: Vec::new(),
            static_hosts: BTreeMap::new(),
            max_stream_bytes: 1_073_741_824,
            stream_idle_timeout_ms: 120_000,
            max_stream_seconds: 1800,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Json }
    }
}

/// Checks one numeric range, naming the key.
fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(key, format!("{value} is out of range {min}..={max}")));
    }
    Ok(())
}

const GIB: u64 = 1024 * 1024 * 1024;

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

impl Config {
    /// Range and consistency checks that types alone cannot express. All are exit 64.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Err(message) = self.public_base_url() {
            return Err(ConfigError::new("public_base_url", message));
        }
        if !valid_trust_domain(&self.trust_domain) {
            return Err(ConfigError::new(
                "trust_domain",
                "must be 1-255 characters of lowercase letters, digits, '.', '-' and '_'",
            ));
        }
        // Port 0 ("any free port", used by tests) never collides.
        if self.data_plane.listen == self.admin.listen && self.admin.listen.port() != 0 {
            return Err(ConfigError::new(
                "admin.listen",
                format!(
                    "{} is also data_plane.listen; the two listeners need different addresses",
                    self.admin.listen
                ),
            ));
        }
        if self.data_plane.tls_cert.is_empty() {
            return Err(ConfigError::new("data_plane.tls_cert", "must not be empty"));
        }
        if self.data_plane.tls_key.is_empty() {
            return Err(ConfigError::new("data_plane.tls_key", "must not be empty"));
        }
        in_range("data_plane.max_body_bytes", self.data_plane.max_body_bytes, 1024, 64 * 1024 * 1024)?;
        in_range("data_plane.max_connections", self.data_plane.max_connections, 1, 1_000_000)?;
        in_range("data_plane.header_read_timeout_ms", self.data_plane.header_read_timeout_ms, 10, 600_000)?;
        in_range("data_plane.idle_timeout_ms", self.data_plane.idle_timeout_ms, 10, 86_400_000)?;
        in_range("data_plane.max_connections_per_ip", self.data_plane.max_connections_per_ip, 1, 1_000_000)?;
        in_range("data_plane.max_forward_body_bytes", self.data_plane.max_forward_body_bytes, 1024, GIB)?;
        if self.admin.tls_cert.is_empty() != self.admin.tls_key.is_empty() {
            let key = if self.admin.tls_cert.is_empty() { "admin.tls_cert" } else { "admin.tls_key" };
            return Err(ConfigError::new(key, "admin.tls_cert and admin.tls_key must be set together"));
        }
        match self.storage.backend {
            StorageBackend::Sqlite => {
                if self.storage.sqlite_path.is_empty() {
                    return Err(ConfigError::new("storage.sqlite_path", "must not be empty"));
                }
            }
            StorageBackend::Postgres => {
                if !(self.storage.postgres_url.starts_with("postgres://")
                    || self.storage.postgres_url.starts_with("postgresql://"))
                {
                    return Err(ConfigError::new(
                        "storage.postgres_url",
                        "shared mode needs a postgres:// URL",
                    ));
                }
                if !(self.storage.redis_url.starts_with("redis://")
                    || self.storage.redis_url.starts_with("rediss://"))
                {
                    return Err(ConfigError::new("storage.redis_url", "shared mode needs a redis:// URL"));
                }
            }
        }
        if self.storage.redis_key_prefix.is_empty()
            || self.storage.redis_key_prefix.contains(char::is_whitespace)
        {
            return Err(ConfigError::new("storage.redis_key_prefix", "must be non-empty without spaces"));
        }
        if self.keys.kek_file.is_empty() {
            return Err(ConfigError::new("keys.kek_file", "must not be empty"));
        }
        in_range("session.default_ttl_seconds", self.session.default_ttl_seconds, 60, 3600)?;
        in_range("session.max_per_minute", self.session.max_per_minute, 1, 100_000)?;
        in_range("dpop.max_skew_seconds", self.dpop.max_skew_seconds, 1, 3600)?;
        in_range("enrollment.token_ttl_seconds", self.enrollment.token_ttl_seconds, 60, 30 * 86_400)?;
        in_range("enrollment.max_cert_ttl_seconds", self.enrollment.max_cert_ttl_seconds, 300, 366 * 86_400)?;
        in_range(
            "enrollment.default_cert_ttl_seconds",
            self.enrollment.default_cert_ttl_seconds,
            300,
            self.enrollment.max_cert_ttl_seconds,
        )?;
        in_range(
            "enrollment.max_identity_lifetime_days",
            self.enrollment.max_identity_lifetime_days,
            1,
            3650,
        )?;
        in_range("approval.pending_ttl_seconds", self.approval.pending_ttl_seconds, 10, 7 * 86_400)?;
        in_range("approval.approved_ttl_seconds", self.approval.approved_ttl_seconds, 10, 30 * 86_400)?;
        if !self.approval.webhook_url.is_empty() && !self.approval.webhook_url.starts_with("https://") {
            return Err(ConfigError::new("approval.webhook_url", "must be an https:// URL or empty"));
        }
        in_range("manifest.ttl_seconds", self.manifest.ttl_seconds, 30, 300)?;
        in_range("manifest.key_rotation_days", self.manifest.key_rotation_days, 1, 3650)?;
        in_range("idempotency.ttl_seconds", self.idempotency.ttl_seconds, 60, 30 * 86_400)?;
        in_range("egress.dns_timeout_ms", self.egress.dns_timeout_ms, 10, 60_000)?;
        in_range("egress.connect_timeout_ms", self.egress.connect_timeout_ms, 10, 120_000)?;
        in_range("egress.total_timeout_ms", self.egress.total_timeout_ms, 10, 600_000)?;
        in_range("egress.max_request_body_bytes", self.egress.max_request_body_bytes, 1, 256 * 1024 * 1024)?;
        in_range("egress.max_response_bytes", self.egress.max_response_bytes, 1, 256 * 1024 * 1024)?;
        in_range("egress.max_stream_bytes", self.egress.max_stream_bytes, 1024, 64 * GIB)?;
        in_range("egress.stream_idle_timeout_ms", self.egress.stream_idle_timeout_ms, 100, 3_600_000)?;
        in_range("egress.max_stream_seconds", self.egress.max_stream_seconds, 1, 86_400)?;
        for (host, addresses) in &self.egress.static_hosts {
            if host.is_empty() || host != &host.to_ascii_lowercase() || host.contains(['/', ':', '*', ' ']) {
                return Err(ConfigError::new(
                    format!("egress.static_hosts.{host}"),
                    "host names must be lowercase, without scheme, port or wildcard",
                ));
            }
            if addresses.is_empty() {
                return Err(ConfigError::new(
                    format!("egress.static_hosts.{host}"),
                    "needs at least one address",
                ));
            }
        }
        if !LOG_LEVELS.contains(&self.log.level.as_str()) {
            return Err(ConfigError::new("log.level", format!("must be one of {}", LOG_LEVELS.join(", "))));
        }
        Ok(())
    }

    /// `public_base_url` parsed: scheme (http or https), host and optional port, no path beyond `/`,
    /// no query, fragment or userinfo. Returned without a trailing slash.
    pub fn public_base_url(&self) -> Result<PublicBaseUrl, String> {
        PublicBaseUrl::parse(&self.public_base_url)
    }
}

/// The validated `public_base_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBaseUrl {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

impl PublicBaseUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) =
            text.split_once("://").ok_or_else(|| format!("{text:?} is not an absolute http(s) URL"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(format!("{text:?} must use https (or http)"));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!("{text:?} must be scheme://host[:port] with no path, query or userinfo"));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| format!("{text:?} has an invalid host or port"))?;
        Ok(Self { scheme, host: host.to_ascii_lowercase(), port })
    }

    /// `scheme://host[:port]`, the default port omitted, no trailing slash.
    pub fn origin(&self) -> String {
        let default = if self.scheme == "https" { 443 } else { 80 };
        match self.port {
            Some(port) if port != default => format!("{}://{}:{port}", self.scheme, self.host),
            _ => format!("{}://{}", self.scheme, self.host),
        }
    }

    /// The host without IPv6 brackets, for certificate SANs.
    pub fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((format!("[{inside}]"), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
        None => (authority, None),
    };
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
        return None;
    }
    Some((host.to_owned(), port))
}

fn valid_trust_domain(domain: &str) -> bool {
    (1..=255).contains(&domain.len())
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
}
