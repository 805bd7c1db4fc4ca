//! A minimal client for Steward's admin listener (plain HTTP on loopback): one connection per call,
//! JSON in and out. Setup only; nothing here is on the measured path.

// Setup client of the admin listener under test (loopback); not egress of Steward.
// (`clippy.toml` bans `TcpStream::connect` outside steward-egress.)
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct AdminClient {
    pub addr: SocketAddr,
    token: String,
}

impl AdminClient {
    pub fn new(addr: SocketAddr, token: String) -> Self {
        Self { addr, token }
    }

    /// One request; returns the status and the JSON body (`Null` when empty or not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let tcp = TcpStream::connect(self.addr).await.with_context(|| format!("connecting {}", self.addr))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(bytes))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// A call that must answer `expect`.
    pub async fn expect(&self, method: &str, path: &str, body: &Value, expect: u16) -> Result<Value> {
        let (status, value) = self.call(method, path, Some(body)).await?;
        if status != expect {
            bail!("{method} {path} answered {status} (expected {expect}): {value}");
        }
        Ok(value)
    }
}

/// The string at `pointer` of an admin answer.
pub fn field(value: &Value, pointer: &str) -> Result<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no {pointer} in {value}"))
}
