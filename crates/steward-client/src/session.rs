//! [`BrokerClient`]: one workload's connection to Steward — mTLS client, a cached session refreshed
//! before it expires, DPoP proofs when the session is DPoP-bound, execute and approval polling.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use steward_crypto::DpopKey;
use steward_types::{Clock, SystemClock, Timestamp};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::execute::{WireApprovalRequired, WireExecuted};
use crate::{ApprovalStatus, ClientError, ExecuteOutcome, ExecuteRequest, ExecutedResponse, Identity, http};

/// A session is refreshed when it has less than this left.
const REFRESH_MARGIN_SECONDS: i64 = 60;

/// The session currently in use (the token itself stays inside the client).
#[derive(Clone)]
pub struct SessionInfo {
    token: Zeroizing<String>,
    pub session_id: String,
    pub expires_at: Timestamp,
    pub scopes: Vec<String>,
    pub dpop_jkt: Option<String>,
}

impl std::fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionInfo")
            .field("token", &"[REDACTED]")
            .field("session_id", &self.session_id)
            .field("expires_at", &self.expires_at)
            .field("dpop_jkt", &self.dpop_jkt)
            .finish()
    }
}

#[derive(Deserialize)]
struct WireSession {
    session_token: String,
    session_id: String,
    expires_at: Timestamp,
    scopes: Vec<String>,
    dpop_jkt: Option<String>,
}

/// What `GET /healthz` answered over mTLS, for diagnostics (`steward doctor`).
#[derive(Debug, Clone)]
pub struct HealthProbe {
    pub status: u16,
    /// The HTTP `date` header, for a clock-skew check.
    pub date: Option<String>,
}

/// A workload's client for one Steward data plane.
pub struct BrokerClient {
    base_url: String,
    http: reqwest::Client,
    /// Forward mode's client: same identity, no bound on the whole exchange (`http::build_streaming`).
    pub(crate) stream_http: reqwest::Client,
    dpop: Option<DpopKey>,
    session: Mutex<Option<SessionInfo>>,
}

impl std::fmt::Debug for BrokerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerClient")
            .field("base_url", &self.base_url)
            .field("dpop", &self.dpop.is_some())
            .finish()
    }
}

impl BrokerClient {
    /// `broker_url` is Steward's `public_base_url`; `dpop` binds sessions to that key.
    pub fn new(broker_url: &str, identity: &Identity, dpop: Option<DpopKey>) -> Result<Self, ClientError> {
        let http = http::build(&identity.ca_pem, Some((&identity.cert_pem, &identity.key_pem)))?;
        let stream_http = http::build_streaming(&identity.ca_pem, (&identity.cert_pem, &identity.key_pem))?;
        Ok(Self {
            base_url: broker_url.trim_end_matches('/').to_owned(),
            http,
            stream_http,
            dpop,
            session: Mutex::new(None),
        })
    }

    /// The broker URL this client talks to (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Whether sessions of this client are DPoP-bound.
    pub fn has_dpop(&self) -> bool {
        self.dpop.is_some()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn proof(&self, method: &str, path: &str, token: Option<&str>) -> Result<Option<String>, ClientError> {
        let Some(key) = &self.dpop else { return Ok(None) };
        let jti = uuid::Uuid::new_v4().to_string();
        key.proof(method, &self.url(path), SystemClock.now().unix_seconds(), &jti, token)
            .map(Some)
            .map_err(|e| ClientError::Identity(format!("DPoP proof: {e}")))
    }

    /// The current session, creating or refreshing it when it is missing or about to expire.
    pub async fn session(&self) -> Result<SessionInfo, ClientError> {
        let mut cached = self.session.lock().await;
        let now = SystemClock.now();
        if let Some(session) = cached.as_ref()
            && now.seconds_until(session.expires_at) > REFRESH_MARGIN_SECONDS
        {
            return Ok(session.clone());
        }
        let mut request =
            self.http.post(self.url("/v1/session")).header("content-type", "application/json").body("{}");
        if let Some(proof) = self.proof("POST", "/v1/session", None)? {
            request = request.header("dpop", proof);
        }
        let (_, wire): (u16, WireSession) = http::read_json(request.send().await?).await?;
        let session = SessionInfo {
            token: Zeroizing::new(wire.session_token),
            session_id: wire.session_id,
            expires_at: wire.expires_at,
            scopes: wire.scopes,
            dpop_jkt: wire.dpop_jkt,
        };
        *cached = Some(session.clone());
        Ok(session)
    }

    /// The cached session as JSON (token included), for a CLI that keeps it between runs in a
    /// private file. `None` when there is no session yet.
    pub async fn export_session(&self) -> Option<zeroize::Zeroizing<String>> {
        let cached = self.session.lock().await;
        let session = cached.as_ref()?;
        let value = serde_json::json!({
            "session_token": session.token.as_str(),
            "session_id": session.session_id,
            "expires_at": session.expires_at,
            "scopes": session.scopes,
            "dpop_jkt": session.dpop_jkt,
        });
        Some(zeroize::Zeroizing::new(value.to_string()))
    }

    /// Restores a session saved by [`BrokerClient::export_session`]; a session bound to another DPoP
    /// key than this client's (or bound while this client has none) is ignored.
    pub async fn import_session(&self, json: &str) {
        let Ok(wire) = serde_json::from_str::<WireSession>(json) else { return };
        let our_jkt = self.dpop.as_ref().map(|k| k.thumbprint().to_owned());
        if wire.dpop_jkt != our_jkt {
            return;
        }
        *self.session.lock().await = Some(SessionInfo {
            token: Zeroizing::new(wire.session_token),
            session_id: wire.session_id,
            expires_at: wire.expires_at,
            scopes: wire.scopes,
            dpop_jkt: wire.dpop_jkt,
        });
    }

    /// Forgets the cached session (e.g. after Steward said it was revoked).
    pub async fn reset_session(&self) {
        *self.session.lock().await = None;
    }

    /// An authorized request: bearer (or DPoP-bound) session plus a fresh proof when bound.
    async fn authorized(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        self.authorized_on(&self.http, method, path, None).await
    }

    /// [`Self::authorized`] on a given client; `query` (raw, without `?`) is appended to the URL but
    /// is not part of the DPoP `htu`.
    pub(crate) async fn authorized_on(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        query: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let session = self.session().await?;
        let bound = session.dpop_jkt.is_some();
        let scheme = if bound { "DPoP" } else { "Bearer" };
        let url = match query {
            Some(query) => format!("{}?{query}", self.url(path)),
            None => self.url(path),
        };
        let mut request = http
            .request(method.clone(), url)
            .header("authorization", format!("{scheme} {}", session.token.as_str()));
        if bound && let Some(proof) = self.proof(method.as_str(), path, Some(&session.token))? {
            request = request.header("dpop", proof);
        }
        Ok(request)
    }

    /// `POST /v1/execute`.
    pub async fn execute(&self, call: &ExecuteRequest) -> Result<ExecuteOutcome, ClientError> {
        let response = self.authorized(reqwest::Method::POST, "/v1/execute").await?.json(call).send().await?;
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v.as_bytes() == b"true");
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        match status {
            200 => {
                let wire: WireExecuted = serde_json::from_slice(&bytes)
                    .map_err(|e| ClientError::Protocol(format!("execute answer: {e}")))?;
                let body = base64::engine::general_purpose::STANDARD
                    .decode(wire.upstream.body_base64)
                    .map_err(|e| ClientError::Protocol(format!("body_base64: {e}")))?;
                Ok(ExecuteOutcome::Executed(ExecutedResponse {
                    correlation_id: wire.correlation_id,
                    status_code: wire.upstream.status_code,
                    headers: wire.upstream.headers,
                    body,
                    replayed,
                }))
            }
            202 => {
                let wire: WireApprovalRequired = serde_json::from_slice(&bytes)
                    .map_err(|e| ClientError::Protocol(format!("approval answer: {e}")))?;
                Ok(ExecuteOutcome::ApprovalRequired {
                    approval_id: wire.approval_id,
                    expires_at: wire.expires_at,
                    correlation_id: wire.correlation_id,
                    summary: wire.summary,
                })
            }
            _ => Err(http::broker_error(status, &bytes)),
        }
    }

    /// `GET /v1/approvals/{id}`.
    pub async fn approval(&self, approval_id: &str) -> Result<ApprovalStatus, ClientError> {
        let path = format!("/v1/approvals/{approval_id}");
        let response = self.authorized(reqwest::Method::GET, &path).await?.send().await?;
        http::read_json(response).await.map(|(_, status)| status)
    }

    /// Polls an approval until it is no longer pending or `timeout` passes; returns the last status.
    pub async fn wait_for_approval(
        &self,
        approval_id: &str,
        timeout: Duration,
    ) -> Result<ApprovalStatus, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.approval(approval_id).await?;
            if status.status != "pending" || tokio::time::Instant::now() >= deadline {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_secs(1).min(deadline - tokio::time::Instant::now())).await;
        }
    }

    /// `GET /healthz` with the client certificate presented: proves the broker is reachable and
    /// that the TLS handshake (CA, certificate, key) works, without a session or any side effect.
    pub async fn probe_health(&self) -> Result<HealthProbe, ClientError> {
        let response = self.http.get(self.url("/healthz")).send().await?;
        let date = response.headers().get("date").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(HealthProbe { status: response.status().as_u16(), date })
    }

    /// A GET with the session (for the manifest).
    pub(crate) async fn get_json(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        let response = self.authorized(reqwest::Method::GET, path).await?.send().await?;
        http::read_json(response).await.map(|(_, value)| value)
    }

    /// A JSON POST with only the client certificate (certificate renewal).
    pub(crate) async fn post_json_mtls<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(u16, T), ClientError> {
        let response = self.http.post(self.url(path)).json(body).send().await?;
        http::read_json(response).await
    }

    /// A GET with only the client certificate (the keyset).
    pub(crate) async fn get_json_unauthenticated(
        &self,
        path: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let response = self.http.get(self.url(path)).send().await?;
        http::read_json(response).await.map(|(_, value)| value)
    }
}
