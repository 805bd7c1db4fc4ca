//! The upstream calls the harness makes, and the two ways of sending one: as is, to the upstream or
//! through nginx ([`PlainFactory`]), or through Steward's forward mode ([`ForwardFactory`]:
//! `{METHOD} /v1/forward/{integration_id}/{host:port}{path}` with the session, and the request's own
//! method, headers and body — no envelope, no base64).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Result, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use steward_crypto::{DpopAlg, DpopKey};
use steward_types::{Clock, SystemClock};

use crate::load::RequestFactory;
use crate::session_refresh::SharedSession;
use crate::steward::{Workload, mix_schedule};
use crate::upstream::{BLOB_PATH, ECHO_PATH, SSE_PATH, json_of_size};

/// One upstream request: method, path (with its query), headers and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Call {
    /// `POST {path}` with a JSON body of `body_bytes` (the load of issue 8).
    pub fn json_post(path: &str, body_bytes: usize) -> Self {
        Self {
            method: "POST",
            path: path.to_owned(),
            headers: vec![("content-type", "application/json".to_owned())],
            body: json_of_size(body_bytes),
        }
    }

    /// `POST /v1/echo`.
    pub fn echo(body_bytes: usize) -> Self {
        Self::json_post(ECHO_PATH, body_bytes)
    }

    /// The execute load's kinds as forward calls: `allowed` → `/v1/echo`, `denied` → `/v1/denied`,
    /// `approval` → `/v1/approval`.
    pub fn of_kind(kind: &str, body_bytes: usize) -> Result<Self> {
        let path = match kind {
            "allowed" => ECHO_PATH,
            "denied" => "/v1/denied",
            "approval" => "/v1/approval",
            other => bail!("unknown request kind {other:?}"),
        };
        Ok(Self::json_post(path, body_bytes))
    }

    /// `GET` of the SSE stream, as an SDK asks for one.
    pub fn sse() -> Self {
        Self {
            method: "GET",
            path: SSE_PATH.to_owned(),
            headers: vec![("accept", "text/event-stream".to_owned())],
            body: Bytes::new(),
        }
    }

    /// `GET` of a streamed body of `bytes` bytes.
    pub fn blob(bytes: u64) -> Self {
        Self {
            method: "GET",
            path: format!("{BLOB_PATH}?bytes={bytes}"),
            headers: vec![],
            body: Bytes::new(),
        }
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split_once('?').map_or(self.path.as_str(), |(path, _)| path)
    }

    fn request(&self, uri: &str, host: &str, extra: &[(&str, &str)]) -> Result<Request<Full<Bytes>>> {
        let mut request = Request::builder().method(self.method).uri(uri).header("host", host);
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        Ok(request.body(Full::new(self.body.clone()))?)
    }
}

/// A call sent as is (direct to the upstream, or to nginx), with the `authorization` header Steward
/// would inject when one is given.
#[derive(Debug)]
pub struct PlainFactory {
    kinds: Vec<String>,
    host: String,
    call: Call,
    authorization: Option<String>,
}

impl PlainFactory {
    pub fn new(host: String, call: Call, authorization: Option<String>) -> Self {
        Self { kinds: vec!["allowed".into()], host, call, authorization }
    }
}

impl RequestFactory for PlainFactory {
    fn kinds(&self) -> &[String] {
        &self.kinds
    }

    fn make(&self, _seq: u64) -> Result<(usize, Request<Full<Bytes>>)> {
        let extra: Vec<(&str, &str)> =
            self.authorization.iter().map(|a| ("authorization", a.as_str())).collect();
        Ok((0, self.call.request(&self.call.path, &self.host, &extra)?))
    }
}

/// `/v1/forward/{integration_id}/{authority}{path}` (the path keeps its query).
pub fn forward_path(integration_id: &str, authority: &str, path: &str) -> String {
    format!("/v1/forward/{integration_id}/{authority}{path}")
}

/// Calls sent through forward mode, one per kind, in the weighted schedule of `--mix`; a fresh DPoP
/// proof per request when the session is bound (`htu`: the forward URL without its query).
pub struct ForwardFactory {
    kinds: Vec<String>,
    /// Per kind: the forward path (with query), the DPoP `htu`, the call.
    calls: Vec<(String, String, Call)>,
    schedule: Vec<usize>,
    host: String,
    session: Arc<SharedSession>,
    dpop: Option<DpopKey>,
}

impl std::fmt::Debug for ForwardFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardFactory")
            .field("kinds", &self.kinds)
            .field("dpop", &self.dpop.is_some())
            .finish()
    }
}

impl ForwardFactory {
    /// `calls`: (kind, call, weight); `authority`: the upstream's `host:port`.
    pub fn new(
        public_url: &str,
        data_addr: SocketAddr,
        integration_id: &str,
        authority: &str,
        workload: &Workload,
        calls: Vec<(String, Call, u32)>,
    ) -> Result<Self> {
        if calls.is_empty() {
            bail!("a forward phase needs at least one call");
        }
        let origin = public_url.trim_end_matches('/');
        let weights: Vec<u32> = calls.iter().map(|(_, _, w)| *w).collect();
        let kinds = calls.iter().map(|(k, _, _)| k.clone()).collect();
        let calls = calls
            .into_iter()
            .map(|(_, call, _)| {
                let path = forward_path(integration_id, authority, &call.path);
                let htu = format!("{origin}{}", forward_path(integration_id, authority, call.path_only()));
                (path, htu, call)
            })
            .collect();
        let dpop = match &workload.dpop {
            Some(key) => Some(DpopKey::from_pkcs8(DpopAlg::Es256, &key.to_pkcs8()?)?),
            None => None,
        };
        Ok(Self {
            kinds,
            calls,
            schedule: mix_schedule(&weights),
            host: format!("localhost:{}", data_addr.port()),
            session: Arc::clone(&workload.session),
            dpop,
        })
    }
}

impl RequestFactory for ForwardFactory {
    fn kinds(&self) -> &[String] {
        &self.kinds
    }

    fn make(&self, seq: u64) -> Result<(usize, Request<Full<Bytes>>)> {
        let slot = usize::try_from(seq % self.schedule.len() as u64).unwrap_or(0);
        let kind = self.schedule[slot];
        let (path, htu, call) = &self.calls[kind];
        let session = self.session.current();
        let proof = match &self.dpop {
            Some(key) => {
                let jti = uuid::Uuid::new_v4().to_string();
                Some(key.proof(
                    call.method,
                    htu,
                    SystemClock.now().unix_seconds(),
                    &jti,
                    Some(&session.token),
                )?)
            }
            None => None,
        };
        let mut extra = vec![("authorization", session.authorization.as_str())];
        if let Some(proof) = &proof {
            extra.push(("dpop", proof.as_str()));
        }
        Ok((kind, call.request(path, &self.host, &extra)?))
    }
}
