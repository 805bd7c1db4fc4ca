//! Name resolution for the SSRF guard: the [`Resolve`] trait and its hickory implementation.
//!
//! This is the only resolver egress uses; `tokio::net::lookup_host` and `ToSocketAddrs` are banned by
//! clippy.toml so nothing can bypass the guard.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;

use crate::error::ResolveError;

/// Resolves a host name (never an IP literal: the guard classifies those directly) to its addresses.
#[async_trait]
pub trait Resolve: Send + Sync {
    /// All A and AAAA addresses of `host`; `Empty` when there are none.
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError>;
}

/// The resolver's configuration: `egress.static_hosts`, `egress.dns_servers`, `egress.dns_timeout_ms`.
#[derive(Debug, Clone)]
pub struct ResolverSettings {
    /// Answered before DNS; keys are matched case-insensitively, without a trailing dot.
    pub static_hosts: HashMap<String, Vec<IpAddr>>,
    /// DNS servers (UDP, falling back to TCP for truncated answers); empty = the system's
    /// (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
    /// The bound on one whole resolution.
    pub dns_timeout: Duration,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        Self {
            static_hosts: HashMap::new(),
            dns_servers: Vec::new(),
            dns_timeout: Duration::from_millis(2000),
        }
    }
}

/// The production [`Resolve`]: static hosts first, then hickory over the configured servers.
///
/// Names are looked up as absolute (a trailing dot is added), so resolv.conf search domains never
/// turn a public-looking name into an internal one, and the hosts file is not consulted
/// (`static_hosts` is the operator's override).
pub struct HickoryResolve {
    static_hosts: HashMap<String, Vec<IpAddr>>,
    timeout: Duration,
    resolver: TokioResolver,
}

impl std::fmt::Debug for HickoryResolve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HickoryResolve")
            .field("static_hosts", &self.static_hosts)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HickoryResolve {
    /// Builds the resolver. Fails only when `dns_servers` is empty and the system configuration cannot
    /// be read.
    pub fn new(settings: ResolverSettings) -> Result<Self, ResolveError> {
        let provider = TokioConnectionProvider::default();
        let mut builder = if settings.dns_servers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| ResolveError::Failed {
                host: "(system configuration)".into(),
                reason: e.to_string(),
            })?
        } else {
            let mut config = ResolverConfig::new();
            for addr in &settings.dns_servers {
                config.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(config, provider)
        };
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.use_hosts_file = ResolveHosts::Never;
        options.timeout = settings.dns_timeout;
        options.attempts = 1;
        options.ndots = 0;
        let static_hosts =
            settings.static_hosts.into_iter().map(|(name, addrs)| (normalize(&name), addrs)).collect();
        Ok(Self { static_hosts, timeout: settings.dns_timeout, resolver: builder.build() })
    }
}

#[async_trait]
impl Resolve for HickoryResolve {
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let name = normalize(host);
        if let Some(addrs) = self.static_hosts.get(&name) {
            if addrs.is_empty() {
                return Err(ResolveError::Empty { host: host.to_owned() });
            }
            return Ok(addrs.clone());
        }
        let absolute = format!("{name}.");
        let lookup = tokio::time::timeout(self.timeout, self.resolver.lookup_ip(absolute.as_str())).await;
        let addrs: Vec<IpAddr> = match lookup {
            Err(_) => return Err(ResolveError::TimedOut { host: host.to_owned() }),
            Ok(Err(e)) if e.is_no_records_found() => Vec::new(),
            Ok(Err(e)) => return Err(ResolveError::Failed { host: host.to_owned(), reason: e.to_string() }),
            Ok(Ok(found)) => found.iter().collect(),
        };
        let mut unique = Vec::with_capacity(addrs.len());
        for addr in addrs {
            if !unique.contains(&addr) {
                unique.push(addr);
            }
        }
        if unique.is_empty() {
            return Err(ResolveError::Empty { host: host.to_owned() });
        }
        Ok(unique)
    }
}

/// Lowercase, no trailing dot.
fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}
