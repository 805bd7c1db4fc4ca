//! The web console from outside: plain HTTP (reqwest, cookies handled by hand, redirects not
//! followed) and a real headless Chromium driven over WebDriver (chromedriver on a free loopback
//! port, one throwaway profile per browser).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use super::TestServer;
use super::workload::owner;

pub const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A plain HTTP client that keeps redirects as they are.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub fn base(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Signs in with `token`: `(status, set-cookie header, session cookie "name=value")`.
pub async fn sign_in(addr: SocketAddr, token: &str) -> (u16, Option<String>, Option<String>) {
    let response = client()
        .post(format!("{}/ui/sign-in", base(addr)))
        .header("origin", base(addr))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let set_cookie = response.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
    let cookie = set_cookie.as_ref().map(|c| c.split(';').next().unwrap().to_owned());
    (response.status().as_u16(), set_cookie, cookie)
}

/// A GET with an optional cookie: `(status, headers, body)`.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client().get(format!("{}{path}", base(addr)));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// A form POST with an optional cookie and extra headers: `(status, headers, body)`.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client().post(format!("{}{path}", base(addr))).form(form);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The CSRF token in a page's forms.
pub fn csrf(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("a csrf field") + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// A new admin token: `(token_id, token)`.
pub async fn admin_token(server: &TestServer, role: &str, tenants: &[&str]) -> (String, String) {
    let (status, body) = owner(
        server,
        Method::POST,
        "/v1/admin/tokens",
        Some(json!({"name": format!("console-{role}"), "role": role, "tenant_ids": tenants})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (body["token_id"].as_str().unwrap().to_owned(), body["token"].as_str().unwrap().to_owned())
}

/// Where the screenshots go: `<target>/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A headless Chromium behind its own chromedriver.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a Chromium session (fails, never skips, when
    /// either is not installed).
    pub async fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: the console's browser tests need Chromium and chromedriver; install them with `{INSTALL}`"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} ({e}); install it with `{INSTALL}`"));
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = String::new();
        for _ in 0..100 {
            // The WebDriver client talks only to the chromedriver started above, on loopback.
            #[allow(clippy::disallowed_methods)]
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return Self { client, driver, _profile: profile },
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver on {url} did not open a Chromium session: {last_error}");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Runs `script` (a function body) and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Signs in through the form.
    pub async fn sign_in(&self, addr: SocketAddr, token: &str) {
        self.goto(&format!("{}/ui/sign-in", base(addr))).await;
        let field = self.client.find(fantoccini::Locator::Id("token")).await.unwrap();
        field.send_keys(token).await.unwrap();
        self.client.find(fantoccini::Locator::Id("sign-in")).await.unwrap().click().await.unwrap();
        if self.wait_for_css_within("#sign-out", Duration::from_secs(10)).await.is_none() {
            let page = self.client.source().await.unwrap_or_default();
            panic!("signing in failed: {page}");
        }
    }

    /// Waits (up to `timeout`) until `css` matches an element.
    pub async fn wait_for_css_within(
        &self,
        css: &str,
        timeout: Duration,
    ) -> Option<fantoccini::elements::Element> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(element) = self.client.find(fantoccini::Locator::Css(css)).await {
                return Some(element);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element with id `id`. The console re-renders the pending list every second, so an
    /// element found just before a re-render is stale when clicked: find it again and retry (up to
    /// 10 s) instead of failing on that race.
    pub async fn click_id(&self, id: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let clicked = match self.client.find(fantoccini::Locator::Id(id)).await {
                Ok(element) => element.click().await,
                Err(error) => Err(error),
            };
            match clicked {
                Ok(()) => return,
                Err(error) if tokio::time::Instant::now() > deadline => panic!("clicking #{id}: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn wait_for_css(&self, css: &str) -> fantoccini::elements::Element {
        self.wait_for_css_within(css, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no element matches {css}"))
    }

    /// The viewport's size in CSS pixels.
    pub async fn viewport(&self) -> (u64, u64) {
        let size = self.js("return [window.innerWidth, window.innerHeight];").await;
        (size[0].as_u64().unwrap(), size[1].as_u64().unwrap())
    }

    /// Sizes the window so the viewport is `width` × `height`, then saves a PNG screenshot.
    pub async fn screenshot(&self, width: u32, height: u32, name: &str) -> PathBuf {
        self.client.set_window_size(width, height).await.unwrap();
        let (w, h) = self.viewport().await;
        let (extra_w, extra_h) = (
            u32::try_from(width as u64 - w.min(width as u64)).unwrap(),
            u32::try_from(height as u64 - h.min(height as u64)).unwrap(),
        );
        if extra_w > 0 || extra_h > 0 {
            self.client.set_window_size(width + extra_w, height + extra_h).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.unwrap();
        let path = screenshot_dir().join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}
