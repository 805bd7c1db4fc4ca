//! Name resolution for the SSRF guard: the [`Resolve`] trait and its hickory implementation.
//!
//! This is the only resolver egress uses; `tokio::net::lookup_host` and `ToSocketAddrs` are banned by
//! clippy.toml so nothing can bypass the guard.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError as HickoryError, TokioResolver};

use crate::error::ResolveError;

/// Resolves a host name (never an IP literal: the guard classifies those directly) to its addresses.
#[async_trait]
pub trait Resolve: Send + Sync {
    /// All A and AAAA addresses of `host`; `Empty` when there are none (NOERROR without addresses, or
    /// NXDOMAIN); `Failed` for an error answer (SERVFAIL, REFUSED, …) or a transport error when no
    /// address came back; `TimedOut` past the timeout.
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
        // A and AAAA are asked separately (concurrently, under one timeout) so that an error answer
        // of either is seen: hickory's combined lookup keeps only one of two errors, at random.
        let lookups = async {
            tokio::join!(
                self.resolver.lookup(absolute.as_str(), RecordType::A),
                self.resolver.lookup(absolute.as_str(), RecordType::AAAA)
            )
        };
        let (v4, v6) = tokio::time::timeout(self.timeout, lookups)
            .await
            .map_err(|_| ResolveError::TimedOut { host: host.to_owned() })?;
        let (v4, v6) = (Answer::from(v4), Answer::from(v6));
        let addrs: Vec<IpAddr> = v4.addresses.into_iter().chain(v6.addresses).collect();
        // Addresses from one family are used even when the other failed: every address that is used
        // is still classified, and nothing else is ever connected to.
        if addrs.is_empty()
            && let Some(reason) = v4.failure.or(v6.failure)
        {
            return Err(ResolveError::Failed { host: host.to_owned(), reason });
        }
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

/// The outcome of one A or AAAA query: its addresses, or why there are none.
struct Answer {
    addresses: Vec<IpAddr>,
    /// Set for an error answer (any rcode other than NOERROR and NXDOMAIN) or a transport error;
    /// `None` for a definite "no such address" (NOERROR without records, or NXDOMAIN).
    failure: Option<String>,
}

impl From<Result<hickory_resolver::lookup::Lookup, HickoryError>> for Answer {
    fn from(result: Result<hickory_resolver::lookup::Lookup, HickoryError>) -> Self {
        let error = match result {
            Ok(lookup) => {
                let addresses = lookup
                    .iter()
                    .filter_map(|rdata| match rdata {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                        _ => None,
                    })
                    .collect();
                return Self { addresses, failure: None };
            }
            Err(error) => error,
        };
        let failure = match error.proto().map(|proto| proto.kind()) {
            Some(ProtoErrorKind::NoRecordsFound { response_code, .. })
                if matches!(*response_code, ResponseCode::NoError | ResponseCode::NXDomain) =>
            {
                None
            }
            Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => {
                Some(format!("the DNS server answered {} ({response_code})", rcode_name(*response_code)))
            }
            _ => Some(error.to_string()),
        };
        Self { addresses: Vec::new(), failure }
    }
}

/// The mnemonic of an error rcode (RFC 1035 §4.1.1, RFC 6895), as operators read it in DNS tools.
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("rcode {}", u16::from(other)),
    }
}

/// Lowercase, no trailing dot.
fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}
