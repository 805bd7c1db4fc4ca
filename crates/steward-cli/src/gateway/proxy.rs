//! One request through the gateway: local token, route, headers, body, forward mode, and the two
//! re-sends the spec allows — once after `session_invalid`, once after an approval was granted.
//!
//! Bodies: a request body of up to [`REPLAY_CAP`] bytes is read whole before it is sent, so it can
//! be sent again; a larger one is streamed up as it arrives and is never re-sent (the session is
//! refreshed proactively, a minute before it expires, so a retry is rarely needed). Response bodies
//! are always streamed down as they arrive.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body_util::{BodyDataStream, BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::json;
use steward_client::{BodyStream, BrokerClient, ClientError, ForwardBody, ForwardResponse, ForwardTarget};
use steward_types::ErrorCode;

use super::reply::{self, Body};
use super::routes::Refusal;
use super::{Gateway, env, log};

/// Request bodies up to this size are kept so the request can be re-sent.
pub const REPLAY_CAP: usize = 8 * 1024 * 1024;
/// The largest refusal body held while an approval is awaited.
const HELD_BODY_LIMIT: usize = 256 * 1024;

/// Request headers never forwarded: the local token slots, hop-by-hop headers, framing (set again
/// for the forwarded body), the gateway's own selector and a caller's DPoP proof.
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "dpop",
    "steward-integration",
];

/// Response headers not passed down: hop-by-hop and framing (hyper frames the stream itself).
const DROPPED_RESPONSE_HEADERS: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/// Copies `headers` without `dropped` and without the headers the `connection` header names.
fn without(headers: &http::HeaderMap, dropped: &[&str]) -> http::HeaderMap {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()))
        .collect();
    let mut kept = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name_str = name.as_str();
        if dropped.contains(&name_str) || named.iter().any(|n| n == name_str) {
            continue;
        }
        kept.append(name.clone(), value.clone());
    }
    kept
}

pub fn forwarded_request_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    without(headers, DROPPED_REQUEST_HEADERS)
}

/// The request body, read up to the replay cap.
enum Prepared {
    /// Complete (possibly empty): can be sent any number of times.
    Replayable(Bytes),
    /// Streamed: sent once.
    Once(Option<BodyStream>),
}

impl Prepared {
    fn replayable(&self) -> bool {
        matches!(self, Prepared::Replayable(_))
    }

    fn take(&mut self) -> ForwardBody {
        match self {
            Prepared::Replayable(bytes) if bytes.is_empty() => ForwardBody::Empty,
            Prepared::Replayable(bytes) => ForwardBody::Full(bytes.clone()),
            Prepared::Once(stream) => stream.take().map_or(ForwardBody::Empty, ForwardBody::Stream),
        }
    }
}

async fn prepare(mut body: Incoming) -> Result<Prepared, hyper::Error> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        buffer.extend_from_slice(&data);
        if buffer.len() > REPLAY_CAP {
            let prefix = futures::stream::once(futures::future::ready(Ok(buffer.freeze())));
            let rest = BodyDataStream::new(body)
                .map(|chunk| chunk.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>));
            return Ok(Prepared::Once(Some(prefix.chain(rest).boxed())));
        }
    }
    Ok(Prepared::Replayable(buffer.freeze()))
}

/// Handles one request and logs it (method, path without query, status, integration, time to the
/// response head; never bodies, queries or tokens).
pub async fn handle(gateway: Arc<Gateway>, request: http::Request<Incoming>) -> http::Response<Body> {
    let started = tokio::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (response, integration) = respond(&gateway, request).await;
    if path != "/_steward/healthz" {
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        log::info(
            "request",
            json!({
                "method": method.as_str(), "path": path, "status": response.status().as_u16(),
                "integration": integration, "steward_error": header("steward-error"),
                "correlation_id": header("x-correlation-id"),
                "head_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        );
    }
    response
}

async fn respond(
    gateway: &Gateway,
    request: http::Request<Incoming>,
) -> (http::Response<Body>, Option<String>) {
    let path = request.uri().path();
    if path == "/_steward/healthz" {
        return (reply::ok("application/json", r#"{"status":"ok"}"#), None);
    }
    if !gateway.token.accepts(request.headers()) {
        let message = "missing or wrong gateway token: send STEWARD_GATEWAY_TOKEN as authorization: Bearer …, \
                       x-api-key or api-key";
        return (reply::error(ErrorCode::GatewayTokenInvalid, message, &reply::correlation_id()), None);
    }
    if path == "/_steward/env" {
        let vars = env::variables(&gateway.url, gateway.token.expose(), &gateway.state.routes());
        return (reply::ok("text/plain; charset=utf-8", env::export_lines(&vars)), None);
    }
    if path == "/_steward" || path.starts_with("/_steward/") {
        let message = format!(
            "no gateway route for {path}; the gateway's own routes are /_steward/healthz and /_steward/env"
        );
        return (reply::error(ErrorCode::GatewayRouteNotFound, &message, &reply::correlation_id()), None);
    }
    let selector = request.headers().get("steward-integration").and_then(|v| v.to_str().ok());
    let route = match gateway.state.routes().resolve(path, request.uri().query(), selector) {
        Ok(route) => route,
        Err(Refusal { code, message }) => {
            return (reply::error(code, &message, &reply::correlation_id()), None);
        }
    };
    let name = Some(route.integration_name.clone());
    if steward_client::has_dot_segment(&route.target.path) {
        let message = "the path has a '.' or '..' segment; send the path the upstream should receive";
        return (reply::error(ErrorCode::RequestUrlInvalid, message, &reply::correlation_id()), name);
    }
    let method = request.method().clone();
    let headers = forwarded_request_headers(request.headers());
    let mut body = match prepare(request.into_body()).await {
        Ok(body) => body,
        Err(error) => {
            let message = format!("the request body could not be read: {error}");
            return (reply::error(ErrorCode::RequestBodyMissing, &message, &reply::correlation_id()), name);
        }
    };
    (forward(gateway, method, &route.target, &headers, &mut body).await, name)
}

/// Sends the request; re-sends it once with a new session after `session_invalid` (when the body
/// can be re-sent).
async fn send(
    gateway: &Gateway,
    method: &http::Method,
    target: &ForwardTarget,
    headers: &http::HeaderMap,
    body: &mut Prepared,
) -> Result<ForwardResponse, ClientError> {
    let client = gateway.state.client();
    let response = client.forward(method.clone(), target, headers.clone(), body.take()).await?;
    if response.status == http::StatusCode::UNAUTHORIZED
        && response.steward_error() == Some("session_invalid")
    {
        // Revoked or expired early: the next request needs a new session either way.
        client.reset_session().await;
        if body.replayable() {
            log::info("session refused as invalid; retrying once with a new session", json!({}));
            drop(response);
            return client.forward(method.clone(), target, headers.clone(), body.take()).await;
        }
    }
    Ok(response)
}

async fn forward(
    gateway: &Gateway,
    method: http::Method,
    target: &ForwardTarget,
    headers: &http::HeaderMap,
    body: &mut Prepared,
) -> http::Response<Body> {
    let response = match send(gateway, &method, target, headers, body).await {
        Ok(response) => response,
        Err(error) => return client_error(&gateway.state.client(), &error),
    };
    let approval_id =
        response.headers.get("steward-approval-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let wait = gateway.approval_wait;
    match approval_id {
        Some(approval_id)
            if response.status == http::StatusCode::FORBIDDEN
                && response.steward_error() == Some("approval_required")
                && !wait.is_zero()
                && body.replayable() =>
        {
            let held = match response.collect(HELD_BODY_LIMIT).await {
                Ok(held) => held,
                Err(error) => return client_error(&gateway.state.client(), &error),
            };
            if approved(gateway, &approval_id, wait).await {
                match send(gateway, &method, target, headers, body).await {
                    Ok(response) => streamed(response),
                    Err(error) => client_error(&gateway.state.client(), &error),
                }
            } else {
                let (status, headers, bytes) = held;
                let mut response = http::Response::new(reply::full(bytes));
                *response.status_mut() = status;
                *response.headers_mut() = without(&headers, DROPPED_RESPONSE_HEADERS);
                response
            }
        }
        _ => streamed(response),
    }
}

/// Polls the approval up to `wait`; true once it is approved.
async fn approved(gateway: &Gateway, approval_id: &str, wait: Duration) -> bool {
    log::info(
        "approval required; waiting for a decision",
        json!({"approval_id": approval_id, "wait_seconds": wait.as_secs(),
               "approve_with": format!("steward admin approvals approve {approval_id} --once")}),
    );
    match gateway.state.client().wait_for_approval(approval_id, wait).await {
        Ok(status) if status.status == "approved" => {
            log::info("approval granted; sending the request again", json!({"approval_id": approval_id}));
            true
        }
        Ok(status) => {
            log::info(
                "approval not granted; returning the refusal",
                json!({"approval_id": approval_id, "status": status.status}),
            );
            false
        }
        Err(error) => {
            log::warn(
                "approval polling failed; returning the refusal",
                json!({"approval_id": approval_id, "error": error.to_string()}),
            );
            false
        }
    }
}

/// The broker's answer passed down: status, headers (hop-by-hop removed), the body as it arrives.
fn streamed(response: ForwardResponse) -> http::Response<Body> {
    let ForwardResponse { status, headers, body } = response;
    let frames = body.map(|chunk| chunk.map(Frame::data).map_err(|e| std::io::Error::other(e.to_string())));
    let mut out = http::Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    *out.status_mut() = status;
    *out.headers_mut() = without(&headers, DROPPED_RESPONSE_HEADERS);
    out
}

/// A failure before any HTTP answer from the broker: unreachable (502 `gateway_broker_unreachable`),
/// or a refusal of the session itself, passed on with Steward's code.
fn client_error(client: &BrokerClient, error: &ClientError) -> http::Response<Body> {
    match error {
        ClientError::Broker { code, message, correlation_id, .. } => {
            let code_value = ErrorCode::from_code(code).unwrap_or(ErrorCode::GatewayBrokerUnreachable);
            let correlation_id = correlation_id.clone().unwrap_or_else(reply::correlation_id);
            reply::error(code_value, &format!("steward refused the session: {message}"), &correlation_id)
        }
        other => reply::error(
            ErrorCode::GatewayBrokerUnreachable,
            &format!("cannot reach steward at {}: {other}", client.base_url()),
            &reply::correlation_id(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hop_by_hop_and_framing_are_not_forwarded() {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer stw_gw_x"),
            ("x-api-key", "stw_gw_x"),
            ("api-key", "stw_gw_x"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("content-length", "10"),
            ("host", "127.0.0.1:7777"),
            ("steward-integration", "openai"),
            ("content-type", "application/json"),
            ("openai-beta", "assistants=v2"),
            ("x-stainless-lang", "python"),
            ("accept", "text/event-stream"),
        ] {
            headers.append(http::HeaderName::from_static(name), http::HeaderValue::from_static(value));
        }
        let kept = forwarded_request_headers(&headers);
        let names: Vec<&str> = kept.keys().map(http::HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "openai-beta", "x-stainless-lang", "accept"]);
    }
}
