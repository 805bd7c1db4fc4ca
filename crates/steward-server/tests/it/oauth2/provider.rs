//! A fake OAuth2 provider over HTTPS (a `steward_testkit` upstream): `POST /token` is an RFC 6749
//! token endpoint that counts requests and answers as told ([`TokenMode`]); every other path is the
//! provider's API, which accepts only the newest access token it issued (or answers 401 when told to).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use steward_testkit::upstream::{ReceivedRequest, Reply, TestUpstream, UpstreamOptions};

pub const TOKEN_HOST: &str = "oauth.example.test";
pub const API_HOST: &str = "api.example.test";

#[derive(Debug, Clone)]
pub enum TokenMode {
    /// Issue `at-<n>-<random>` valid `expires_in` seconds, after `delay`; with `rotate`, a new refresh
    /// token `rt-rotated-<n>-<random>` too.
    Issue { expires_in: i64, rotate: bool, delay: Duration },
    /// Answer with this status and JSON body.
    Fail { status: u16, body: String },
    /// Never answer.
    Hang,
}

#[derive(Debug)]
struct Inner {
    token_mode: TokenMode,
    /// Whether the API answers 401 to everything.
    api_unauthorized: bool,
    /// How many token requests arrived.
    token_count: usize,
    /// Every token issued (access and refresh), to check they never leak.
    issued: Vec<String>,
    /// The newest access token: the only one the API accepts.
    current: Option<String>,
}

pub struct Provider {
    pub addr: SocketAddr,
    pub ca_pem: String,
    upstream: TestUpstream,
    inner: Arc<Mutex<Inner>>,
}

impl Provider {
    pub async fn start() -> Self {
        Self::start_with("127.0.0.1:0", &[]).await
    }

    /// Binds `bind` with a certificate for the token and API hosts plus `extra_hosts` (e.g. Google's
    /// API hosts on port 443, for the built-in templates).
    pub async fn start_with(bind: &str, extra_hosts: &[&str]) -> Self {
        let mut hosts = vec![TOKEN_HOST.to_owned(), API_HOST.to_owned()];
        hosts.extend(extra_hosts.iter().map(|h| (*h).to_owned()));
        let options = UpstreamOptions { bind: bind.parse().unwrap(), hosts, ..UpstreamOptions::default() };
        let upstream = TestUpstream::start_with(options).await.unwrap_or_else(|e| panic!("{e:#}"));
        let inner = Arc::new(Mutex::new(Inner {
            token_mode: TokenMode::Issue { expires_in: 3600, rotate: false, delay: Duration::ZERO },
            api_unauthorized: false,
            token_count: 0,
            issued: Vec::new(),
            current: None,
        }));
        let shared = inner.clone();
        upstream.respond_with(move |request| answer(request, &shared));
        Self { addr: upstream.addr, ca_pem: upstream.ca_pem.clone(), upstream, inner }
    }

    pub fn token_url(&self) -> String {
        format!("https://{TOKEN_HOST}:{}/token", self.addr.port())
    }

    pub fn set_token_mode(&self, mode: TokenMode) {
        self.inner.lock().unwrap().token_mode = mode;
    }

    pub fn issue(&self, expires_in: i64, rotate: bool) {
        self.set_token_mode(TokenMode::Issue { expires_in, rotate, delay: Duration::ZERO });
    }

    pub fn fail(&self, status: u16, body: serde_json::Value) {
        self.set_token_mode(TokenMode::Fail { status, body: body.to_string() });
    }

    pub fn set_api_unauthorized(&self, unauthorized: bool) {
        self.inner.lock().unwrap().api_unauthorized = unauthorized;
    }

    pub fn token_requests(&self) -> Vec<ReceivedRequest> {
        self.upstream.received().into_iter().filter(is_token_request).collect()
    }

    pub fn token_count(&self) -> usize {
        self.token_requests().len()
    }

    pub fn api_requests(&self) -> Vec<ReceivedRequest> {
        self.upstream.received().into_iter().filter(|r| !is_token_request(r)).collect()
    }

    pub fn issued(&self) -> Vec<String> {
        self.inner.lock().unwrap().issued.clone()
    }

    pub fn current_access_token(&self) -> Option<String> {
        self.inner.lock().unwrap().current.clone()
    }
}

fn is_token_request(request: &ReceivedRequest) -> bool {
    request.target.starts_with("/token")
}

fn respond(status: u16, body: String) -> Reply {
    Reply::full(status, &[("content-type", "application/json")], body.as_bytes())
}

fn answer(request: &ReceivedRequest, inner: &Mutex<Inner>) -> Reply {
    let mut guard = inner.lock().unwrap();
    if is_token_request(request) {
        guard.token_count += 1;
        match guard.token_mode.clone() {
            TokenMode::Issue { expires_in, rotate, delay } => {
                let n = guard.token_count;
                let access = format!("at-{n}-{}", uuid::Uuid::new_v4().simple());
                let mut answer =
                    json!({"access_token": access, "token_type": "Bearer", "expires_in": expires_in});
                guard.issued.push(access.clone());
                guard.current = Some(access);
                if rotate {
                    let refresh = format!("rt-rotated-{n}-{}", uuid::Uuid::new_v4().simple());
                    guard.issued.push(refresh.clone());
                    answer["refresh_token"] = refresh.into();
                }
                respond(200, answer.to_string()).after(delay)
            }
            TokenMode::Fail { status, body } => respond(status, body),
            TokenMode::Hang => Reply::Hang,
        }
    } else {
        let presented = request.header("authorization");
        let valid = !guard.api_unauthorized
            && presented.is_some_and(|p| {
                Some(p) == guard.current.as_deref().map(|c| format!("Bearer {c}")).as_deref()
            });
        if valid {
            // Echo the token back, as a careless upstream might: Steward must scrub it.
            let token = guard.current.clone().unwrap_or_default();
            respond(200, json!({"messages": [], "echo": token}).to_string())
        } else {
            respond(401, json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}).to_string())
        }
    }
}
