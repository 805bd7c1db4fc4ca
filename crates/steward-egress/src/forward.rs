//! The forwarder: sends one request to a [`ValidatedTarget`] over a pinned, verified TLS connection and
//! reads the answer under the spec's limits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_LENGTH, HOST};
use http::{HeaderName, HeaderValue, Request};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use crate::classify::classify;
use crate::error::EgressError;
use crate::guard::ValidatedTarget;
use steward_canon::{CanonicalRequest, Injection};

use crate::inject::{Needles, SecretHeaders, apply_injection};
use crate::pool::{Conn, ConnTask, Pool, PoolKey};
use crate::response::{HeadRules, check_head, filter_headers, is_streaming_media_type, response_media_type};
use crate::stream::{ResponseBody, StreamLimits, StreamingResponse};
use crate::tls;

/// The forwarder's limits and trust: `egress.*` of the configuration.
#[derive(Debug, Clone)]
pub struct ForwarderSettings {
    /// TCP connect plus TLS handshake, per address tried (`egress.connect_timeout_ms`).
    pub connect_timeout: Duration,
    /// The whole call, connect to last body byte (`egress.total_timeout_ms`).
    pub total_timeout: Duration,
    /// `egress.max_response_bytes`, declared or counted.
    pub max_response_bytes: u64,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per (host, port, address).
    pub pool_max_idle_per_key: usize,
    /// `egress.allow_cidrs`, for the peer re-check before TLS.
    pub allow_cidrs: Vec<IpNet>,
    /// PEM text of `egress.extra_ca_files`, trusted in addition to the webpki roots.
    pub extra_ca_pems: Vec<String>,
}

impl Default for ForwarderSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(5000),
            total_timeout: Duration::from_millis(15000),
            max_response_bytes: 2 * 1024 * 1024,
            pool_idle_timeout: Duration::from_secs(15),
            pool_max_idle_per_key: 8,
            allow_cidrs: Vec::new(),
            extra_ca_pems: Vec::new(),
        }
    }
}

/// One request to send: method, origin-form path and query, headers (already allowlisted and
/// injected) and body. Values that may hold the secret are wiped when dropped.
pub struct OutgoingRequest {
    method: http::Method,
    path_and_query: Zeroizing<String>,
    headers: SecretHeaders,
    body: Bytes,
}

impl std::fmt::Debug for OutgoingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("OutgoingRequest")
            .field("method", &self.method)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl OutgoingRequest {
    /// `path` must start with `/`; `query` is without `?` (empty for none).
    pub fn new(
        method: &str,
        path: &str,
        query: &str,
        headers: SecretHeaders,
        body: impl Into<Bytes>,
    ) -> Result<Self, EgressError> {
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| EgressError::InvalidRequest(format!("method {method:?} is invalid")))?;
        if !path.starts_with('/') {
            return Err(EgressError::InvalidRequest("path must start with '/'".into()));
        }
        let mut path_and_query = Zeroizing::new(String::with_capacity(path.len() + 1 + query.len()));
        path_and_query.push_str(path);
        if !query.is_empty() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        Ok(Self { method, path_and_query, headers, body: body.into() })
    }

    /// The canonical request with `secret` injected as `injection` says (see [`apply_injection`]),
    /// and the needles the scrubber must remove from the answer.
    pub fn from_canonical(
        canonical: &CanonicalRequest,
        injection: &Injection,
        secret: &[u8],
    ) -> Result<(Self, Needles), EgressError> {
        let injected = apply_injection(canonical.headers(), &canonical.query_string(), injection, secret)?;
        let (headers, query, needles) = injected.into_parts();
        let request = Self::new(
            canonical.method().as_str(),
            canonical.path(),
            &query,
            headers,
            Bytes::copy_from_slice(canonical.body()),
        )?;
        Ok((request, needles))
    }
}

/// What came back, filtered (not yet scrubbed).
#[derive(Debug, Clone)]
pub struct ForwardOutcome {
    pub status: u16,
    /// Lowercase names, upstream order (values of one name grouped), duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The peer address the request went to.
    pub resolved_ip: IpAddr,
    /// From the start of [`Forwarder::forward`] to the last body byte.
    pub latency: Duration,
}

/// Sends requests to validated targets. Cheap to share (`Arc` it); holds the TLS configuration and the
/// connection pool.
#[derive(Debug)]
pub struct Forwarder {
    settings: ForwarderSettings,
    tls: Arc<rustls::ClientConfig>,
    pool: Arc<Pool>,
}

impl Forwarder {
    /// Builds the TLS trust (webpki roots + `extra_ca_pems`; a PEM without a usable certificate is an
    /// error) and an empty pool.
    pub fn new(settings: ForwarderSettings) -> Result<Self, EgressError> {
        let tls = tls::client_config(&settings.extra_ca_pems)?;
        let pool = Arc::new(Pool::new(settings.pool_idle_timeout, settings.pool_max_idle_per_key));
        Ok(Self { settings, tls, pool })
    }

    /// Idle pooled connections.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Sends `request` to one of `target`'s validated addresses (never resolving again), with SNI and
    /// `host` set to the canonical host, and reads the whole answer under the limits (execute mode:
    /// streaming media types refused, `max_response_bytes`, `total_timeout` to the last byte).
    /// `response_allowlist` is the group's `response_header_allowlist`.
    pub async fn forward(
        &self,
        target: &ValidatedTarget,
        request: &OutgoingRequest,
        response_allowlist: &[String],
    ) -> Result<ForwardOutcome, EgressError> {
        let started = Instant::now();
        let total = self.settings.total_timeout;
        // The buffered forward is the streamed one read to its end; the whole exchange is bounded by
        // the total timeout, so the body's own timers are set to it too.
        let limits = StreamLimits {
            max_bytes: self.settings.max_response_bytes,
            idle_timeout: total,
            max_duration: total,
        };
        let exchange = async {
            let head =
                self.open(target, request, response_allowlist, limits, HeadRules::Buffered, started).await?;
            let body = head.body.collect().await?;
            Ok(ForwardOutcome {
                status: head.status,
                headers: head.headers,
                body,
                resolved_ip: head.resolved_ip,
                latency: started.elapsed(),
            })
        };
        match tokio::time::timeout(total, exchange).await {
            Ok(result) => result,
            Err(_) => Err(EgressError::TotalTimeout { host: target.host().to_owned() }),
        }
    }

    /// Like [`forward`](Self::forward), but returns as soon as the response head is in (within
    /// `total_timeout`) with a body to pull chunk by chunk under `limits` (forward mode,
    /// `gateway.md` §1): streaming media types are accepted, a declared `content-length` above
    /// `limits.max_bytes` is refused, encodings and redirects are refused as in execute mode.
    pub async fn forward_stream(
        &self,
        target: &ValidatedTarget,
        request: &OutgoingRequest,
        response_allowlist: &[String],
        limits: StreamLimits,
    ) -> Result<StreamingResponse, EgressError> {
        let started = Instant::now();
        let head = self.open(target, request, response_allowlist, limits, HeadRules::Streaming, started);
        match tokio::time::timeout(self.settings.total_timeout, head).await {
            Ok(result) => result,
            Err(_) => Err(EgressError::TotalTimeout { host: target.host().to_owned() }),
        }
    }

    /// Sends the request and checks the response head; the body is left to read.
    async fn open(
        &self,
        target: &ValidatedTarget,
        request: &OutgoingRequest,
        response_allowlist: &[String],
        limits: StreamLimits,
        rules: HeadRules,
        started: Instant,
    ) -> Result<StreamingResponse, EgressError> {
        let (conn, response) = self.send_pooled(target, request).await?;
        let status = response.status().as_u16();
        if let Err(refused) = check_head(status, response.headers(), limits.max_bytes, rules) {
            // Its body is never read: the connection cannot be reused.
            conn.close();
            return Err(refused);
        }
        let headers = filter_headers(response.headers(), response_allowlist);
        let media_type = response_media_type(response.headers());
        let stream = media_type.as_deref().is_some_and(is_streaming_media_type);
        let resolved_ip = conn.key.addr;
        let body = ResponseBody::new(
            response.into_body(),
            conn,
            self.pool.clone(),
            limits,
            tokio::time::Instant::from_std(started),
        );
        Ok(StreamingResponse {
            status,
            headers,
            resolved_ip,
            media_type,
            stream,
            head_latency: started.elapsed(),
            body,
        })
    }

    /// Sends on a pooled connection when one is idle (retrying once on a fresh connection if the
    /// upstream had closed it before the request left), else on a fresh one.
    async fn send_pooled(
        &self,
        target: &ValidatedTarget,
        request: &OutgoingRequest,
    ) -> Result<(Conn, http::Response<Incoming>), EgressError> {
        let host = target.host();
        if let Some(mut pooled) = self.pool.checkout(host, target.port(), target.addresses()) {
            match send(&mut pooled, build(target, request)?).await {
                Ok(response) => return Ok((pooled, response)),
                Err(SendError::Unsent) => {
                    tracing::debug!(host, "Pooled upstream connection was closed; opening a new one.");
                }
                Err(SendError::Failed(reason)) => return Err(network(host, &reason)),
            }
        }
        let mut fresh = self.connect(target).await?;
        match send(&mut fresh, build(target, request)?).await {
            Ok(response) => Ok((fresh, response)),
            Err(SendError::Unsent) => Err(network(host, "the connection closed before the request was sent")),
            Err(SendError::Failed(reason)) => Err(network(host, &reason)),
        }
    }

    /// A new connection to the first validated address that accepts one: TCP, peer re-check, TLS,
    /// HTTP/1.1 handshake.
    async fn connect(&self, target: &ValidatedTarget) -> Result<Conn, EgressError> {
        let host = target.host();
        let mut last: Option<EgressError> = None;
        for addr in target.addresses() {
            match self.connect_one(target, *addr).await {
                Ok(conn) => return Ok(conn),
                Err(denied @ EgressError::AddressDenied { .. }) => return Err(denied),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "Upstream address failed; trying the next one.");
                    // A refusal is more telling than a timeout: keep a network error once seen.
                    if !matches!(last, Some(EgressError::Network { .. } | EgressError::Tls { .. })) {
                        last = Some(e);
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| network(host, "no validated address")))
    }

    // The one outbound TCP connect of the data plane: to an address the SSRF classifier validated.
    // `clippy.toml` bans `TcpStream::connect` everywhere else.
    #[allow(clippy::disallowed_methods)]
    async fn connect_one(&self, target: &ValidatedTarget, addr: IpAddr) -> Result<Conn, EgressError> {
        let host = target.host();
        let deadline = tokio::time::Instant::now() + self.settings.connect_timeout;
        let timed_out = || EgressError::ConnectTimeout { host: host.to_owned() };
        let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(SocketAddr::new(addr, target.port())))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| network(host, &format!("connect to {addr}: {e}")))?;
        let peer = tcp.peer_addr().map_err(|e| network(host, &format!("peer address: {e}")))?;
        if peer.ip() != addr {
            return Err(network(host, &format!("connected to {} instead of {addr}", peer.ip())));
        }
        classify(peer.ip(), &self.settings.allow_cidrs).map_err(|code| EgressError::AddressDenied {
            host: host.to_owned(),
            ip: peer.ip(),
            code,
        })?;
        tcp.set_nodelay(true).map_err(|e| network(host, &format!("set TCP_NODELAY: {e}")))?;
        let server_name = tls::server_name(host)?;
        let stream =
            tokio::time::timeout_at(deadline, TlsConnector::from(self.tls.clone()).connect(server_name, tcp))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| tls::handshake_failure(host, &e))?;
        let (sender, connection) =
            tokio::time::timeout_at(deadline, hyper::client::conn::http1::handshake(TokioIo::new(stream)))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| network(host, &format!("HTTP/1.1 handshake: {e}")))?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "Upstream connection ended with an error.");
            }
        })
        .abort_handle();
        Ok(Conn {
            key: PoolKey { host: host.to_owned(), port: target.port(), addr },
            sender,
            task: ConnTask(task),
        })
    }
}

/// Why a request got no response.
enum SendError {
    /// It never left: the connection was closed before it was written (safe to retry).
    Unsent,
    /// It failed after it may have been sent.
    Failed(String),
}

/// Sends on `conn`.
async fn send(conn: &mut Conn, request: Request<Full<Bytes>>) -> Result<http::Response<Incoming>, SendError> {
    if conn.sender.ready().await.is_err() {
        return Err(SendError::Unsent);
    }
    match conn.sender.try_send_request(request).await {
        Ok(response) => Ok(response),
        Err(mut e) => {
            if e.take_message().is_some() {
                Err(SendError::Unsent)
            } else {
                Err(SendError::Failed(e.error().to_string()))
            }
        }
    }
}

/// The hyper request: origin-form target, `host`, the given headers, `accept-encoding: identity` and
/// an exact `content-length` when there is a body (or the method carries one).
fn build(target: &ValidatedTarget, request: &OutgoingRequest) -> Result<Request<Full<Bytes>>, EgressError> {
    let invalid = |what: String| EgressError::InvalidRequest(what);
    let mut builder = Request::builder().method(request.method.clone()).uri(request.path_and_query.as_str());
    let host_value = if target.port() == 443 {
        target.host().to_owned()
    } else {
        format!("{}:{}", target.host(), target.port())
    };
    let headers = builder.headers_mut().ok_or_else(|| invalid("request target is invalid".into()))?;
    headers.insert(
        HOST,
        HeaderValue::from_str(&host_value).map_err(|_| invalid("host is not a valid header value".into()))?,
    );
    for (name, value) in &request.headers {
        let lower = name.to_ascii_lowercase();
        // Framing and the fields Steward sets itself are never taken from the given list.
        if steward_canon::http::is_hop_by_hop(&lower)
            || matches!(lower.as_str(), "host" | "content-length" | "accept-encoding")
        {
            continue;
        }
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| invalid(format!("header name {lower:?} is invalid")))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("header {lower} has an invalid value")))?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    let carries_body = matches!(request.method, http::Method::POST | http::Method::PUT | http::Method::PATCH);
    if !request.body.is_empty() || carries_body {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(request.body.len()));
    }
    builder.body(Full::new(request.body.clone())).map_err(|e| invalid(format!("request: {e}")))
}

fn network(host: &str, reason: &str) -> EgressError {
    EgressError::Network { host: host.to_owned(), reason: reason.to_owned() }
}
