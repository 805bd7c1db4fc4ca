//! Steps 13–16 in forward mode: the prepared call goes out through the streaming forwarder, and the
//! answer comes back as it arrives — the upstream's status, its filtered and scrubbed headers, and
//! its body scrubbed chunk by chunk ([`ForwardedBody`]). The `execute_result` event is written when
//! the body ends, however it ends ([`StreamSummary`]): to the last byte, or the cut, or the client
//! going away.

use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use steward_egress::{
    BodyChunk, EgressError, Provider, ResponseBody, Scrubber, StreamScrubber, StreamingResponse, UsageMeter,
};

use super::error;
use super::stream::{ForwardedBody, StreamEnd, StreamSummary};
use crate::services::AppState;
use crate::services::execute::forward::egress_error;
use crate::services::execute::{Answer, Execution, Pending, Prepared, Sent};

/// Sends the prepared call and answers with the upstream's answer as it streams in; a failure before
/// the response head (connection, TLS, timeout to the head, redirect, encoding) is recorded and
/// answered in the forward error shape.
pub async fn send(
    state: &AppState,
    execution: Execution<'_>,
    prepared: Prepared,
    correlation_id: &str,
) -> Response {
    let Prepared { wire, pending } = prepared;
    // The scrubber first: an answer is never sent on unscrubbed.
    let secret = pending.secret_version();
    let scrubber = match state.scrubbers.get(secret.integration_id, secret.version, &wire.needles) {
        Ok(scrubber) => scrubber,
        Err(failure) => return fail(execution, pending, failure, correlation_id).await,
    };
    let limits = stream_limits(state);
    let allowlist = pending.canonical().group().response_header_allowlist();
    let started = Instant::now();
    let head = state.egress.forwarder.forward_stream(&wire.target, &wire.outgoing, allowlist, limits).await;
    // The injected secret is no longer needed.
    drop(wire);
    let head = match head {
        Ok(head) => head,
        Err(failure) => return fail(execution, pending, failure, correlation_id).await,
    };
    let provider = Provider::from_name(&pending.integration().provider);
    let no_body =
        pending.canonical().method() == steward_canon::Method::Head || matches!(head.status, 204 | 304);
    let StreamingResponse { status, headers, resolved_ip, media_type, stream, body, .. } = head;
    let (headers, headers_scrubbed) = scrub_headers(&scrubber, headers);
    let finisher = execution.finisher(pending);
    let on_end = move |summary: StreamSummary| {
        let answer = Answer {
            status,
            latency_ms: millis(summary.latency),
            connected_ip: resolved_ip,
            scrubbed: summary.scrubbed || headers_scrubbed,
            metadata: result_metadata(stream, &summary),
        };
        // The body type calls this from `poll_frame` or `drop`: the audit write runs on its own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(finisher.finish(Sent::Answered(answer)));
        } else {
            tracing::error!(
                "No runtime to record the end of a forwarded answer; its execute_result is missing."
            );
        }
    };
    let mut forwarded =
        ForwardedBody::new(chunks(body), Box::new(StreamScrubber::new(scrubber)), started, on_end);
    if let Some(provider) = provider {
        forwarded = forwarded.with_observer(Box::new(UsageMeter::new(provider, media_type.as_deref())));
    }
    let body = if no_body {
        // No body goes to the client (HEAD, 204, 304), and the server would drop one unread: read
        // the (empty) upstream body to its end here, so the call ends `complete`.
        let mut forwarded = forwarded;
        while let Some(frame) = http_body_util::BodyExt::frame(&mut forwarded).await {
            if frame.is_err() {
                break;
            }
        }
        Body::empty()
    } else {
        Body::new(forwarded)
    };
    let mut response = body.into_response();
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in headers {
        // The body's length may change with scrubbing: the server frames it (chunked or h2 frames).
        if name == "content-length" {
            continue;
        }
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value))
        {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// No answer from the upstream (or no scrubber for it): the result event with the failure's code,
/// and the refusal in the forward shape.
async fn fail(
    execution: Execution<'_>,
    pending: Pending,
    failure: EgressError,
    correlation_id: &str,
) -> Response {
    metrics::counter!("steward_upstream_errors_total", "reason" => failure.code().as_str()).increment(1);
    let refusal = egress_error(&failure);
    execution.finisher(pending).finish(Sent::Failed(failure)).await;
    error::refusal(refusal, correlation_id)
}

/// `egress.max_stream_bytes`, `egress.stream_idle_timeout_ms`, `egress.max_stream_seconds`.
fn stream_limits(state: &AppState) -> steward_egress::StreamLimits {
    let limits = state.config.egress.stream_limits();
    steward_egress::StreamLimits {
        max_bytes: limits.max_bytes,
        idle_timeout: limits.idle_timeout,
        max_duration: limits.max_duration,
    }
}

/// The response headers with every needle replaced; whether any was.
fn scrub_headers(scrubber: &Scrubber, mut headers: Vec<(String, String)>) -> (Vec<(String, String)>, bool) {
    let mut no_body = Bytes::new();
    let scrubbed = scrubber.scrub_response(&mut headers, &mut no_body);
    (headers, scrubbed)
}

/// The forward-mode metadata of `execute_result` (`mode` is added by the service).
fn result_metadata(stream: bool, summary: &StreamSummary) -> Vec<(&'static str, Value)> {
    let mut metadata = vec![
        ("stream", stream.into()),
        ("response_bytes", summary.response_bytes.into()),
        ("ttfb_ms", millis(summary.ttfb).into()),
        ("end", summary.end.as_str().into()),
    ];
    if let Some(usage) = &summary.usage {
        metadata.push(("usage", usage.clone()));
    }
    metadata
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The upstream body as a stream of chunks that ends at a complete end and fails with any other.
fn chunks(body: ResponseBody) -> impl futures::Stream<Item = Result<Bytes, StreamEnd>> + Send + 'static {
    futures::stream::unfold(Some(body), |body| async move {
        let mut body = body?;
        match body.next_chunk().await {
            BodyChunk::Data(data) => Some((Ok(data), Some(body))),
            BodyChunk::End(StreamEnd::Complete) => None,
            BodyChunk::End(end) => Some((Err(end), None)),
        }
    })
}
