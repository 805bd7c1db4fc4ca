//! The `steward.toml` that `steward init` writes: every key at its default, commented, with the
//! values `init` was given (public URL, storage backend) filled in.

/// What `init` chose that differs from the defaults.
#[derive(Debug, Clone, Default)]
pub struct InitChoices {
    pub public_base_url: Option<String>,
    /// `Some((postgres_url, redis_url))` for shared mode.
    pub shared: Option<(String, String)>,
}

fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

/// The complete configuration file text.
pub fn default_config_toml(choices: &InitChoices) -> String {
    let public_base_url = choices.public_base_url.as_deref().unwrap_or("https://localhost:8081");
    let (backend, postgres_url, redis_url) = match &choices.shared {
        Some((pg, redis)) => ("postgres", pg.as_str(), redis.as_str()),
        None => ("sqlite", "", ""),
    };
    format!(
        r#"# Steward configuration. Every key is shown at its default; see docs/configuration.md.
# Relative paths resolve against this file's directory. Environment variables
# STEWARD_<SECTION>__<KEY> (and STEWARD_MODE, STEWARD_PUBLIC_BASE_URL, STEWARD_TRUST_DOMAIN) override it.

mode = "development"                  # "production" turns on the production rules
public_base_url = {public_base_url}   # used for DPoP htu and the manifest's execute URL
trust_domain = "steward"              # workload identities are spiffe://<trust_domain>/tenants/…/workloads/…

[data_plane]
listen = "127.0.0.1:8081"
tls_cert = "tls/server.crt"
tls_key = "tls/server.key"
max_body_bytes = 1048576
max_connections = 10000
header_read_timeout_ms = 10000        # a connection must send a complete request head within this
idle_timeout_ms = 60000               # connections with no request in flight longer are closed
max_connections_per_ip = 1000         # counted by TCP peer (or PROXY v2 source); both listeners
max_forward_body_bytes = 33554432     # forward mode request bodies (/v1/forward, steward gateway)
proxy_protocol = false                # accept PROXY protocol v2 from a TCP load balancer

[admin]
listen = "127.0.0.1:8080"
tls_cert = ""                         # plain HTTP on loopback; set both for TLS
tls_key = ""

[storage]
backend = {backend}                   # "sqlite" (embedded) or "postgres" (shared: PostgreSQL + Redis)
sqlite_path = "steward.db"
sqlite_synchronous = "normal"         # "full": durable against power loss, not only process crashes
postgres_url = {postgres_url}
redis_url = {redis_url}
redis_key_prefix = "steward"

[keys]
kek_file = "kek.json"                 # STEWARD_KEK_KEYRING (the keyring JSON) wins over this file

[session]
default_ttl_seconds = 900
max_per_minute = 60

[dpop]
max_skew_seconds = 300

[enrollment]
token_ttl_seconds = 86400
default_cert_ttl_seconds = 604800
max_cert_ttl_seconds = 2592000
max_identity_lifetime_days = 90

[approval]
pending_ttl_seconds = 300
approved_ttl_seconds = 3600
webhook_url = ""
webhook_secret = ""

[manifest]
ttl_seconds = 300
key_rotation_days = 30

[idempotency]
ttl_seconds = 86400

[egress]
dns_servers = []                      # "ip:port" list; empty = the system's resolvers
dns_timeout_ms = 2000
connect_timeout_ms = 5000
total_timeout_ms = 15000
max_request_body_bytes = 2097152
max_response_bytes = 2097152
extra_ca_files = []                   # extra roots for upstream TLS (private CAs)
allow_cidrs = []                      # exemptions from the SSRF denylist (never metadata addresses)
static_hosts = {{}}                     # {{ "api.internal.example" = ["10.1.2.3"] }}, checked before DNS
max_stream_bytes = 1073741824         # forward mode: streamed response bodies
stream_idle_timeout_ms = 120000       # forward mode: longest gap between two response chunks
max_stream_seconds = 1800             # forward mode: longest streamed response

[log]
level = "info"
format = "json"                       # or "pretty"
"#,
        public_base_url = toml_string(public_base_url),
        backend = toml_string(backend),
        postgres_url = toml_string(postgres_url),
        redis_url = toml_string(redis_url),
    )
}
