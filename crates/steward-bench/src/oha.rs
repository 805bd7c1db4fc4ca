//! A second, independent load generator (issue 18): [`oha`](https://crates.io/crates/oha), run as a
//! child process against nginx and Steward in the same run as the harness's own generator, so the
//! figures do not rest on our load code alone. oha speaks mTLS (`--cert`/`--key`, rustls), sends
//! the same body with the same headers over the same number of keep-alive connections for the same
//! time; its JSON report (`--output-format json`) is parsed into an [`OhaRun`] and shown beside the
//! harness's row of the same target, with the Steward/nginx ratios of both generators.
//!
//! `--rate R` becomes oha's `-q R --latency-correction` (latency from the scheduled send time, as
//! the harness measures it). What oha cannot do: a fresh DPoP proof per request (so no
//! `oha-steward`/`oha-forward` with `--dpop`), and renewing the session (each oha phase gets a
//! session opened just before it, valid for Steward's session TTL). oha opens its connections inside
//! its measured time (the harness before it); the unmeasured warm-up run is a separate oha process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

/// The oha version `scripts/install-bench-tools` installs (the first with client certificates,
/// `--cert`/`--key`, was 1.5; this one is pinned for its JSON layout).
pub const OHA_VERSION: &str = "1.16.0";

/// Where oha comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum OhaChoice {
    Off,
    Auto,
    Path(PathBuf),
}

impl std::str::FromStr for OhaChoice {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "off" => OhaChoice::Off,
            "auto" => OhaChoice::Auto,
            path => OhaChoice::Path(PathBuf::from(path)),
        })
    }
}

/// `tools/oha/bin/oha` of this checkout (where `scripts/install-bench-tools` puts it), of the
/// current directory, then `oha` on `PATH`.
pub fn find() -> Option<PathBuf> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/oha/bin/oha");
    let path = std::env::var_os("PATH").unwrap_or_default();
    [checkout, PathBuf::from("tools/oha/bin/oha")]
        .into_iter()
        .chain(std::env::split_paths(&path).map(|dir| dir.join("oha")))
        .find(|p| p.is_file())
}

/// One oha phase: what to send where.
#[derive(Debug, Clone)]
pub struct OhaPlan {
    /// `oha-nginx`, `oha-steward`, `oha-forward`.
    pub name: String,
    /// The harness phase it stands beside (`nginx`, `steward`, `forward`).
    pub beside: String,
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The CA that verifies the server, and the client certificate and key (PEM).
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// A fixed rate (oha `-q`), when the harness runs open loop.
    pub rate: Option<f64>,
}

/// oha's numbers for one phase.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct OhaRun {
    pub name: String,
    pub beside: String,
    pub connections: usize,
    /// oha's own measured time (its deadline plus the last answers).
    pub seconds: f64,
    /// Answers received (any status).
    pub responses: u64,
    pub requests_per_second: f64,
    /// Answers with status 200 per second.
    pub ok_per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// `"200": n`, …
    pub status_codes: BTreeMap<String, u64>,
    /// Requests without an answer, by oha's error text (e.g. `aborted due to deadline`: the ones
    /// in flight when the time was up).
    pub errors: BTreeMap<String, u64>,
    /// The command line (paths of the run's temp directory included).
    pub command: String,
}

/// Steward against nginx, as each generator measured it (ok/s).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct OhaRatios {
    pub harness_steward_over_nginx: Option<f64>,
    pub oha_steward_over_nginx: Option<f64>,
    pub harness_forward_over_nginx: Option<f64>,
    pub oha_forward_over_nginx: Option<f64>,
}

/// Parses oha's `--output-format json` report.
pub fn parse(json: &str, name: &str, beside: &str, connections: usize) -> Result<OhaRun> {
    let value: Value = serde_json::from_str(json).context("oha's JSON output")?;
    let number = |pointer: &str| -> Result<f64> {
        value
            .pointer(pointer)
            .and_then(Value::as_f64)
            .with_context(|| format!("oha JSON: no number at {pointer}"))
    };
    let counts = |pointer: &str| -> BTreeMap<String, u64> {
        value
            .pointer(pointer)
            .and_then(Value::as_object)
            .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_u64()?))).collect())
            .unwrap_or_default()
    };
    let seconds = number("/summary/total")?;
    if seconds <= 0.0 {
        bail!("oha JSON: a run of {seconds} s");
    }
    let status_codes = counts("/statusCodeDistribution");
    let responses: u64 = status_codes.values().sum();
    let ok = status_codes.get("200").copied().unwrap_or(0);
    // Percentiles and the slowest answer are in seconds; an empty run has them null.
    let ms = |pointer: &str| value.pointer(pointer).and_then(Value::as_f64).map_or(0.0, |s| s * 1000.0);
    Ok(OhaRun {
        name: name.to_owned(),
        beside: beside.to_owned(),
        connections,
        seconds,
        responses,
        requests_per_second: responses as f64 / seconds,
        ok_per_second: ok as f64 / seconds,
        p50_ms: ms("/latencyPercentiles/p50"),
        p90_ms: ms("/latencyPercentiles/p90"),
        p99_ms: ms("/latencyPercentiles/p99"),
        max_ms: ms("/summary/slowest"),
        status_codes,
        errors: counts("/errorDistribution"),
        command: String::new(),
    })
}

/// The plan that sends what `request` is (method, path, headers but `host`, body) to `https://{host}`,
/// over `plan`'s connections for its time. A `dpop` header (one proof per request) cannot be replayed.
#[allow(clippy::too_many_arguments)]
pub async fn plan_of(
    name: &str,
    beside: &str,
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
    load: &crate::load::LoadPlan,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<OhaPlan> {
    use http_body_util::BodyExt as _;
    let (parts, body) = request.into_parts();
    if parts.headers.contains_key("dpop") {
        bail!("{name}: oha cannot send a fresh DPoP proof per request");
    }
    let host = parts.headers.get("host").context("the request has no host header")?.to_str()?.to_owned();
    let mut headers = Vec::new();
    for (header, value) in &parts.headers {
        if header != "host" {
            headers.push((header.as_str().to_owned(), value.to_str()?.to_owned()));
        }
    }
    let body = body.collect().await.map_err(|e| match e {})?.to_bytes().to_vec();
    Ok(OhaPlan {
        name: name.to_owned(),
        beside: beside.to_owned(),
        url: format!("https://{host}{}", parts.uri),
        method: parts.method.as_str().to_owned(),
        headers,
        body,
        ca_pem: ca_pem.to_owned(),
        cert_pem: cert_pem.to_owned(),
        key_pem: key_pem.to_owned(),
        connections: load.connections,
        warmup: load.warmup,
        duration: load.duration,
        rate: match load.mode {
            crate::load::LoadMode::Rate(rate) => Some(rate),
            crate::load::LoadMode::Closed => None,
        },
    })
}

/// oha's arguments for `plan` (files in `dir`) running for `duration`.
fn arguments(plan: &OhaPlan, dir: &Path, duration: Duration) -> Vec<String> {
    let file = |name: &str| dir.join(name).display().to_string();
    let mut args: Vec<String> = vec![
        "--no-tui".into(),
        "--output-format".into(),
        "json".into(),
        "--ipv4".into(),
        "-z".into(),
        format!("{}ms", duration.as_millis().max(1)),
        "-c".into(),
        plan.connections.max(1).to_string(),
        "-m".into(),
        plan.method.clone(),
        "--cacert".into(),
        file("ca.pem"),
        "--cert".into(),
        file("cert.pem"),
        "--key".into(),
        file("key.pem"),
    ];
    if let Some(rate) = plan.rate {
        args.extend(["-q".into(), format!("{rate}"), "--latency-correction".into()]);
    }
    for (name, value) in &plan.headers {
        args.extend(["-H".into(), format!("{name}: {value}")]);
    }
    if !plan.body.is_empty() {
        args.extend(["-D".into(), file("body")]);
    }
    args.push(plan.url.clone());
    args
}

/// Runs oha for `plan.warmup` (unmeasured, when above 0) and then `plan.duration`, and parses the
/// measured run. `dir` receives the PEM files and the body.
pub async fn run(binary: &Path, plan: &OhaPlan, dir: &Path) -> Result<OhaRun> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.pem"), &plan.ca_pem)?;
    std::fs::write(dir.join("cert.pem"), &plan.cert_pem)?;
    write_private(&dir.join("key.pem"), plan.key_pem.as_bytes())?;
    std::fs::write(dir.join("body"), &plan.body)?;
    if !plan.warmup.is_zero() {
        invoke(binary, &arguments(plan, dir, plan.warmup))
            .await
            .with_context(|| format!("{} warm-up", plan.name))?;
    }
    let args = arguments(plan, dir, plan.duration);
    let output = invoke(binary, &args).await.with_context(|| plan.name.clone())?;
    let mut run = parse(&output, &plan.name, &plan.beside, plan.connections)?;
    // The session token is a credential: the recorded command names the header, not its value.
    let shown: Vec<String> = args
        .iter()
        .map(|a| match a.split_once(": ") {
            Some(("authorization", value)) => {
                format!("authorization: {} <token>", value.split(' ').next().unwrap_or(""))
            }
            _ => a.clone(),
        })
        .collect();
    run.command = format!("{} {}", binary.display(), shown.join(" "));
    Ok(run)
}

async fn invoke(binary: &Path, args: &[String]) -> Result<String> {
    let output = tokio::process::Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    if !output.status.success() {
        bail!("oha exited with {}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    String::from_utf8(output.stdout).context("oha's output is not UTF-8")
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    Ok(())
}

/// The Steward/nginx ratios of both generators; `harness` gives a harness phase's ok/s by name.
pub fn ratios(runs: &[OhaRun], harness: impl Fn(&str) -> Option<f64>) -> OhaRatios {
    let oha = |name: &str| runs.iter().find(|r| r.name == name).map(|r| r.ok_per_second);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    OhaRatios {
        harness_steward_over_nginx: ratio(harness("steward"), harness("nginx")),
        oha_steward_over_nginx: ratio(oha("oha-steward"), oha("oha-nginx")),
        harness_forward_over_nginx: ratio(harness("forward"), harness("nginx")),
        oha_forward_over_nginx: ratio(oha("oha-forward"), oha("oha-nginx")),
    }
}

/// The text report's oha section: each oha run beside the harness's row of the same target.
pub fn render(
    runs: &[OhaRun],
    ratios: &OhaRatios,
    harness: impl Fn(&str) -> Option<(f64, f64, f64)>,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if runs.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nsecond generator (oha) beside the harness, same target, connections and duration:\n{:<12} {:>6} {:>10} {:>10} {:>9} {:>9} {:>9} | {:>14} {:>9} {:>9}",
        "target", "conns", "req/s", "ok/s", "p50 ms", "p90 ms", "p99 ms", "harness ok/s", "p50 ms", "p99 ms"
    );
    for r in runs {
        let (ok, p50, p99) = match harness(&r.beside) {
            Some((ok, p50, p99)) => (format!("{ok:.0}"), format!("{p50:.3}"), format!("{p99:.3}")),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:<12} {:>6} {:>10.0} {:>10.0} {:>9.3} {:>9.3} {:>9.3} | {:>14} {:>9} {:>9}",
            r.name,
            r.connections,
            r.requests_per_second,
            r.ok_per_second,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            ok,
            p50,
            p99
        );
    }
    for r in runs {
        let statuses: Vec<String> = r.status_codes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k:?}={v}")).collect();
        let _ = writeln!(
            out,
            "{} statuses: {}; errors: {}",
            r.name,
            statuses.join(" "),
            if errors.is_empty() { "none".to_owned() } else { errors.join(" ") }
        );
    }
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    let _ = writeln!(
        out,
        "steward/nginx (ok/s): harness {}, oha {};  forward/nginx: harness {}, oha {}",
        fmt(ratios.harness_steward_over_nginx),
        fmt(ratios.oha_steward_over_nginx),
        fmt(ratios.harness_forward_over_nginx),
        fmt(ratios.oha_forward_over_nginx)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `oha --no-tui --output-format json --ipv4 -z 1s -c 2 -q 200 http://127.0.0.1:18731/echo.json`
    /// of oha 1.16.0 against a local static file server (captured; not edited).
    const SAMPLE: &str = include_str!("testdata/oha-1.16.0.json");

    #[test]
    fn oha_json_is_parsed() {
        let run = parse(SAMPLE, "oha-nginx", "nginx", 2).unwrap();
        assert_eq!(run.status_codes, BTreeMap::from([("200".to_owned(), 200)]));
        assert_eq!(run.errors, BTreeMap::from([("aborted due to deadline".to_owned(), 1)]));
        assert_eq!(run.responses, 200);
        assert!((run.seconds - 1.002388611).abs() < 1e-9);
        // Answers over oha's total time (its own requestsPerSec, 200.52, also counts the aborted one).
        assert!((run.requests_per_second - 200.0 / 1.002388611).abs() < 1e-6, "{run:?}");
        assert!((run.ok_per_second - run.requests_per_second).abs() < 1e-9);
        assert!((run.p50_ms - 0.946346).abs() < 1e-6, "{run:?}");
        assert!((run.p90_ms - 2.453253).abs() < 1e-6);
        assert!((run.p99_ms - 16.570282).abs() < 1e-6);
        assert!((run.max_ms - 20.091672).abs() < 1e-6);
        assert!(parse("{}", "x", "y", 1).is_err());
        assert!(parse("not json", "x", "y", 1).is_err());
    }

    #[test]
    fn only_200_counts_as_ok_and_ratios_pair_the_generators() {
        let mut value: Value = serde_json::from_str(SAMPLE).unwrap();
        value["statusCodeDistribution"] = serde_json::json!({"200": 150, "401": 50});
        let run = parse(&value.to_string(), "oha-steward", "steward", 2).unwrap();
        assert_eq!(run.responses, 200);
        assert!((run.ok_per_second * run.seconds - 150.0).abs() < 1e-6);
        let nginx = OhaRun { name: "oha-nginx".into(), ok_per_second: 1000.0, ..Default::default() };
        let steward = OhaRun { name: "oha-steward".into(), ok_per_second: 250.0, ..Default::default() };
        let ratios = ratios(&[nginx, steward], |name| match name {
            "nginx" => Some(800.0),
            "steward" => Some(400.0),
            _ => None,
        });
        assert_eq!(ratios.oha_steward_over_nginx, Some(0.25));
        assert_eq!(ratios.harness_steward_over_nginx, Some(0.5));
        assert_eq!(ratios.oha_forward_over_nginx, None);
    }

    #[test]
    fn the_text_report_puts_oha_beside_the_harness() {
        let run = parse(SAMPLE, "oha-nginx", "nginx", 2).unwrap();
        let ratios = OhaRatios { harness_steward_over_nginx: Some(0.165), ..Default::default() };
        let text = render(&[run], &ratios, |name| (name == "nginx").then_some((180.0, 1.25, 9.5)));
        let row = text.lines().find(|l| l.starts_with("oha-nginx ")).unwrap();
        assert!(
            row.contains(" 200 ") && row.contains("0.946") && row.contains("| ") && row.contains("1.250"),
            "{row}"
        );
        assert!(
            text.contains("oha-nginx statuses: 200=200; errors: \"aborted due to deadline\"=1"),
            "{text}"
        );
        assert!(text.contains("steward/nginx (ok/s): harness 0.165, oha -"), "{text}");
        assert!(render(&[], &ratios, |_| None).is_empty());
    }

    #[tokio::test]
    async fn the_plan_replays_the_harness_request_with_mtls() {
        let request = http::Request::builder()
            .method("POST")
            .uri("/v1/execute")
            .header("host", "localhost:8443")
            .header("content-type", "application/json")
            .header("authorization", "Bearer stw_sess_x")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{\"a\":1}")))
            .unwrap();
        let load = crate::load::LoadPlan {
            connections: 64,
            mode: crate::load::LoadMode::Closed,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(20),
            measure: crate::load::Measure::Complete,
        };
        let plan = plan_of("oha-steward", "steward", request, &load, "CA", "CERT", "KEY").await.unwrap();
        assert_eq!(plan.url, "https://localhost:8443/v1/execute");
        assert_eq!(plan.body, b"{\"a\":1}");
        assert_eq!(
            plan.headers,
            vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("authorization".to_owned(), "Bearer stw_sess_x".to_owned())
            ]
        );
        let args = arguments(&plan, Path::new("/d"), plan.duration).join(" ");
        for expected in [
            "-z 20000ms",
            "-c 64",
            "-m POST",
            "--cacert /d/ca.pem --cert /d/cert.pem --key /d/key.pem",
            "-H content-type: application/json",
            "-D /d/body",
        ] {
            assert!(args.contains(expected), "{expected:?} not in {args}");
        }
        assert!(args.ends_with("https://localhost:8443/v1/execute"));
        assert!(!args.contains("-q"));

        let bound = http::Request::builder()
            .uri("/v1/execute")
            .header("host", "localhost:8443")
            .header("dpop", "proof")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        assert!(plan_of("oha-steward", "steward", bound, &load, "CA", "CERT", "KEY").await.is_err());
    }
}
