//! The Streamable HTTP transport of `steward mcp`: rmcp's `StreamableHttpService` at `/mcp` on a
//! loopback listener, behind the gateway-style local token (`spec/gateway.md` §2): every request
//! needs `authorization: Bearer stw_gw_…`, else 401 `gateway_token_invalid`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::log;
use super::server::StewardMcp;

pub const TOKEN_PREFIX: &str = "stw_gw_";
pub const MCP_PATH: &str = "/mcp";

/// The local token: read from `file` when it exists, else generated (and written there, 0600,
/// when a file was named).
pub fn local_token(file: Option<&Path>) -> Result<Zeroizing<String>, String> {
    let Some(path) = file else {
        return Ok(Zeroizing::new(steward_crypto::generate_token(TOKEN_PREFIX).expose().to_owned()));
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = Zeroizing::new(text.trim().to_owned());
            if !is_token(&token) {
                return Err(format!(
                    "{} does not hold a local token (stw_gw_ and 43 base64url characters); remove it to get a new one",
                    path.display()
                ));
            }
            Ok(token)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let token = Zeroizing::new(steward_crypto::generate_token(TOKEN_PREFIX).expose().to_owned());
            write_private(path, token.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(token)
        }
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

fn is_token(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")
}

type Body = BoxBody<Bytes, Infallible>;

fn refusal(status: u16, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "error": code, "message": message, "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::UNAUTHORIZED);
    let headers = response.headers_mut();
    headers.insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    if status == 401 {
        headers.insert("www-authenticate", hyper::header::HeaderValue::from_static("Bearer"));
    }
    response
}

/// `authorization: Bearer <token>` (scheme case-insensitive), compared by hash in constant time.
fn authorized(request: &Request<Incoming>, expected_hash: &[u8; 32]) -> bool {
    let Some(value) = request.headers().get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else { return false };
    scheme.eq_ignore_ascii_case("bearer")
        && steward_crypto::hashes_equal(&steward_crypto::hash_token(token.trim()), expected_hash)
}

/// Serves until `shutdown` is cancelled (SIGTERM or Ctrl-C), then stops accepting and closes the
/// MCP sessions.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handler: StewardMcp,
    token: &str,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let config = StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token());
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let expected = Arc::new(steward_crypto::hash_token(token));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    log::event("accept_failed", &[("error", &error.to_string())]);
                    continue;
                }
            },
        };
        let service = service.clone();
        let expected = expected.clone();
        tokio::spawn(async move {
            let handle = hyper::service::service_fn(move |request: Request<Incoming>| {
                let mut service = service.clone();
                let expected = expected.clone();
                async move { Ok::<_, Infallible>(route(&mut service, request, &expected, peer).await) }
            });
            let connection =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), handle);
            // A client that hangs up mid-request is not the server's problem.
            let _ = connection.await;
        });
    }
}

async fn route(
    service: &mut StreamableHttpService<StewardMcp, LocalSessionManager>,
    request: Request<Incoming>,
    expected: &[u8; 32],
    peer: SocketAddr,
) -> Response<Body> {
    use tower::Service;
    if !authorized(&request, expected) {
        log::event("http_unauthorized", &[("peer", &peer.to_string())]);
        return refusal(
            401,
            "gateway_token_invalid",
            "missing or wrong local token: send authorization: Bearer <the token steward mcp printed or wrote to --token-file>",
        );
    }
    if request.uri().path() != MCP_PATH {
        return refusal(404, "gateway_route_not_found", "steward mcp serves MCP at /mcp only");
    }
    match service.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Binds the listener; only loopback addresses are accepted (the token is the only guard).
pub async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    if !listen.ip().is_loopback() {
        return Err(format!(
            "--listen {listen} is not a loopback address; steward mcp serves HTTP on loopback only"
        ));
    }
    tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_created_private_then_reused_and_bad_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let first = local_token(Some(&path)).unwrap();
        assert!(is_token(&first), "{}", first.len());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(*local_token(Some(&path)).unwrap(), *first);
        std::fs::write(&path, "not a token").unwrap();
        assert!(local_token(Some(&path)).unwrap_err().contains("does not hold a local token"));
        let random = local_token(None).unwrap();
        assert!(is_token(&random) && *random != *first);
    }
}
