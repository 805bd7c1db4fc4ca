//! The SSRF guard: resolve once, classify every address, hand the validated set to the connector.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::classify::classify;
use crate::error::EgressError;
use crate::resolve::Resolve;

/// A host, port and the addresses the guard validated for it. Only [`guard`] builds one, and the
/// connector connects to nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedTarget {
    host: String,
    port: u16,
    addresses: Vec<IpAddr>,
}

impl ValidatedTarget {
    /// The canonical host (IPv6 literals in brackets), used for SNI and `host`.
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Every address of the host, all allowed, never empty.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }
}

/// Resolves (names) or parses (IP literals, bracketed or not) `host` and classifies every address;
/// **any** denied address denies the request with its `resolved_ip_denied_*` code.
pub async fn guard(
    host: &str,
    port: u16,
    resolver: &dyn Resolve,
    allow: &[IpNet],
) -> Result<ValidatedTarget, EgressError> {
    let addresses = match ip_literal(host) {
        Some(ip) => vec![ip],
        None => resolver.resolve(host).await?,
    };
    if addresses.is_empty() {
        return Err(crate::error::ResolveError::Empty { host: host.to_owned() }.into());
    }
    for ip in &addresses {
        classify(*ip, allow).map_err(|code| EgressError::AddressDenied {
            host: host.to_owned(),
            ip: *ip,
            code,
        })?;
    }
    Ok(ValidatedTarget { host: host.to_owned(), port, addresses })
}

/// The address of an IP-literal host (`1.2.3.4`, `[::1]` or `::1`).
pub(crate) fn ip_literal(host: &str) -> Option<IpAddr> {
    let inner = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ResolveError;
    use async_trait::async_trait;
    use steward_types::ErrorCode;

    struct Fixed(Vec<IpAddr>);

    #[async_trait]
    impl Resolve for Fixed {
        async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
            if self.0.is_empty() {
                return Err(ResolveError::Empty { host: host.into() });
            }
            Ok(self.0.clone())
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    async fn code(host: &str, answers: &[&str], allow: &[&str]) -> Result<ValidatedTarget, ErrorCode> {
        let allow: Vec<IpNet> = allow.iter().map(|s| s.parse().unwrap()).collect();
        guard(host, 443, &Fixed(ips(answers)), &allow).await.map_err(|e| e.code())
    }

    #[tokio::test]
    async fn literals_are_classified_without_resolving() {
        assert_eq!(
            code("127.0.0.1", &["8.8.8.8"], &[]).await.unwrap_err(),
            ErrorCode::ResolvedIpDeniedLoopback
        );
        assert_eq!(code("[::1]", &["8.8.8.8"], &[]).await.unwrap_err(), ErrorCode::ResolvedIpDeniedLoopback);
        assert_eq!(
            code("[::ffff:127.0.0.1]", &[], &[]).await.unwrap_err(),
            ErrorCode::ResolvedIpDeniedLoopback
        );
        let ok = code("[2606:4700::1]", &[], &[]).await.unwrap();
        assert_eq!(ok.addresses(), ips(&["2606:4700::1"]).as_slice());
        assert_eq!(ok.host(), "[2606:4700::1]");
    }

    #[tokio::test]
    async fn any_denied_address_denies() {
        assert_eq!(
            code("api.example.com", &["8.8.8.8", "10.0.0.1"], &[]).await.unwrap_err(),
            ErrorCode::ResolvedIpDeniedPrivateRange
        );
        assert_eq!(
            code("api.example.com", &["2606:4700::1", "fe80::1"], &[]).await.unwrap_err(),
            ErrorCode::ResolvedIpDeniedLinkLocal
        );
        assert_eq!(
            code("api.example.com", &["8.8.8.8", "169.254.169.254"], &["0.0.0.0/0"]).await.unwrap_err(),
            ErrorCode::ResolvedIpDeniedMetadataRange
        );
        let ok = code("api.example.com", &["8.8.8.8", "1.1.1.1"], &[]).await.unwrap();
        assert_eq!(ok.addresses().len(), 2);
        assert_eq!(ok.port(), 443);
    }

    #[tokio::test]
    async fn empty_answers() {
        assert_eq!(code("api.example.com", &[], &[]).await.unwrap_err(), ErrorCode::DnsResolutionEmpty);
    }
}
