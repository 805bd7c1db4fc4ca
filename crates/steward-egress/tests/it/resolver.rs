//! The hickory resolver against real UDP DNS servers started by the test.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a failed test

use crate::support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use steward_egress::{HickoryResolve, Resolve, ResolverSettings, guard};
use steward_types::ErrorCode;
use support::dns::{A, AAAA, DnsServer, Failure, REFUSED, SERVFAIL, silent};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn table() -> HashMap<String, Vec<IpAddr>> {
    HashMap::from([
        ("public.test".to_owned(), vec![ip("93.184.216.34"), ip("2606:2800:220:1:248:1893:25c8:1946")]),
        ("v4only.test".to_owned(), vec![ip("93.184.216.34")]),
        ("mixed.test".to_owned(), vec![ip("93.184.216.34"), ip("10.0.0.7")]),
        ("mixed6.test".to_owned(), vec![ip("93.184.216.34"), ip("fd00::7")]),
        ("mapped.test".to_owned(), vec![ip("::ffff:127.0.0.1")]),
        ("teredo.test".to_owned(), vec![ip("2001:0:4136:e378:8000:63bf:3fff:fdd2")]),
        ("metadata.test".to_owned(), vec![ip("169.254.169.254")]),
        ("empty.test".to_owned(), vec![]),
    ])
}

fn resolver(
    servers: Vec<std::net::SocketAddr>,
    statics: &[(&str, &str)],
    timeout: Duration,
) -> HickoryResolve {
    HickoryResolve::new(ResolverSettings {
        static_hosts: statics.iter().map(|(n, a)| ((*n).to_owned(), vec![ip(a)])).collect(),
        dns_servers: servers,
        dns_timeout: timeout,
    })
    .unwrap()
}

#[tokio::test]
async fn answers_a_and_aaaa_from_a_real_dns_server() {
    let dns = DnsServer::start(table()).await;
    let r = resolver(vec![dns.addr], &[], Duration::from_secs(2));
    let mut got = r.resolve("public.test").await.unwrap();
    got.sort();
    assert_eq!(got, vec![ip("93.184.216.34"), ip("2606:2800:220:1:248:1893:25c8:1946")]);
    assert_eq!(r.resolve("V4ONLY.test.").await.unwrap(), vec![ip("93.184.216.34")]);
    assert!(dns.query_count() >= 2, "A and AAAA were asked");
}

#[tokio::test]
async fn no_addresses_is_empty() {
    let dns = DnsServer::start(table()).await;
    let r = resolver(vec![dns.addr], &[], Duration::from_secs(2));
    for name in ["empty.test", "nxdomain.test"] {
        let err = r.resolve(name).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::DnsResolutionEmpty, "{name}: {err}");
    }
}

#[tokio::test]
async fn static_hosts_are_answered_first() {
    let dns = DnsServer::start(table()).await;
    let r = resolver(vec![dns.addr], &[("public.test", "8.8.4.4")], Duration::from_secs(2));
    assert_eq!(r.resolve("Public.Test").await.unwrap(), vec![ip("8.8.4.4")]);
    assert_eq!(dns.query_count(), 0, "DNS was not asked");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let (addr, _task) = silent().await;
    let r = resolver(vec![addr], &[], Duration::from_millis(300));
    let started = Instant::now();
    let err = r.resolve("public.test").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::DnsResolutionFailed, "{err}");
    assert_eq!(err.code().status(), 502);
    assert!(started.elapsed() < Duration::from_secs(2), "bounded by dns_timeout: {:?}", started.elapsed());
}

#[tokio::test]
async fn guard_over_real_dns_denies_any_bad_address() {
    let dns = DnsServer::start(table()).await;
    let r = resolver(vec![dns.addr], &[], Duration::from_secs(2));
    let cases = [
        ("mixed.test", Some(ErrorCode::ResolvedIpDeniedPrivateRange)),
        ("mixed6.test", Some(ErrorCode::ResolvedIpDeniedPrivateRange)),
        ("mapped.test", Some(ErrorCode::ResolvedIpDeniedLoopback)),
        ("teredo.test", Some(ErrorCode::ResolvedIpDeniedReserved)),
        ("metadata.test", Some(ErrorCode::ResolvedIpDeniedMetadataRange)),
        ("empty.test", Some(ErrorCode::DnsResolutionEmpty)),
        ("public.test", None),
    ];
    for (host, expected) in cases {
        let result = guard(host, 443, &r, &[]).await;
        assert_eq!(result.as_ref().err().map(|e| e.code()), expected, "{host}");
        if let Ok(target) = result {
            assert_eq!(target.addresses().len(), 2);
        }
    }
    let allow_all = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
    let err = guard("metadata.test", 443, &r, &allow_all).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResolvedIpDeniedMetadataRange);
    assert!(guard("mixed.test", 443, &r, &allow_all).await.is_ok());
}

#[tokio::test]
async fn metadata_embedded_in_ipv6_is_denied_whatever_allow_cidrs_says() {
    // Over real DNS (AAAA answers next to a public A) and over static_hosts: the IPv4 address a
    // NAT64, 6to4 or Teredo address embeds is checked against the metadata list (check 1), which
    // allow_cidrs covering the IPv6 range does not exempt.
    let forms = [
        ("nat64-metadata.test", "64:ff9b::a9fe:a9fe"),
        ("nat64-local-metadata.test", "64:ff9b:1:2:3:4:a9fe:a9fe"),
        ("sixtofour-metadata.test", "2002:a9fe:a9fe::1"),
        ("teredo-metadata.test", "2001:0:4136:e378:8000:63bf:5601:5601"),
    ];
    let mut table = table();
    for (name, v6) in forms {
        table.insert(name.to_owned(), vec![ip("93.184.216.34"), ip(v6)]);
    }
    let dns = DnsServer::start(table).await;
    let statics: Vec<(&str, &str)> = forms.iter().map(|(name, v6)| (*name, *v6)).collect();
    let over_dns = resolver(vec![dns.addr], &[], Duration::from_secs(2));
    let over_statics = resolver(vec![dns.addr], &statics, Duration::from_secs(2));
    let allow: Vec<ipnet::IpNet> =
        ["64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/0", "0.0.0.0/0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
    for (name, v6) in forms {
        for r in [&over_dns, &over_statics] {
            let err = guard(name, 443, r, &allow).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::ResolvedIpDeniedMetadataRange, "{name} ({v6}): {err}");
            let literal = format!("[{v6}]");
            let err = guard(&literal, 443, r, &allow).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::ResolvedIpDeniedMetadataRange, "{literal}: {err}");
        }
    }
    assert!(dns.query_count() >= 2 * forms.len(), "the names were resolved over DNS");
}

#[tokio::test]
async fn an_error_answer_is_a_failure_not_an_empty_answer() {
    let failures = vec![
        Failure::new("servfail.test", None, SERVFAIL),
        Failure::new("refused.test", None, REFUSED),
        // One family fails, the other has no address: still an error, not "no addresses".
        Failure::new("v4only.test", Some(AAAA), SERVFAIL),
        Failure::new("empty.test", Some(A), REFUSED),
        // One family fails, the other answers: the addresses that came back are used.
        Failure::new("public.test", Some(AAAA), SERVFAIL),
    ];
    let dns = DnsServer::start_with_failures(table(), failures).await;
    let r = resolver(vec![dns.addr], &[], Duration::from_secs(2));
    for (name, what) in
        [("servfail.test", "SERVFAIL"), ("refused.test", "REFUSED"), ("empty.test", "REFUSED")]
    {
        let err = r.resolve(name).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::DnsResolutionFailed, "{name}: {err}");
        assert_eq!(err.code().status(), 502);
        assert!(err.to_string().contains(what), "{name}: {err}");
        let err = guard(name, 443, &r, &[]).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::DnsResolutionFailed, "{name} through the guard: {err}");
    }
    assert_eq!(r.resolve("public.test").await.unwrap(), vec![ip("93.184.216.34")]);
    // NOERROR without addresses and NXDOMAIN stay empty.
    let dns = DnsServer::start_with_failures(table(), Vec::new()).await;
    let r = resolver(vec![dns.addr], &[], Duration::from_secs(2));
    for name in ["empty.test", "nxdomain.test"] {
        assert_eq!(r.resolve(name).await.unwrap_err().code(), ErrorCode::DnsResolutionEmpty, "{name}");
    }
}
