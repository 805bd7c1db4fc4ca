//! What the egress tests share: a forwarder and resolver set up for loopback, and the real local
//! servers they talk to (`steward_testkit`'s HTTPS upstream, which records every request as it
//! arrived, and its UDP DNS responder). No mocks: real sockets, real TLS with a CA made at test time.

// Test scaffolding: a failure to bind or build is a broken test environment, so it panics.
#![allow(dead_code, clippy::unwrap_used)]

// Not every test binary uses the DNS responder.
#[allow(unused_imports)]
pub use steward_testkit::dns;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use steward_egress::{Forwarder, ForwarderSettings, HickoryResolve, ResolverSettings};
use steward_testkit::pki::TestCa;
use steward_testkit::upstream::{Reply, TestUpstream, UpstreamOptions};

/// An upstream on 127.0.0.1 (any free port, a fresh CA) answering every request with `reply`.
pub async fn upstream(reply: Reply) -> TestUpstream {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set(reply);
    upstream
}

/// An upstream on `ip:port` (port 0 = any) with a certificate for `hosts` from `ca`, answering
/// every request with `reply`.
pub async fn upstream_at(
    ip: IpAddr,
    port: u16,
    ca: Arc<TestCa>,
    hosts: &[&str],
    reply: Reply,
) -> TestUpstream {
    let options = UpstreamOptions {
        bind: SocketAddr::new(ip, port),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        ca: Some(ca),
        ..UpstreamOptions::default()
    };
    let upstream = TestUpstream::start_with(options).await.unwrap();
    upstream.set(reply);
    upstream
}

/// A resolver answering `localhost` (and `names`) from static hosts, with no DNS server needed.
pub fn static_resolver(names: &[(&str, &[IpAddr])]) -> HickoryResolve {
    let mut static_hosts: HashMap<String, Vec<IpAddr>> = HashMap::new();
    static_hosts.insert("localhost".into(), vec![IpAddr::from([127, 0, 0, 1])]);
    for (name, addrs) in names {
        static_hosts.insert((*name).to_owned(), addrs.to_vec());
    }
    HickoryResolve::new(ResolverSettings {
        static_hosts,
        // Never consulted for static names; a closed local port if it were.
        dns_servers: vec!["127.0.0.1:9".parse().unwrap()],
        dns_timeout: Duration::from_millis(500),
    })
    .unwrap()
}

pub fn loopback_allow() -> Vec<IpNet> {
    vec!["127.0.0.1/32".parse().unwrap()]
}

/// A forwarder trusting `ca_pem`, allowing 127.0.0.1, with short timeouts.
pub fn forwarder(ca_pem: &str, tweak: impl FnOnce(&mut ForwarderSettings)) -> Arc<Forwarder> {
    let mut settings = ForwarderSettings {
        connect_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(5),
        allow_cidrs: loopback_allow(),
        extra_ca_pems: vec![ca_pem.to_owned()],
        ..ForwarderSettings::default()
    };
    tweak(&mut settings);
    Arc::new(Forwarder::new(settings).unwrap())
}
