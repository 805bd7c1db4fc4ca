//! The load generator, shared by every target so that direct, nginx and Steward are driven by the
//! same code: N connections (HTTP/1.1 keep-alive over rustls), each a task sending one request at a
//! time. Closed loop (`--connections`): each task sends its next request as soon as the last answer
//! is read. Open loop (`--rate`): request i is *scheduled* at `start + i / rate`; a free task sends
//! it at that time (or as soon as it is free, when all are busy) and its latency is measured from the
//! scheduled time, so a stall is charged to every request it delayed (no coordinated omission).
//! What is timed is either the whole answer ([`Measure::Complete`]) or the time to its first body
//! byte ([`Measure::FirstByte`], for streams; the rest of the body is still read to its end).

// The load generator is a client of the target under test (loopback); not egress of Steward.
// (`clippy.toml` bans `TcpStream::connect` outside steward-egress.)
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::report::{LatencySummary, PhaseResult};

/// Where requests go.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub server_name: ServerName<'static>,
    pub tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("addr", &self.addr).field("server_name", &self.server_name).finish()
    }
}

/// Builds request number `seq`; returns its kind (an index into [`RequestFactory::kinds`]).
pub trait RequestFactory: Send + Sync {
    fn kinds(&self) -> &[String];
    fn make(&self, seq: u64) -> Result<(usize, Request<Full<Bytes>>)>;
    /// The outcome label of an answer: `ok` for the expected success, else a code.
    fn classify(&self, status: u16, body: &[u8]) -> String {
        classify_status(status, body)
    }
}

/// 200 → `ok`, 202 → `approval_required`; otherwise the code of a JSON error body — the `error`
/// field of execute's errors, or `error.code` of forward mode's (`{"type":"error","error":{…}}`) —
/// or `http_<status>`.
pub fn classify_status(status: u16, body: &[u8]) -> String {
    match status {
        200 => "ok".to_owned(),
        202 => "approval_required".to_owned(),
        _ => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                let error = v.get("error")?;
                error.as_str().or_else(|| error.get("code")?.as_str()).map(str::to_owned)
            })
            .unwrap_or_else(|| format!("http_{status}")),
    }
}

/// How load is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadMode {
    /// N connections in a closed loop.
    Closed,
    /// A fixed request rate over N connections (open loop).
    Rate(f64),
}

/// What one request's latency is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// Until the last byte of the answer.
    Complete,
    /// Until the first byte of the answer's body (TTFB of a stream).
    FirstByte,
}

impl Measure {
    pub fn label(self) -> &'static str {
        match self {
            Measure::Complete => "complete",
            Measure::FirstByte => "first_byte",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub connections: usize,
    pub mode: LoadMode,
    pub warmup: Duration,
    pub duration: Duration,
    pub measure: Measure,
}

struct WorkerResult {
    histograms: Vec<Histogram<u64>>,
    outcomes: BTreeMap<String, u64>,
    requests: u64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("static histogram bounds are valid")
}

/// Opens one keep-alive connection.
pub async fn connect(endpoint: &Endpoint) -> Result<SendRequest<Full<Bytes>>> {
    let tcp =
        TcpStream::connect(endpoint.addr).await.with_context(|| format!("connecting {}", endpoint.addr))?;
    tcp.set_nodelay(true)?;
    let tls = TlsConnector::from(Arc::clone(&endpoint.tls))
        .connect(endpoint.server_name.clone(), tcp)
        .await
        .context("TLS handshake")?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Runs one phase against `endpoint` and summarizes it.
pub async fn run(
    name: &str,
    endpoint: &Endpoint,
    factory: Arc<dyn RequestFactory>,
    plan: &LoadPlan,
) -> Result<PhaseResult> {
    // Open every connection first, so the handshakes are not part of the measurement.
    let mut senders = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        senders.push(connect(endpoint).await?);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(plan.connections);
    for sender in senders {
        let endpoint = endpoint.clone();
        let factory = Arc::clone(&factory);
        let next = Arc::clone(&next);
        let mode = plan.mode;
        let measure = plan.measure;
        tasks.push(tokio::spawn(async move {
            worker(sender, endpoint, factory, next, mode, measure, start, measure_from, end).await
        }));
    }
    let kinds = factory.kinds().to_vec();
    let mut histograms: Vec<Histogram<u64>> = kinds.iter().map(|_| new_histogram()).collect();
    let mut outcomes = BTreeMap::new();
    let mut requests = 0;
    for task in tasks {
        let result = task.await.context("a load task panicked")?;
        for (total, part) in histograms.iter_mut().zip(&result.histograms) {
            total.add(part).context("merging histograms")?;
        }
        for (code, n) in result.outcomes {
            *outcomes.entry(code).or_insert(0) += n;
        }
        requests += result.requests;
    }
    let mut all = new_histogram();
    for h in &histograms {
        all.add(h).context("merging histograms")?;
    }
    let seconds = plan.duration.as_secs_f64();
    let ok = outcomes.get("ok").copied().unwrap_or(0);
    let by_kind = if kinds.len() > 1 {
        kinds.iter().zip(&histograms).map(|(k, h)| (k.clone(), LatencySummary::from_histogram(h))).collect()
    } else {
        BTreeMap::new()
    };
    Ok(PhaseResult {
        name: name.to_owned(),
        measure: plan.measure.label().to_owned(),
        mode: match plan.mode {
            LoadMode::Closed => "connections".to_owned(),
            LoadMode::Rate(_) => "rate".to_owned(),
        },
        connections: plan.connections,
        target_rate: match plan.mode {
            LoadMode::Closed => None,
            LoadMode::Rate(r) => Some(r),
        },
        duration_seconds: seconds,
        requests,
        requests_per_second: requests as f64 / seconds,
        ok_per_second: ok as f64 / seconds,
        latency: LatencySummary::from_histogram(&all),
        by_kind,
        outcomes,
        rss: None,
        upstream_connections: 0,
    })
}

/// Reads an answer's body to its end; returns the whole body (kept only when `keep`) and when its
/// first byte arrived (`None` for an empty body).
pub async fn read_body(body: Incoming, keep: bool) -> Result<(Vec<u8>, Option<Instant>), hyper::Error> {
    let mut body = body;
    let mut kept = Vec::new();
    let mut first = None;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data()
            && !data.is_empty()
        {
            first.get_or_insert_with(Instant::now);
            if keep {
                kept.extend_from_slice(&data);
            }
        }
    }
    Ok((kept, first))
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    mut sender: SendRequest<Full<Bytes>>,
    endpoint: Endpoint,
    factory: Arc<dyn RequestFactory>,
    next: Arc<AtomicU64>,
    mode: LoadMode,
    measure: Measure,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> WorkerResult {
    let mut result = WorkerResult {
        histograms: factory.kinds().iter().map(|_| new_histogram()).collect(),
        outcomes: BTreeMap::new(),
        requests: 0,
    };
    let mut connected = true;
    tokio::time::sleep_until(start).await;
    loop {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        let scheduled = match mode {
            LoadMode::Closed => Instant::now(),
            LoadMode::Rate(rate) => start + Duration::from_secs_f64(seq as f64 / rate),
        };
        if scheduled >= end {
            break;
        }
        tokio::time::sleep_until(scheduled).await;
        let measured = scheduled >= measure_from;
        // `at`: when the timed part ended (now, unless the first byte of a stream came earlier).
        let record = |result: &mut WorkerResult, kind: usize, code: String, at: Instant| {
            if measured {
                let micros = u64::try_from(at.saturating_duration_since(scheduled).as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                result.histograms[kind].saturating_record(micros);
                *result.outcomes.entry(code).or_insert(0) += 1;
                result.requests += 1;
            }
        };
        if !connected {
            match connect(&endpoint).await {
                Ok(s) => {
                    sender = s;
                    connected = true;
                }
                Err(_) => {
                    record(&mut result, 0, "connect_failed".to_owned(), Instant::now());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let (kind, request) = match factory.make(seq) {
            Ok(r) => r,
            Err(_) => {
                record(&mut result, 0, "request_build_failed".to_owned(), Instant::now());
                continue;
            }
        };
        if sender.ready().await.is_err() {
            connected = false;
            record(&mut result, kind, "connection_closed".to_owned(), Instant::now());
            continue;
        }
        match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                match read_body(response.into_body(), status != 200).await {
                    Ok((body, first)) => {
                        let code =
                            if status == 200 { "ok".to_owned() } else { factory.classify(status, &body) };
                        let at = match measure {
                            Measure::FirstByte => first.unwrap_or_else(Instant::now),
                            Measure::Complete => Instant::now(),
                        };
                        record(&mut result, kind, code, at);
                    }
                    Err(_) => {
                        connected = false;
                        record(&mut result, kind, "body_read_failed".to_owned(), Instant::now());
                    }
                }
            }
            Err(_) => {
                connected = false;
                record(&mut result, kind, "transport_error".to_owned(), Instant::now());
            }
        }
    }
    result
}

/// A client TLS configuration trusting `ca_pem`, optionally presenting a client certificate;
/// ALPN `http/1.1`.
pub fn client_tls(ca_pem: &str, client: Option<(&str, &str)>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
