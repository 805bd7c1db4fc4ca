//! The nginx baseline: a plain mTLS-terminating reverse proxy to the same upstream (client
//! certificate verified against the workload CA, HTTPS keep-alive upstream pool, an injected
//! `authorization` header) — the fastest thing a user could put in Steward's place. Optional: the
//! harness runs without it. The streams (`/v1/stream/`: SSE and the large body) go through a
//! location with `proxy_buffering off`, as one would proxy a streaming API with nginx: each chunk
//! is passed on as it arrives instead of being collected (or spooled to disk) first.

// The bench waits for its local nginx baseline to listen; not egress of Steward.
// (`clippy.toml` bans `TcpStream::connect` outside steward-egress.)
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::pki::Leaf;
use crate::upstream::UPSTREAM_HOST;

/// `--nginx auto`: the first `nginx` on `PATH`, then `/usr/sbin/nginx`.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            PathBuf::from("/usr/sbin"),
            PathBuf::from("/usr/local/sbin"),
            PathBuf::from("/usr/local/nginx/sbin"),
        ])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|r| r.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// The configuration: one worker per core, no access log.
#[allow(clippy::too_many_arguments)]
pub fn config(
    dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    upstream_ca: &Path,
    client_ca: &Path,
    cert: &Path,
    key: &Path,
    authorization: &str,
) -> String {
    let d = dir.display();
    let proxy = format!(
        r#"            proxy_pass https://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host {UPSTREAM_HOST};
            proxy_set_header Authorization "{authorization}";
            proxy_ssl_server_name on;
            proxy_ssl_name {UPSTREAM_HOST};
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {upstream_ca};
            proxy_ssl_session_reuse on;"#,
        upstream_ca = upstream_ca.display(),
    );
    let user = if running_as_root() { "user root;\n" } else { "" };
    format!(
        r#"{user}worker_processes auto;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream bench_upstream {{
        server {upstream};
        keepalive 256;
        keepalive_requests 1000000;
    }}
    server {{
        listen {listen} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {client_ca};
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
{proxy}
            proxy_buffering on;
        }}
        location /v1/stream/ {{
{proxy}
            proxy_buffering off;
        }}
    }}
}}
"#,
        cert = cert.display(),
        key = key.display(),
        client_ca = client_ca.display(),
    )
}

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

#[allow(clippy::too_many_arguments)]
pub async fn start(
    binary: &Path,
    work_dir: &Path,
    upstream: SocketAddr,
    upstream_ca: &Path,
    client_ca_pem: &str,
    server: &Leaf,
    authorization: &str,
) -> Result<Nginx> {
    let dir = work_dir.join("nginx");
    std::fs::create_dir_all(&dir)?;
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let cert = write("server.crt", &server.cert_pem)?;
    let key = write("server.key", &server.key_pem)?;
    let client_ca = write("client-ca.crt", client_ca_pem)?;
    let listen = SocketAddr::from(([127, 0, 0, 1], crate::steward::free_port()?));
    let conf = write(
        "nginx.conf",
        &config(&dir, listen, upstream, upstream_ca, &client_ca, &cert, &key, authorization),
    )?;
    let mut child = Command::new(binary)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            bail!("nginx exited ({status}): {log}");
        }
        if tokio::net::TcpStream::connect(listen).await.is_ok() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("nginx did not listen on {listen} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Nginx { child, addr: listen, dir })
}

impl Nginx {
    /// SIGTERM to the master (fast shutdown: it stops its workers), then a kill after 5 s.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            self.child.start_kill()?;
            let _ = self.child.wait().await;
        }
        let _ = &self.dir;
        Ok(())
    }
}
