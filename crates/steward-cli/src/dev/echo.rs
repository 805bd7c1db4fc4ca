//! `steward dev echo-provider serve`: HTTPS (HTTP/1.1) on the address `init` chose, with the
//! certificate it made. Every request is answered `200` with a JSON echo of what arrived — method,
//! path, query, headers in order, body — so a call brokered by Steward shows exactly what Steward
//! sent, the injected key included; Steward scrubs that key from the answer before the workload sees
//! it. One line per request goes to stdout, naming an `authorization` header by its scheme and
//! length only.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::DevError;
use super::setup::Provider;

/// The largest request body echoed; larger ones are answered 413.
const MAX_BODY: usize = 1024 * 1024;

pub async fn serve(dir: &Path) -> Result<(), DevError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| {
            DevError::Usage(format!(
                "cannot read {}: {e} (run `steward dev echo-provider init` first, or pass --dir)",
                path.display()
            ))
        })
    };
    let provider = serde_json::from_slice::<Value>(&read("provider.json")?)
        .ok()
        .and_then(|value| Provider::from_json(&value))
        .ok_or_else(|| {
            DevError::Usage(format!("{}: not written by init", dir.join("provider.json").display()))
        })?;
    let tls = server_config(&read("server.crt")?, &read("server.key")?)?;
    let listener = TcpListener::bind(provider.listen).await.map_err(|e| {
        DevError::Failed(format!(
            "cannot listen on {}: {e} (is another echo provider running? `steward dev echo-provider init --listen \
             ADDR` chooses another address)",
            provider.listen
        ))
    })?;
    println!(
        "Echo provider listening on {} as https://{}:{} (Ctrl-C stops it).",
        provider.listen,
        provider.host,
        provider.listen.port()
    );
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let accept = async {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let service =
                    service_fn(
                        |request| async move { Ok::<_, std::convert::Infallible>(echo(request).await) },
                    );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    tokio::select! {
        () = accept => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<rustls::ServerConfig, DevError> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| DevError::Failed(format!("{what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("server.crt", &e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid("server.key", &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid("server certificate", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The echo of one request.
async fn echo(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let headers: Vec<Value> = parts
        .headers
        .iter()
        .map(|(name, value)| json!({"name": name.as_str(), "value": String::from_utf8_lossy(value.as_bytes())}))
        .collect();
    let authorization = parts.headers.get(http::header::AUTHORIZATION).map(|value| {
        let text = String::from_utf8_lossy(value.as_bytes());
        let (scheme, rest) = text.split_once(' ').unwrap_or(("", &text));
        format!("authorization: {scheme} <{} characters>", rest.chars().count())
    });
    println!(
        "echo-provider: {} {path}{}{} — {}",
        parts.method,
        if query.is_empty() { "" } else { "?" },
        query,
        authorization.as_deref().unwrap_or("no authorization header")
    );
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await.map(|collected| collected.to_bytes()) else {
        return answer(413, &json!({"error": "the echo provider reads at most 1 MiB"}));
    };
    let mut echoed = json!({
        "echo": "steward dev echo-provider",
        "method": parts.method.as_str(),
        "path": path,
        "query": query,
        "headers": headers,
    });
    match std::str::from_utf8(&body) {
        Ok(text) => echoed["body"] = Value::String(text.to_owned()),
        Err(_) => echoed["body_base64"] = Value::String(STANDARD.encode(&body)),
    }
    answer(200, &echoed)
}

fn answer(status: u16, body: &Value) -> Response<Full<Bytes>> {
    // A final newline, so the echo printed by `steward call` ends its line in a terminal.
    let mut response = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}
