//! `steward doctor`: checks a data directory (the server side) or a workload identity directory
//! (the workload side) and prints one line per check — `ok`, `warn` or `FAIL` — saying what is
//! wrong and the command or setting that fixes it. Exit 0 when nothing failed, 1 otherwise, 2 on a
//! usage error. It never writes a file; the identity check opens one session (an audited
//! `session_issued`, like any `steward call`).

mod data_dir;
mod identity;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use steward_types::{Clock, SystemClock};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The data directory to check (default: STEWARD_DATA_DIR, else ./steward-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Check this workload identity directory (steward enroll --out) instead; default
    /// STEWARD_IDENTITY when no --data-dir is given.
    #[arg(long, conflicts_with = "data_dir")]
    identity: Option<PathBuf>,
    /// With an identity: the broker (default: <identity>/broker_url).
    #[arg(long, env = "STEWARD_BROKER_URL")]
    broker_url: Option<String>,
}

/// What `doctor` checks, from the flags, then the environment.
enum Target {
    DataDir(PathBuf),
    Identity(PathBuf),
}

fn target(args: &DoctorArgs) -> Target {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = &args.identity {
        return Target::Identity(dir.clone());
    }
    if let Some(dir) = &args.data_dir {
        return Target::DataDir(dir.clone());
    }
    if let Some(dir) = env("STEWARD_DATA_DIR") {
        return Target::DataDir(dir);
    }
    if let Some(dir) = env("STEWARD_IDENTITY") {
        return Target::Identity(dir);
    }
    Target::DataDir(PathBuf::from(crate::admin::DEFAULT_DATA_DIR))
}

pub async fn run(args: DoctorArgs) -> ExitCode {
    let mut report = Report::default();
    match target(&args) {
        Target::DataDir(dir) => data_dir::check(&dir, &mut report).await,
        Target::Identity(dir) => identity::check(&dir, args.broker_url.as_deref(), &mut report).await,
    }
    report.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// The lines printed so far and how many of each level.
#[derive(Debug, Default)]
pub(crate) struct Report {
    ok: usize,
    warn: usize,
    fail: usize,
}

impl Report {
    fn line(&mut self, level: Level, check: &str, detail: &dyn Display, fix: Option<&dyn Display>) {
        let label = match level {
            Level::Ok => {
                self.ok += 1;
                "ok"
            }
            Level::Warn => {
                self.warn += 1;
                "warn"
            }
            Level::Fail => {
                self.fail += 1;
                "FAIL"
            }
        };
        let fix = fix.map(|f| format!(" — fix: {f}")).unwrap_or_default();
        println!("{label:<4}  {check}: {detail}{fix}");
    }

    pub(crate) fn ok(&mut self, check: &str, detail: impl Display) {
        self.line(Level::Ok, check, &detail, None);
    }

    pub(crate) fn warn(&mut self, check: &str, detail: impl Display, fix: impl Display) {
        self.line(Level::Warn, check, &detail, Some(&fix));
    }

    pub(crate) fn fail(&mut self, check: &str, detail: impl Display, fix: impl Display) {
        self.line(Level::Fail, check, &detail, Some(&fix));
    }

    fn finish(self) -> ExitCode {
        println!("{} ok, {} warn, {} FAIL", self.ok, self.warn, self.fail);
        if self.fail == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
    }
}

/// A file's permission bits, when it exists.
pub(crate) fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
}

/// Checks that a private file exists and is readable by its owner only: missing → `missing`
/// decides, readable by group or others → FAIL with the `chmod` that fixes it.
pub(crate) fn private_file(report: &mut Report, check: &str, path: &Path, what: &str) -> bool {
    let Some(mode) = mode_of(path) else { return false };
    if mode & 0o077 != 0 {
        report.fail(
            check,
            format!("{} has mode {mode:04o}: {what} is readable by other users", path.display()),
            format!("chmod 600 {}", path.display()),
        );
    } else {
        report.ok(check, format!("{} present, mode {mode:04o}", path.display()));
    }
    true
}

/// A certificate's validity, for expiry checks.
pub(crate) struct CertValidity {
    pub not_before: i64,
    pub not_after: i64,
    /// The URI SANs (a workload's SPIFFE id).
    pub uris: Vec<String>,
    /// The DER of the SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// A short name of the key type (`ECDSA P-256`, `Ed25519`, `RSA`, …).
    pub key_type: String,
}

/// Parses the first certificate of a PEM file.
pub(crate) fn read_cert(path: &Path) -> Result<CertValidity, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let der = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| format!("{} holds no PEM certificate: {e}", path.display()))?;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("{} is not a valid certificate: {e}", path.display()))?;
    let mut uris = Vec::new();
    for extension in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
            for name in &san.general_names {
                if let GeneralName::URI(uri) = name {
                    uris.push((*uri).to_owned());
                }
            }
        }
    }
    let spki = cert.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
    let key_type = match (algorithm.as_str(), curve.as_deref()) {
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => "ECDSA P-256",
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => "ECDSA P-384",
        ("1.2.840.10045.2.1", _) => "ECDSA",
        ("1.3.101.112", _) => "Ed25519",
        ("1.2.840.113549.1.1.1", _) => "RSA",
        _ => "unknown key type",
    }
    .to_owned();
    Ok(CertValidity {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        uris,
        spki: spki.raw.to_vec(),
        key_type,
    })
}

/// The current time in Unix seconds.
pub(crate) fn now_seconds() -> i64 {
    SystemClock.now().unix_seconds()
}

/// `2025-01-02` for Unix seconds.
pub(crate) fn date_of(seconds: i64) -> String {
    steward_types::Timestamp::from_unix_seconds(seconds)
        .map(|t| t.to_rfc3339().chars().take(10).collect())
        .unwrap_or_else(|_| seconds.to_string())
}

/// An expiry check: FAIL when expired or not yet valid, warn when less than `warn_below` of the
/// lifetime (or less than a day) is left.
pub(crate) fn check_expiry(
    report: &mut Report,
    check: &str,
    cert: &CertValidity,
    warn_below: f64,
    renew: &str,
) {
    let now = now_seconds();
    if cert.not_before > now {
        report.fail(
            check,
            format!("not valid before {} (this machine's clock may be behind)", date_of(cert.not_before)),
            "set the clock right (e.g. timedatectl set-ntp true)",
        );
        return;
    }
    let left = cert.not_after - now;
    if left <= 0 {
        report.fail(check, format!("expired on {}", date_of(cert.not_after)), renew);
        return;
    }
    let days = left / 86_400;
    let lifetime = (cert.not_after - cert.not_before).max(1);
    #[allow(clippy::cast_precision_loss)] // seconds of a certificate's lifetime: far below 2^52
    let fraction = left as f64 / lifetime as f64;
    let detail = format!("valid until {} ({days} days left)", date_of(cert.not_after));
    if fraction < warn_below || left < 86_400 {
        report.warn(check, format!("{detail}: renew soon"), renew);
    } else {
        report.ok(check, detail);
    }
}

/// The HTTP `date` header against this machine's clock: warn past 60 s, FAIL past 300 s (the
/// default `dpop.max_skew_seconds`).
pub(crate) fn check_skew(report: &mut Report, date: Option<&str>, peer: &str) {
    let Some(date) = date else {
        report.warn(
            "clock",
            format!("{peer} sent no Date header; skew unknown"),
            "compare `date -u` on both hosts",
        );
        return;
    };
    let Ok(theirs) = httpdate::parse_http_date(date) else {
        report.warn(
            "clock",
            format!("{peer} sent an unreadable Date header {date:?}"),
            "compare `date -u` on both hosts",
        );
        return;
    };
    let theirs = theirs.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let theirs = i64::try_from(theirs).unwrap_or(i64::MAX);
    let skew = now_seconds() - theirs;
    let detail = match skew {
        0 => format!("in step with {peer} (to the second)"),
        s if s > 0 => format!("{s} s ahead of {peer}"),
        s => format!("{} s behind {peer}", -s),
    };
    let fix = "synchronize the clocks (e.g. timedatectl set-ntp true, chrony)";
    match skew.unsigned_abs() {
        0..=60 => report.ok("clock", detail),
        61..=300 => {
            report.warn("clock", format!("{detail}: DPoP proofs and sessions are judged by time"), fix)
        }
        _ => report.fail(
            "clock",
            format!("{detail}: beyond the 300 s DPoP skew; proofs and certificates will be refused"),
            fix,
        ),
    }
}
