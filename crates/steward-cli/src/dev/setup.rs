//! `steward dev echo-provider init`: the provider's development CA and certificate, its template,
//! and the three `egress` settings in `steward.toml` that let Steward reach it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};
use steward_server::config::{self, Mode};
use steward_server::files::{create_private_dir, replace_file};
use steward_server::startup::Environment;
use steward_types::{Clock, SystemClock};

use super::{DevError, InitArgs};

/// The template id `init` writes.
pub const TEMPLATE_ID: &str = "tpl_echo";
/// How long the development certificates are valid.
const VALIDITY_DAYS: i64 = 90;

/// What `init` wrote and what `serve` reads back (`provider.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub host: String,
    pub listen: SocketAddr,
}

impl Provider {
    pub fn to_json(&self) -> Value {
        json!({"host": self.host, "listen": self.listen.to_string()})
    }

    pub fn from_json(value: &Value) -> Option<Self> {
        Some(Self {
            host: value["host"].as_str()?.to_owned(),
            listen: value["listen"].as_str()?.parse().ok()?,
        })
    }
}

pub fn init(args: InitArgs) -> Result<(), DevError> {
    let data_dir = args.data_dir.clone().unwrap_or_else(|| PathBuf::from(crate::admin::DEFAULT_DATA_DIR));
    let config_path = data_dir.join("steward.toml");
    if !config_path.is_file() {
        return Err(DevError::Usage(format!(
            "no steward.toml in {}: run `steward init --data-dir {}` first, or pass --data-dir DIR",
            data_dir.display(),
            data_dir.display()
        )));
    }
    let env = Environment::from_process();
    let loaded = config::load(Some(&config_path), &env.vars)
        .map_err(|e| DevError::Usage(format!("{}: {e}", config_path.display())))?;
    if loaded.config.mode == Mode::Production {
        return Err(DevError::Usage(format!(
            "{} is a production configuration; steward dev commands only change development deployments",
            config_path.display()
        )));
    }
    let provider = Provider { host: checked_host(&args.host)?, listen: args.listen };
    if !provider.listen.ip().is_loopback() {
        return Err(DevError::Usage(format!(
            "--listen {}: the echo provider listens on a loopback address only (this machine)",
            provider.listen
        )));
    }

    // The provider's files.
    create_private_dir(&args.dir).map_err(|e| failed(&args.dir, e))?;
    let dir = std::fs::canonicalize(&args.dir).map_err(|e| failed(&args.dir, e))?;
    let (ca_pem, cert_pem, key_pem) = certificates(&provider.host)?;
    let ca_path = dir.join("ca.crt");
    write(&ca_path, ca_pem.as_bytes(), 0o644)?;
    write(&dir.join("server.crt"), cert_pem.as_bytes(), 0o644)?;
    write(&dir.join("server.key"), key_pem.as_bytes(), 0o600)?;
    let template = template(&provider);
    write(&dir.join("template.json"), pretty(&template).as_bytes(), 0o644)?;
    write(&dir.join("provider.json"), pretty(&provider.to_json()).as_bytes(), 0o644)?;

    // Steward's side: trust the CA, give the name its address, exempt the address.
    let original = std::fs::read_to_string(&config_path).map_err(|e| failed(&config_path, e))?;
    let (edited, lines) = egress_settings(&original, &ca_path, &provider)
        .map_err(|e| DevError::Failed(format!("{}: {e}", config_path.display())))?;
    write(&config_path, edited.as_bytes(), 0o600)?;
    if let Err(error) = config::load(Some(&config_path), &env.vars) {
        // Never leave a configuration `serve` refuses.
        write(&config_path, original.as_bytes(), 0o600)?;
        return Err(DevError::Failed(format!(
            "the edited {} did not load ({error}); restored it",
            config_path.display()
        )));
    }

    print_report(&args.dir, &config_path, &provider, &lines, &env);
    Ok(())
}

/// A lowercase DNS name (letters, digits, `-`, at least one dot), never an IP address.
fn checked_host(host: &str) -> Result<String, DevError> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.parse::<IpAddr>().is_ok() || !host.contains('.') || !host.split('.').all(valid_label) {
        return Err(DevError::Usage(format!(
            "--host {host:?}: give a DNS name such as {} (a name under .test never exists on the internet)",
            super::DEFAULT_HOST
        )));
    }
    Ok(host)
}

/// A development CA (P-256, CA with pathlen 0) and a server certificate for `host` it signed: PEM
/// texts `(ca, certificate, key)`. The CA's key is not kept: nothing else is ever signed with it.
fn certificates(host: &str) -> Result<(String, String, String), DevError> {
    let error = |e: rcgen::Error| DevError::Failed(format!("cannot make the development certificates: {e}"));
    let now = SystemClock.now();
    let not_before = now.plus_seconds(-300).to_offset_date_time();
    let not_after = now.plus_seconds(VALIDITY_DAYS * 86_400).to_offset_date_time();

    let ca_key = KeyPair::generate().map_err(error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(error)?;
    ca.distinguished_name.push(DnType::CommonName, "Steward dev echo provider CA (development only)");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key).map_err(error)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(error)?;
    let mut leaf = CertificateParams::new(vec![host.to_owned()]).map_err(error)?;
    leaf.distinguished_name.push(DnType::CommonName, host);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let cert = leaf.signed_by(&key, &issuer).map_err(error)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// The provider's template: `echo_read` (GET /v1/echo, no approval) and `echo_send`
/// (POST /v1/messages, approval required), the key injected as `authorization: Bearer …`.
pub fn template(provider: &Provider) -> Value {
    json!({
        "template_id": TEMPLATE_ID,
        "version": 1,
        "provider": "echo",
        "description": "The local echo provider of `steward dev echo-provider` (development only)",
        "allowed_schemes": ["https"],
        "allowed_ports": [provider.listen.port()],
        "allowed_hosts": [provider.host],
        "redirect_policy": {"mode": "deny"},
        "default_injection": {"type": "header", "name": "authorization", "format": "Bearer {secret}"},
        "path_groups": [
            {
                "group_id": "echo_read",
                "risk_tier": "low",
                "approval_mode": "none",
                "methods": ["GET"],
                "path_patterns": ["^/v1/echo$"],
                "query_allowlist": ["q"],
                "header_forward_allowlist": ["accept"],
                "response_header_allowlist": ["content-type"]
            },
            {
                "group_id": "echo_send",
                "risk_tier": "high",
                "approval_mode": "required",
                "methods": ["POST"],
                "path_patterns": ["^/v1/messages$"],
                "query_allowlist": [],
                "header_forward_allowlist": ["content-type"],
                "response_header_allowlist": ["content-type"],
                "body_policy": {"max_bytes": 4096, "content_types": ["application/json"]},
                "approval_preview": ["/text"]
            }
        ]
    })
}

/// `text` (a `steward.toml`) with the provider's CA in `egress.extra_ca_files`, its address in
/// `egress.allow_cidrs` and its name in `egress.static_hosts`, comments and layout kept; and the
/// three settings as they now read, for the report. Entries already there are not repeated.
pub fn egress_settings(
    text: &str,
    ca_path: &Path,
    provider: &Provider,
) -> Result<(String, Vec<String>), String> {
    use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value as TomlValue};

    let mut document: DocumentMut = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
    let egress = document
        .entry("egress")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or("egress is not a table")?;

    let mut push_unique = |key: &str, value: String| -> Result<(), String> {
        let item = egress.entry(key).or_insert(toml_edit::value(Array::new()));
        let array = item.as_array_mut().ok_or(format!("egress.{key} is not an array"))?;
        if !array.iter().any(|existing| existing.as_str() == Some(value.as_str())) {
            array.push(value);
        }
        Ok(())
    };
    let ip = provider.listen.ip();
    let cidr = format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 });
    push_unique("extra_ca_files", ca_path.display().to_string())?;
    push_unique("allow_cidrs", cidr)?;

    let addresses = Array::from_iter([ip.to_string()]);
    let hosts = egress.entry("static_hosts").or_insert(toml_edit::value(InlineTable::new()));
    match hosts {
        Item::Value(TomlValue::InlineTable(table)) => {
            table.insert(&provider.host, TomlValue::Array(addresses));
        }
        Item::Table(table) => {
            table.insert(&provider.host, toml_edit::value(addresses));
        }
        _ => return Err("egress.static_hosts is not a table".into()),
    }

    // Each setting as one line, without the comment that follows it in the file.
    let bare = |item: &Item| {
        let mut value = match item {
            Item::Value(value) => value.clone(),
            Item::Table(table) => TomlValue::InlineTable(table.clone().into_inline_table()),
            _ => return String::new(),
        };
        value.decor_mut().clear();
        value.to_string()
    };
    let lines = ["extra_ca_files", "allow_cidrs", "static_hosts"]
        .iter()
        .filter_map(|key| egress.get(key).map(|item| format!("{key} = {}", bare(item))))
        .collect();
    Ok((document.to_string(), lines))
}

fn print_report(dir: &Path, config_path: &Path, provider: &Provider, lines: &[String], env: &Environment) {
    let dir = dir.display();
    println!(
        "Echo provider https://{}:{} set up in {dir}/ (development only):",
        provider.host,
        provider.listen.port()
    );
    println!(
        "  ca.crt, server.crt, server.key   a development CA and the provider's certificate for {}",
        provider.host
    );
    println!(
        "  template.json                    {TEMPLATE_ID}: echo_read (GET /v1/echo, no approval), echo_send (POST \
         /v1/messages, approval required)"
    );
    println!("Added to {} ([egress]):", config_path.display());
    for line in lines {
        println!("  {line}");
    }
    for name in
        ["STEWARD_EGRESS__EXTRA_CA_FILES", "STEWARD_EGRESS__ALLOW_CIDRS", "STEWARD_EGRESS__STATIC_HOSTS"]
    {
        if env.get(name).is_some() {
            eprintln!(
                "steward: warning: {name} is set and overrides that setting of {}",
                config_path.display()
            );
        }
    }
    println!("Next: (re)start steward serve so it reads them, then");
    println!("  steward dev echo-provider serve --dir {dir} &");
    println!("  steward admin templates publish --file {dir}/template.json");
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), DevError> {
    replace_file(path, contents, mode).map_err(|e| failed(path, e))
}

fn failed(path: &Path, error: std::io::Error) -> DevError {
    DevError::Failed(format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests;
