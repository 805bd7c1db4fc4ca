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
