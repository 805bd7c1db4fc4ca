use std::net::IpAddr;

use ipnet::IpNet;
use steward_types::ErrorCode;

use super::classify;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().expect("test cidr")).collect()
}

fn code(s: &str) -> Option<ErrorCode> {
    classify(ip(s), &[]).err()
}

#[test]
fn metadata_addresses() {
    for a in [
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "100.100.100.200",
        "168.63.129.16",
        "192.0.0.192",
        "fd00:ec2::254",
        "fd20:ce::254",
        "::ffff:169.254.169.254",
    ] {
        assert_eq!(code(a), Some(ErrorCode::ResolvedIpDeniedMetadataRange), "{a}");
    }
}

#[test]
fn metadata_is_never_exemptible() {
    let allow = nets(&["0.0.0.0/0", "::/0", "169.254.169.254/32"]);
    for a in ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254", "100.100.100.200"] {
        assert_eq!(classify(ip(a), &allow), Err(ErrorCode::ResolvedIpDeniedMetadataRange), "{a}");
    }
}

#[test]
fn loopback() {
    for a in ["127.0.0.1", "127.255.255.255", "::1", "::ffff:127.0.0.1"] {
        assert_eq!(code(a), Some(ErrorCode::ResolvedIpDeniedLoopback), "{a}");
    }
}

#[test]
fn private() {
    for a in [
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.255",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "::ffff:10.1.2.3",
    ] {
        assert_eq!(code(a), Some(ErrorCode::ResolvedIpDeniedPrivateRange), "{a}");
    }
}

#[test]
fn link_local() {
    for a in ["169.254.0.1", "169.254.169.1", "fe80::1", "febf::1", "::ffff:169.254.1.1"] {
        assert_eq!(code(a), Some(ErrorCode::ResolvedIpDeniedLinkLocal), "{a}");
    }
}

#[test]
fn reserved() {
    for a in [
        "0.0.0.0",
        "0.1.2.3",
        "192.0.0.1",
        "192.0.2.1",
        "192.88.99.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "239.255.255.255",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1.2.3.4",
        "::ffff:0:808:808",
        "64:ff9b::808:808",
        "64:ff9b::7f00:1",
        "64:ff9b:1::1",
        "100::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:db8::1",
        "2002::1",
        "2002:7f00:1::1",
        "3fff::1",
        "3fff:fff::1",
        "ff02::1",
        "::ffff:0.0.0.0",
    ] {
        assert_eq!(code(a), Some(ErrorCode::ResolvedIpDeniedReserved), "{a}");
    }
}

#[test]
fn public_addresses_pass() {
    for a in [
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "172.15.255.255",
        "100.128.0.1",
        "100.63.255.255",
        "198.20.0.1",
        "192.0.1.1",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "3fff:1000::1",
        "::ffff:8.8.8.8",
        "2001:1::1",
    ] {
        assert_eq!(code(a), None, "{a}");
    }
}

#[test]
fn allow_cidrs_exempt_checks_two_to_five() {
    let allow = nets(&["127.0.0.1/32", "10.0.0.0/8", "fe80::/10", "2001:db8::/32"]);
    for a in ["127.0.0.1", "::ffff:127.0.0.1", "10.9.8.7", "fe80::1", "2001:db8::5"] {
        assert_eq!(classify(ip(a), &allow), Ok(()), "{a}");
    }
    assert_eq!(classify(ip("127.0.0.2"), &allow), Err(ErrorCode::ResolvedIpDeniedLoopback));
    assert_eq!(classify(ip("::1"), &allow), Err(ErrorCode::ResolvedIpDeniedLoopback));
}

#[test]
fn mapping_is_only_for_v4_mapped() {
    // IPv4-compatible, SIIT and NAT64 forms of a loopback address are reserved, not loopback.
    assert_eq!(code("::127.0.0.1"), Some(ErrorCode::ResolvedIpDeniedReserved));
    assert_eq!(code("::ffff:0:7f00:1"), Some(ErrorCode::ResolvedIpDeniedReserved));
    assert_eq!(code("64:ff9b::7f00:1"), Some(ErrorCode::ResolvedIpDeniedReserved));
}

const METADATA_V4: [&str; 6] = [
    "169.254.169.254",
    "169.254.170.2",
    "169.254.169.253",
    "100.100.100.200",
    "168.63.129.16",
    "192.0.0.192",
];

/// Every IPv6 transition form embedding `v4`: NAT64 (well-known and local-use, with non-zero bits
/// between the prefix and the address), 6to4, Teredo (inverted), IPv4-compatible and SIIT.
fn embedding_forms(v4: &str) -> Vec<String> {
    let a: std::net::Ipv4Addr = v4.parse().expect("test address");
    let [w1, w2] = [(a.to_bits() >> 16) as u16, a.to_bits() as u16];
    let [t1, t2] = [!w1, !w2];
    vec![
        format!("64:ff9b::{v4}"),
        format!("64:ff9b::{w1:x}:{w2:x}"),
        format!("64:ff9b:1::{v4}"),
        format!("64:ff9b:1:abcd:ef01:2345:{w1:x}:{w2:x}"),
        format!("2002:{w1:x}:{w2:x}::"),
        format!("2002:{w1:x}:{w2:x}:1:2:3:4:5"),
        format!("2001:0:4136:e378:8000:63bf:{t1:x}:{t2:x}"),
        format!("2001::{t1:x}:{t2:x}"),
        format!("::{v4}"),
        format!("::ffff:0:{v4}"),
    ]
}

#[test]
fn metadata_embedded_in_ipv6_transition_forms() {
    for v4 in METADATA_V4 {
        for form in embedding_forms(v4) {
            assert_eq!(code(&form), Some(ErrorCode::ResolvedIpDeniedMetadataRange), "{form} embeds {v4}");
        }
    }
}

#[test]
fn embedded_metadata_is_never_exemptible() {
    // allow_cidrs covering each transition range, and everything.
    let allow =
        nets(&["64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96", "::ffff:0:0:0/96"]);
    let everything = nets(&["::/0", "0.0.0.0/0"]);
    for v4 in METADATA_V4 {
        for form in embedding_forms(v4) {
            for list in [&allow, &everything] {
                assert_eq!(
                    classify(ip(&form), list),
                    Err(ErrorCode::ResolvedIpDeniedMetadataRange),
                    "{form} with {list:?}"
                );
            }
        }
    }
}

#[test]
fn other_embedded_addresses_keep_their_range_code() {
    // Only check 1 looks inside: an embedded loopback or public address is still reserved, and
    // allow_cidrs exempts it as usual.
    for a in ["64:ff9b::7f00:1", "2002:7f00:1::", "2001::80ff:fffe", "64:ff9b::808:808", "2002:808:808::1"] {
        assert_eq!(code(a), Some(ErrorCode::ResolvedIpDeniedReserved), "{a}");
    }
    let allow = nets(&["64:ff9b::/96", "2002::/16", "2001::/32"]);
    for a in ["64:ff9b::808:808", "2002:808:808::1", "2001::f7f7:f7f7", "64:ff9b::a9fe:1"] {
        assert_eq!(classify(ip(a), &allow), Ok(()), "{a}");
    }
    // Neighbours of the metadata addresses, embedded, are not metadata.
    assert_eq!(code("64:ff9b::a9fe:a9fc"), Some(ErrorCode::ResolvedIpDeniedReserved));
    assert_eq!(code("2002:a9fe:a9fc::"), Some(ErrorCode::ResolvedIpDeniedReserved));
}
