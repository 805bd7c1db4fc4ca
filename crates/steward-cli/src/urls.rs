//! The URLs a configuration implies, in one place: what `init` prints, what `steward admin` connects
//! to without flags, and what `steward doctor` probes all come from `steward.toml` (with the
//! `STEWARD_*` overlay `serve` applies), never from hard-coded ports.

use std::net::{IpAddr, SocketAddr};

use steward_server::config::{AdminConfig, Config};

/// The host to reach a listener on from this machine: an unspecified address (0.0.0.0, ::) is
/// reached on loopback; `localhost` stands for loopback when `name_loopback` (TLS certificates name
/// it).
fn local_host(addr: SocketAddr, name_loopback: bool) -> String {
    let ip = addr.ip();
    if name_loopback && (ip.is_loopback() || ip.is_unspecified()) {
        return "localhost".to_owned();
    }
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `http(s)://host:port` of the admin listener (`https` when `admin.tls_cert` is set).
pub fn admin_url(admin: &AdminConfig) -> String {
    let tls = admin.tls_enabled();
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}:{}", local_host(admin.listen, tls), admin.listen.port())
}

/// `https://host:port` of the data plane listener as reached from this machine (its certificate
/// names `localhost`, `127.0.0.1` and `::1`).
pub fn data_plane_local_url(config: &Config) -> String {
    let listen = config.data_plane.listen;
    format!("https://{}:{}", local_host(listen, true), listen.port())
}

/// The port workloads use (`public_base_url`, its scheme's default when none is written).
pub fn public_port(config: &Config) -> Option<u16> {
    let url = config.public_base_url().ok()?;
    Some(url.port.unwrap_or(if url.scheme == "https" { 443 } else { 80 }))
}

/// `public_base_url`'s port differs from `data_plane.listen`'s: right only behind a proxy or load
/// balancer that forwards one to the other.
#[derive(Debug)]
pub struct PortMismatch {
    /// What differs.
    pub detail: String,
    /// The setting that makes them agree.
    pub fix: String,
}

/// `Some` when the public URL's port and the data plane listener's port differ.
pub fn port_mismatch(config: &Config, config_path: &std::path::Path) -> Option<PortMismatch> {
    let public = public_port(config)?;
    let listen = config.data_plane.listen;
    if public == listen.port() {
        return None;
    }
    let mut wanted = listen;
    wanted.set_port(public);
    Some(PortMismatch {
        detail: format!(
            "public_base_url {} uses port {public} but data_plane.listen is {listen}: workloads reach Steward \
             only if a proxy or load balancer forwards port {public} to {}",
            config.public_base_url,
            listen.port()
        ),
        fix: format!(
            "to listen on {public} directly, set data_plane.listen = \"{wanted}\" in {} (or \
             STEWARD_DATA_PLANE__LISTEN={wanted})",
            config_path.display()
        ),
    })
}
