//! A local HTTPS stand-in for `api.openai.com` and `api.anthropic.com` that speaks their real wire
//! formats, so the official SDKs (`tests/clients/`) can be pointed at it — directly, or through
//! `steward gateway` with `egress.static_hosts` sending both names to 127.0.0.1 and its CA in
//! `egress.extra_ca_files`.
//!
//! - Real TLS (rustls, a certificate from its own [`TestCa`] for both API hosts, `localhost` and
//!   127.0.0.1), HTTP/1.1 and HTTP/2 (ALPN). Streams are written one HTTP chunk (or DATA frame) per SSE
//!   event, each flushed before the next is produced.
//! - Routes: OpenAI `POST /v1/chat/completions`, `POST /v1/responses` (JSON, or SSE with `stream: true`),
//!   `POST /v1/embeddings`, `GET /v1/models`; Anthropic `POST /v1/messages` (JSON or SSE),
//!   `POST /v1/messages/count_tokens`, `GET /v1/models` (Anthropic when the request has
//!   `anthropic-version` or its host is `api.anthropic.com`).
//! - Auth as the real services check it: OpenAI wants `authorization: Bearer <openai key>`, Anthropic
//!   `x-api-key: <anthropic key>` or `authorization: Bearer <anthropic key>` (what its Python SDK 2.x
//!   sends), and `anthropic-version`; else 401 (400 without the version) in the provider's error shape.
//! - Every request is recorded ([`FakeProvider::requests`]) before it is answered, even when refused.
//! - The **model name** selects a test behaviour ([`Scenario`], helpers in [`models`]); any other model
//!   gets the normal answer [`NORMAL_TEXT`] with usage [`INPUT_TOKENS`] / [`OUTPUT_TOKENS`].

mod anthropic;
mod openai;
#[cfg(test)]
mod sdk_tests;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::pki::TestCa;
use crate::upstream::ReceivedRequest;

/// The names the fake's certificate is valid for.
pub const PROVIDER_HOSTS: [&str; 4] = ["api.openai.com", "api.anthropic.com", "localhost", "127.0.0.1"];

/// The reply text of a normal (non-scenario) request.
pub const NORMAL_TEXT: &str = "Hello from the fake provider.";
/// The reply text of [`Scenario::Gated`] and [`Scenario::Slow`]: `"before"` is sent before the
/// gate / pause, `" after"` after it.
pub const GATED_TEXT: &str = "before after";
/// Usage every answer reports (chat: `prompt_tokens` / `completion_tokens`; responses and
/// Anthropic: `input_tokens` / `output_tokens`; count_tokens: `input_tokens`). Anthropic's
/// `message_start` reports `output_tokens: 1`, as the real API does; the final `message_delta` has
/// [`OUTPUT_TOKENS`].
pub const INPUT_TOKENS: u64 = 13;
pub const OUTPUT_TOKENS: u64 = 7;
/// The pause between the two halves of [`Scenario::Split`].
pub const SPLIT_PAUSE: Duration = Duration::from_millis(100);
/// `retry-after` (seconds) on a 429.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// Model names that select a [`Scenario`].
pub mod models {
    /// The reply contains the credential the provider received: `"Your key is <key>."`.
    pub const ECHO: &str = "fake-echo";
    /// As [`ECHO`], but the event (or JSON body) holding the key is written as two chunks split in the
    /// middle of the key, [`super::SPLIT_PAUSE`] apart.
    pub const SPLIT: &str = "fake-split";
    /// Streams send everything up to the first text delta (`"before"`), then wait for
    /// [`super::FakeProvider::release_gate`]; a JSON answer waits before its head.
    pub const GATED: &str = "fake-gated";

    /// Like [`GATED`] but pauses `millis` instead of waiting for the gate.
    pub fn slow(millis: u64) -> String {
        format!("fake-slow-{millis}")
    }

    /// Answers `status` in the provider's error shape (429 with `retry-after`).
    pub fn error(status: u16) -> String {
        format!("fake-error-{status}")
    }
}

/// The test behaviour a request asks for, by its model name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    Normal,
    Echo,
    Split,
    Gated,
    Slow(Duration),
    Error(u16),
}

impl Scenario {
    pub fn from_model(model: &str) -> Self {
        if model == models::ECHO {
            return Self::Echo;
        }
        if model == models::SPLIT {
            return Self::Split;
        }
        if model == models::GATED {
            return Self::Gated;
        }
        if let Some(millis) = model.strip_prefix("fake-slow-").and_then(|m| m.parse().ok()) {
            return Self::Slow(Duration::from_millis(millis));
        }
        if let Some(status) = model.strip_prefix("fake-error-").and_then(|s| s.parse::<u16>().ok())
            && (400..600).contains(&status)
        {
            return Self::Error(status);
        }
        Self::Normal
    }

    /// The text deltas of the reply; `key` is the credential the provider received.
    fn deltas(&self, key: &str) -> Vec<String> {
        match self {
            Self::Echo | Self::Split => vec!["Your key is ".into(), key.into(), ".".into()],
            Self::Gated | Self::Slow(_) => vec!["before".into(), " after".into()],
            Self::Normal | Self::Error(_) => {
                ["Hello", " from", " the", " fake", " provider."].map(String::from).to_vec()
            }
        }
    }
}

/// The running fake (it stops with the test's runtime).
#[derive(Debug)]
pub struct FakeProvider {
    pub addr: SocketAddr,
    /// The CA that issued the fake's certificate (PEM), for `egress.extra_ca_files`, `SSL_CERT_FILE`,
    /// `NODE_EXTRA_CA_CERTS`.
    pub ca_pem: String,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    openai_key: String,
    anthropic_key: String,
    received: Mutex<Vec<ReceivedRequest>>,
    /// One permit per released gated answer.
    gate: Semaphore,
    /// How many answers have reached the gate so far.
    gated: watch::Sender<usize>,
}

impl FakeProvider {
    /// Binds 127.0.0.1 on a free port and serves until the runtime ends. `openai_key` and
    /// `anthropic_key` are the credentials it accepts (what Steward injects).
    pub async fn start(openai_key: &str, anthropic_key: &str) -> Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), openai_key, anthropic_key).await
    }

    /// As [`Self::start`], on `addr` — e.g. a loopback address of its own on port 443, where the
    /// built-in templates (`allowed_ports: [443]`) can reach it. A bind failure (address in use, no
    /// permission for a port below 1024) is an [`std::io::Error`] (`error.downcast_ref`), so a caller
    /// can try another address.
    pub async fn start_on(addr: SocketAddr, openai_key: &str, anthropic_key: &str) -> Result<Self> {
        let ca = TestCa::new("fake LLM provider CA")?;
        let acceptor = ca.server_cert(&PROVIDER_HOSTS)?.acceptor(&[b"h2", b"http/1.1"])?;
        let dir = tempfile::tempdir()?;
        let ca_file = dir.path().join("fake-provider-ca.pem");
        std::fs::write(&ca_file, &ca.cert_pem)?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            openai_key: openai_key.to_owned(),
            anthropic_key: anthropic_key.to_owned(),
            received: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            gated: watch::Sender::new(0),
        });
        tokio::spawn(serve(listener, acceptor, Arc::clone(&state)));
        Ok(Self { addr, ca_pem: ca.cert_pem.clone(), ca_file, _dir: dir, state })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A file holding [`Self::ca_pem`] (lives as long as the fake).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// `https://localhost:{port}/v1` — the `OPENAI_BASE_URL` that reaches the fake directly.
    pub fn openai_base_url(&self) -> String {
        format!("https://localhost:{}/v1", self.port())
    }

    /// `https://localhost:{port}` — the `ANTHROPIC_BASE_URL` that reaches the fake directly.
    pub fn anthropic_base_url(&self) -> String {
        format!("https://localhost:{}", self.port())
    }

    /// Every request received so far, in arrival order (method, path + query, lowercase headers,
    /// body bytes).
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.state.received).clone()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        lock(&self.state.received).len()
    }

    /// The requests whose path (without query) is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<ReceivedRequest> {
        self.requests().into_iter().filter(|r| r.target.split('?').next() == Some(path)).collect()
    }

    /// Waits until `n` gated answers in total have reached the gate (their first part is written).
    pub async fn wait_gated(&self, n: usize) {
        let mut seen = self.state.gated.subscribe();
        let _ = seen.wait_for(|count| *count >= n).await;
    }

    /// Lets one gated answer (the oldest waiting, or the next to arrive) continue.
    pub fn release_gate(&self) {
        self.state.gate.add_permits(1);
    }

    /// Lets every gated answer, present and future, continue.
    pub fn open_gate(&self) {
        self.state.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let (acceptor, state) = (acceptor.clone(), Arc::clone(&state));
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = service_fn(move |request: hyper::Request<Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(request, state).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// A response body: whole, or written piece by piece by a [`Step`] plan.
pub(crate) type Body = Either<Full<Bytes>, ChannelBody>;

/// A body fed by a channel: each message is one HTTP chunk / DATA frame. When the channel is empty the
/// body is pending, which makes hyper flush what it has.
#[derive(Debug)]
pub(crate) struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut().0.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// One step of writing a body.
#[derive(Debug)]
pub(crate) enum Step {
    Send(Bytes),
    Pause(Duration),
    Gate,
}

/// One SSE event (already framed) and the index of the text delta it carries, if any.
#[derive(Debug)]
pub(crate) struct Event {
    pub text: String,
    pub delta: Option<usize>,
}

/// `event: {name}\ndata: {json}\n\n` (`name` empty: a data-only event).
pub(crate) fn sse(name: &str, data: &serde_json::Value) -> String {
    if name.is_empty() { format!("data: {data}\n\n") } else { format!("event: {name}\ndata: {data}\n\n") }
}

/// How the events of a stream are written for `scenario`: the gate or pause goes right after the
/// event of the first text delta; [`Scenario::Split`] cuts the event holding `key` in the middle of it.
pub(crate) fn plan(events: Vec<Event>, scenario: &Scenario, key: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for event in events {
        let first_delta = event.delta == Some(0);
        steps.extend(split_steps(event.text.into_bytes(), scenario, key));
        if first_delta {
            match scenario {
                Scenario::Gated => steps.push(Step::Gate),
                Scenario::Slow(pause) => steps.push(Step::Pause(*pause)),
                _ => {}
            }
        }
    }
    steps
}

/// `bytes` as one step, or for [`Scenario::Split`] as two around the middle of `key`.
pub(crate) fn split_steps(bytes: Vec<u8>, scenario: &Scenario, key: &str) -> Vec<Step> {
    let at = (*scenario == Scenario::Split && !key.is_empty())
        .then(|| find(&bytes, key.as_bytes()))
        .flatten()
        .map(|start| start + key.len() / 2);
    let bytes = Bytes::from(bytes);
    match at {
        Some(at) => {
            vec![Step::Send(bytes.slice(..at)), Step::Pause(SPLIT_PAUSE), Step::Send(bytes.slice(at..))]
        }
        None => vec![Step::Send(bytes)],
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What a handler decided: status, headers, and the body (whole or planned).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: AnswerBody,
}

#[derive(Debug)]
pub(crate) enum AnswerBody {
    Whole(Bytes),
    Planned(Vec<Step>),
}

impl Answer {
    pub fn json(status: u16, headers: Vec<(String, String)>, value: &serde_json::Value) -> Self {
        let mut headers = headers;
        headers.push(("content-type".into(), "application/json".into()));
        Self { status, headers, body: AnswerBody::Whole(Bytes::from(value.to_string())) }
    }
}

/// The parsed request a provider module answers.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What the provider modules need of the fake's state.
#[derive(Debug)]
pub(crate) struct Keys<'a> {
    pub openai: &'a str,
    pub anthropic: &'a str,
}

async fn handle(request: hyper::Request<Incoming>, state: Arc<State>) -> hyper::Response<Body> {
    let method = request.method().to_string();
    let target = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
    let authority = request.uri().authority().map(|a| a.host().to_owned());
    let mut headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    // HTTP/2 carries the host in the URI, not a header: record it as `host` either way.
    if let Some(host) = authority
        && !headers.iter().any(|(n, _)| n == "host")
    {
        headers.push(("host".into(), host));
    }
    let body = request.into_body().collect().await.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
    lock(&state.received).push(ReceivedRequest {
        method: method.clone(),
        target: target.clone(),
        headers: headers.clone(),
        body: body.clone(),
        ..ReceivedRequest::default()
    });
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let call = Call { method, path, headers, body };
    let keys = Keys { openai: &state.openai_key, anthropic: &state.anthropic_key };
    let is_anthropic = call.path.starts_with("/v1/messages")
        || call.header("anthropic-version").is_some()
        || call.header("host").is_some_and(|h| h.starts_with("api.anthropic.com"));
    let (answer, scenario) =
        if is_anthropic { anthropic::answer(&call, &keys) } else { openai::answer(&call, &keys) };
    respond(answer, scenario, &state).await
}

async fn respond(answer: Answer, scenario: Scenario, state: &Arc<State>) -> hyper::Response<Body> {
    let body = match answer.body {
        AnswerBody::Whole(bytes) => {
            // A JSON answer of a gated or slow request holds its head.
            match scenario {
                Scenario::Gated if answer.status < 400 => wait_gate(state).await,
                Scenario::Slow(pause) if answer.status < 400 => tokio::time::sleep(pause).await,
                _ => {}
            }
            Either::Left(Full::new(bytes))
        }
        AnswerBody::Planned(steps) => {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(write_plan(steps, tx, Arc::clone(state)));
            Either::Right(ChannelBody(rx))
        }
    };
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(answer.status).unwrap_or(hyper::StatusCode::OK);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

async fn write_plan(steps: Vec<Step>, tx: mpsc::Sender<Bytes>, state: Arc<State>) {
    for step in steps {
        match step {
            Step::Send(bytes) => {
                if tx.send(bytes).await.is_err() {
                    return; // the client went away
                }
            }
            Step::Pause(pause) => tokio::time::sleep(pause).await,
            Step::Gate => wait_gate(&state).await,
        }
    }
}

async fn wait_gate(state: &State) {
    state.gated.send_modify(|count| *count += 1);
    if let Ok(permit) = state.gate.acquire().await {
        permit.forget();
    }
}

/// A fresh id suffix: 24 lowercase hex characters.
pub(crate) fn id_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..24].to_owned()
}

/// A fixed `created` timestamp (2026-01-01T00:00:00Z): the fake has no clock of its own.
pub(crate) const CREATED: u64 = 1_767_225_600;
