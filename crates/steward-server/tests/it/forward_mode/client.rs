//! A streaming data-plane client for forward-mode tests: one HTTP/1.1 request over real mTLS with
//! the workload's certificate, the answer's body read frame by frame as it arrives (or dropped, with
//! its connection, to play a client that goes away).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use steward_testkit::http_client::{TlsOptions, tls_stream};

use crate::common::TestServer;
use crate::common::workload::Workload;

/// How long a test waits for a frame that must come.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// An answer whose body is still arriving.
pub struct Streaming {
    pub status: u16,
    pub headers: HeaderMap,
    body: Incoming,
    connection: tokio::task::JoinHandle<()>,
}

impl Streaming {
    /// The next data chunk; `Ok(None)` at a clean end; `Err` when the body broke (connection cut).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.body.frame())
                .await
                .map_err(|_| "no frame within the patience".to_owned())?;
            match frame {
                None => return Ok(None),
                Some(Err(error)) => return Err(error.to_string()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// Every remaining byte until a clean end, or the bytes so far and the error.
    pub async fn rest(&mut self) -> (Vec<u8>, Option<String>) {
        let mut out = Vec::new();
        loop {
            match self.next_chunk().await {
                Ok(Some(chunk)) => out.extend_from_slice(&chunk),
                Ok(None) => return (out, None),
                Err(error) => return (out, Some(error)),
            }
        }
    }

    /// The whole body as JSON (panics when it is not).
    pub async fn json(mut self) -> Value {
        let (bytes, error) = self.rest().await;
        assert!(error.is_none(), "{error:?}");
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    }

    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }

    /// Goes away: drops the body and closes the connection.
    pub fn disconnect(self) {
        drop(self.body);
        self.connection.abort();
    }
}

/// One request to the data plane with the workload's certificate; the answer's head, and its body
/// to read as it comes.
pub async fn open<B>(
    server: &TestServer,
    workload: &Workload,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: B,
) -> Streaming
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls =
        TlsOptions { client: Some((workload.cert_pem.clone(), workload.key_pem.clone())), ..server.tls() };
    let host = tls.server_name.clone();
    let stream = tls_stream(server.data_addr, &tls).await.expect("TLS to the data plane");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut builder = Request::builder().method(method).uri(path).header("host", host);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = tokio::time::timeout(PATIENCE, sender.send_request(builder.body(body).unwrap()))
        .await
        .expect("the answer's head within the patience")
        .expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Streaming { status, headers, body: response.into_body(), connection }
}
