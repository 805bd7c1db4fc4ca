//! The workload-side commands: `steward enroll`, `steward call`, `steward manifest`, thin wrappers
//! over `steward-client`. Exit codes (`spec/control-plane.md`): 0 executed (whatever the upstream
//! status), 4 executed with upstream status ≥ 400 under `--fail`, 1 broker error (code printed),
//! 3 approval pending or denied, 2 usage error.
//!
//! The broker URL: `--broker-url`, else `STEWARD_BROKER_URL`, else the identity's `broker_url` file
//! (written by `steward enroll`), else `https://localhost:8081`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use steward_client::{
    BrokerClient, ClientContext, ClientError, ExecuteOutcome, ExecuteRequest, HeaderField, Identity, KeyType,
};

const DEFAULT_BROKER_URL: &str = "https://localhost:8081";
const SESSION_FILE: &str = "session.json";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyTypeArg {
    Ed25519,
    P256,
}

/// Where a command's broker URL came from, for error messages.
#[derive(Debug, Clone)]
pub struct BrokerUrl {
    pub url: String,
    pub source: String,
    /// The identity's `broker_url` file, when the command has an identity (then it can be corrected).
    pub file: Option<PathBuf>,
}

impl BrokerUrl {
    /// What changes the URL: the flag and variable, and the identity's file when there is one.
    fn fix(&self) -> String {
        match &self.file {
            Some(file) => format!(
                "pass --broker-url URL (or set STEWARD_BROKER_URL) for this run, or write the right URL to {} \
                 for every later command",
                file.display()
            ),
            None => "pass --broker-url URL (or set STEWARD_BROKER_URL): the data plane's public_base_url"
                .to_owned(),
        }
    }
}

/// `--broker-url` / `STEWARD_BROKER_URL` (clap reads both into `given`), else `<identity>/broker_url`,
/// else the default.
pub fn resolve_broker_url(given: Option<&str>, identity_dir: &Path) -> BrokerUrl {
    let file = identity_dir.join(steward_client::BROKER_URL_FILE);
    if let Some(url) = given.map(str::trim).filter(|u| !u.is_empty()) {
        let source = if std::env::var("STEWARD_BROKER_URL").is_ok_and(|v| v.trim() == url) {
            "STEWARD_BROKER_URL"
        } else {
            "--broker-url"
        };
        return BrokerUrl {
            url: url.trim_end_matches('/').to_owned(),
            source: source.to_owned(),
            file: Some(file),
        };
    }
    match steward_client::read_broker_url(identity_dir) {
        Some(url) => BrokerUrl { url, source: file.display().to_string(), file: Some(file) },
        None => BrokerUrl {
            url: DEFAULT_BROKER_URL.to_owned(),
            source: format!("the default (no --broker-url, STEWARD_BROKER_URL or {})", file.display()),
            file: Some(file),
        },
    }
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The one-time enrollment token (stw_enr_…).
    #[arg(long)]
    token: String,
    /// Where to write workload.key (0600), workload.crt and ca.crt.
    #[arg(long)]
    out: PathBuf,
    /// The workload CA that verifies Steward (default: <out>/ca.crt).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// p256 (default: loaded by OpenSSL 3, Python's ssl, Node's tls) or ed25519; PKCS#8 PEM either way.
    #[arg(long, value_enum, default_value = "p256")]
    key_type: KeyTypeArg,
    /// Steward's data plane; written to <out>/broker_url for later commands.
    #[arg(long, env = "STEWARD_BROKER_URL", default_value = DEFAULT_BROKER_URL)]
    broker_url: String,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The URL the workload wants to call (the provider's URL, not Steward's).
    url: String,
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// A request header, 'name: value' (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The request body, or @FILE to read it from a file.
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
    #[arg(long)]
    integration: String,
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Bind the session to a DPoP key kept next to the identity.
    #[arg(long)]
    dpop: bool,
    /// Wait up to this many seconds for a pending approval, then repeat the call once approved.
    #[arg(long)]
    wait_approval: Option<u64>,
    /// Exit 4 when the upstream answered with a status of 400 or more.
    #[arg(long)]
    fail: bool,
    /// Print the upstream status and headers to stderr.
    #[arg(short = 'v', long)]
    verbose: bool,
    #[arg(long, env = "STEWARD_IDENTITY")]
    identity: PathBuf,
    /// Steward's data plane (default: <identity>/broker_url, written by steward enroll).
    #[arg(long, env = "STEWARD_BROKER_URL")]
    broker_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[arg(long, env = "STEWARD_IDENTITY")]
    identity: PathBuf,
    /// Steward's data plane (default: <identity>/broker_url, written by steward enroll).
    #[arg(long, env = "STEWARD_BROKER_URL")]
    broker_url: Option<String>,
    #[arg(long)]
    dpop: bool,
}

pub(crate) fn broker_failure(error: &ClientError, broker: Option<&BrokerUrl>) -> ExitCode {
    match error {
        ClientError::Broker { code, message, correlation_id, .. } => {
            eprintln!("steward: {code}: {message}");
            if let Some(id) = correlation_id {
                eprintln!("steward: correlation id {id}");
            }
        }
        ClientError::Transport(_) => {
            eprintln!("steward: {error}");
            if let Some(broker) = broker {
                eprintln!(
                    "steward: broker URL {} (from {}); is steward serve running there? To use another URL, {}",
                    broker.url,
                    broker.source,
                    broker.fix()
                );
            }
        }
        other => eprintln!("steward: {other}"),
    }
    ExitCode::from(1)
}

pub(crate) fn usage(message: &str) -> ExitCode {
    eprintln!("steward: {message}");
    ExitCode::from(2)
}

pub async fn enroll(args: EnrollArgs) -> ExitCode {
    let ca_path = args.ca_file.clone().unwrap_or_else(|| args.out.join("ca.crt"));
    let Ok(ca_pem) = std::fs::read_to_string(&ca_path) else {
        return usage(&format!(
            "cannot read the workload CA at {} (pass --ca-file: the ca_pem of the workload creation answer)",
            ca_path.display()
        ));
    };
    let key_type = match args.key_type {
        KeyTypeArg::Ed25519 => KeyType::Ed25519,
        KeyTypeArg::P256 => KeyType::P256,
    };
    match steward_client::enroll::enroll(&args.broker_url, &ca_pem, &args.token, key_type, None, &args.out)
        .await
    {
        Ok((_, enrolled)) => {
            println!(
                "Enrolled workload {} (certificate {} until {}).",
                enrolled.workload_id, enrolled.serial, enrolled.expires_at
            );
            println!("Identity written to {}.", args.out.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            let broker = BrokerUrl {
                url: args.broker_url.clone(),
                source: "--broker-url, STEWARD_BROKER_URL or the default".into(),
                file: None,
            };
            broker_failure(&error, Some(&broker))
        }
    }
}

/// A client for the identity, with the session cached in `<identity>/session.json` (0600) between runs.
async fn client(
    identity_dir: &Path,
    broker_url: &BrokerUrl,
    dpop: bool,
) -> Result<(BrokerClient, Identity), ExitCode> {
    let identity = Identity::load(identity_dir).map_err(|e| usage(&e.to_string()))?;
    let key = if dpop { Some(identity.dpop_key().map_err(|e| usage(&e.to_string()))?) } else { None };
    let client = BrokerClient::new(&broker_url.url, &identity, key).map_err(|e| usage(&e.to_string()))?;
    if let Ok(saved) = std::fs::read_to_string(identity_dir.join(SESSION_FILE)) {
        client.import_session(&saved).await;
    }
    Ok((client, identity))
}

async fn save_session(client: &BrokerClient, identity_dir: &Path) {
    let Some(json) = client.export_session().await else { return };
    let path = identity_dir.join(SESSION_FILE);
    let _ = std::fs::remove_file(&path);
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut file) = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
        let _ = file.write_all(json.as_bytes());
    }
}

fn parse_headers(raw: &[String]) -> Result<Vec<HeaderField>, ExitCode> {
    raw.iter()
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| usage(&format!("header {line:?} is not 'name: value'")))?;
            Ok(HeaderField { name: name.trim().to_owned(), value: value.trim().to_owned() })
        })
        .collect()
}

fn read_body(data: Option<&str>) -> Result<Option<Vec<u8>>, ExitCode> {
    match data {
        None => Ok(None),
        Some(text) => match text.strip_prefix('@') {
            Some(path) => std::fs::read(path).map(Some).map_err(|e| usage(&format!("-d @{path}: {e}"))),
            None => Ok(Some(text.as_bytes().to_vec())),
        },
    }
}

pub async fn call(args: CallArgs) -> ExitCode {
    let headers = match parse_headers(&args.headers) {
        Ok(headers) => headers,
        Err(code) => return code,
    };
    let body = match read_body(args.data.as_deref()) {
        Ok(body) => body,
        Err(code) => return code,
    };
    let broker = resolve_broker_url(args.broker_url.as_deref(), &args.identity);
    let (client, _) = match client(&args.identity, &broker, args.dpop).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let mut request =
        ExecuteRequest::new(&args.integration, &args.method, &args.url, headers, body.as_deref());
    if let Some(key) = &args.idempotency_key {
        request.client_context =
            Some(ClientContext { idempotency_key: Some(key.clone()), ..ClientContext::default() });
    }
    let mut outcome = client.execute(&request).await;
    if let (Ok(ExecuteOutcome::ApprovalRequired { approval_id, .. }), Some(seconds)) =
        (&outcome, args.wait_approval)
    {
        eprintln!("steward: approval {approval_id} required; waiting up to {seconds} s");
        match client.wait_for_approval(approval_id, Duration::from_secs(seconds)).await {
            Ok(status) if status.status == "approved" => outcome = client.execute(&request).await,
            Ok(status) => {
                eprintln!("steward: approval {approval_id} is {}", status.status);
                save_session(&client, &args.identity).await;
                return ExitCode::from(3);
            }
            Err(error) => return broker_failure(&error, Some(&broker)),
        }
    }
    save_session(&client, &args.identity).await;
    match outcome {
        Ok(ExecuteOutcome::Executed(response)) => {
            if args.verbose {
                eprintln!("< status {} (correlation id {})", response.status_code, response.correlation_id);
                for header in &response.headers {
                    eprintln!("< {}: {}", header.name, header.value);
                }
                if response.replayed {
                    eprintln!("< (idempotent replay)");
                }
            }
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&response.body);
            let _ = stdout.flush();
            if args.fail && response.status_code >= 400 { ExitCode::from(4) } else { ExitCode::SUCCESS }
        }
        Ok(ExecuteOutcome::ApprovalRequired { approval_id, expires_at, summary, .. }) => {
            eprintln!(
                "steward: approval required ({approval_id}, expires {expires_at}): {} {} {} [{} risk]",
                summary.method, summary.destination_host, summary.path, summary.risk_tier
            );
            ExitCode::from(3)
        }
        Err(error) => broker_failure(&error, Some(&broker)),
    }
}

pub async fn manifest(args: ManifestArgs) -> ExitCode {
    let broker = resolve_broker_url(args.broker_url.as_deref(), &args.identity);
    let (client, identity) = match client(&args.identity, &broker, args.dpop).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let workload_id = match identity.workload_id() {
        Ok(id) => id,
        Err(error) => return usage(&error.to_string()),
    };
    let result = client.manifest(&workload_id).await;
    save_session(&client, &args.identity).await;
    match result {
        Ok(manifest) => match serde_json::to_string_pretty(&manifest) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => usage(&error.to_string()),
        },
        Err(error) => broker_failure(&error, Some(&broker)),
    }
}
