#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn parses_ipv4_and_ipv6_proxy_headers_and_skips_tlvs() {
    let v4 = encode(Some((addr("203.0.113.7:51000"), addr("10.0.0.5:8443"))), &[0x04, 0x00, 0x01, 0xaa]);
    let (header, len) = parse(&v4).unwrap();
    assert_eq!(len, v4.len());
    assert_eq!(
        header,
        ProxyHeader::Proxied { source: addr("203.0.113.7:51000"), destination: addr("10.0.0.5:8443") }
    );
    assert_eq!(header.client(addr("10.0.0.1:1")), addr("203.0.113.7:51000"));

    let v6 = encode(Some((addr("[2001:db8::7]:443"), addr("[2001:db8::1]:8443"))), &[]);
    let (header, _) = parse(&v6).unwrap();
    assert_eq!(header.client(addr("10.0.0.1:1")), addr("[2001:db8::7]:443"));
}

#[test]
fn local_uses_the_tcp_peer_whatever_its_block_holds() {
    let mut local = encode(None, &[]);
    assert_eq!(parse(&local).unwrap().0.client(addr("192.0.2.9:7")), addr("192.0.2.9:7"));
    // LOCAL with an (ignored) address block and an unusual family.
    local[13] = 0x31;
    local[15] = 3;
    local.extend_from_slice(&[1, 2, 3]);
    assert_eq!(parse(&local).unwrap(), (ProxyHeader::Local, 19));
}

#[test]
fn refuses_everything_else() {
    let good = encode(Some((addr("203.0.113.7:1"), addr("10.0.0.5:2"))), &[]);
    let mut v1 = b"PROXY TCP4 203.0.113.7 10.0.0.5 1 2\r\n".to_vec();
    v1.resize(40, 0);
    assert_eq!(parse(&v1).unwrap_err(), ProxyHeaderError::Signature);
    assert_eq!(parse(&[0x16, 0x03, 0x01]).unwrap_err(), ProxyHeaderError::Signature, "a TLS ClientHello");

    let mut bad = good.clone();
    bad[12] = 0x11;
    assert_eq!(parse(&bad).unwrap_err(), ProxyHeaderError::Version(1));
    let mut bad = good.clone();
    bad[12] = 0x22;
    assert_eq!(parse(&bad).unwrap_err(), ProxyHeaderError::Command(2));
    for family in [0x00, 0x12, 0x22, 0x31, 0x32] {
        let mut bad = good.clone();
        bad[13] = family;
        assert_eq!(parse(&bad).unwrap_err(), ProxyHeaderError::Family(family));
    }
    let mut bad = good.clone();
    bad[15] = 8; // an IPv4 block must hold 12 bytes
    assert_eq!(parse(&bad[..24]).unwrap_err(), ProxyHeaderError::Truncated(8));
    let mut bad = good.clone();
    bad[14] = 0xff;
    assert!(matches!(parse(&bad).unwrap_err(), ProxyHeaderError::TooLong(_)));
    assert!(matches!(parse(&good[..20]).unwrap_err(), ProxyHeaderError::Truncated(_)));
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    // A small deterministic generator: random prefixes after a valid signature and random bytes.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = usize::try_from(next() % 64).unwrap();
        let mut bytes: Vec<u8> = (0..len).map(|_| (next() & 0xff) as u8).collect();
        if next() % 2 == 0 {
            let mut with_signature = SIGNATURE.to_vec();
            with_signature.append(&mut bytes);
            bytes = with_signature;
        }
        let _ = parse(&bytes);
    }
}

#[tokio::test]
async fn reads_exactly_the_header_and_no_more() {
    let mut bytes = encode(Some((addr("203.0.113.7:9"), addr("10.0.0.5:8443"))), &[0x03, 0x00, 0x00]);
    bytes.extend_from_slice(b"\x16\x03\x01TLS");
    let mut reader = std::io::Cursor::new(bytes);
    let header = read_header(&mut reader).await.unwrap();
    assert_eq!(header.client(addr("1.1.1.1:1")), addr("203.0.113.7:9"));
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"\x16\x03\x01TLS");
}

#[tokio::test]
async fn a_silent_or_short_client_times_out_or_fails() {
    let (mut client, mut server) = tokio::io::duplex(64);
    let timed_out = read_header_within(&mut server, Duration::from_millis(50)).await;
    assert_eq!(timed_out.unwrap_err(), ProxyHeaderError::Timeout);
    use tokio::io::AsyncWriteExt;
    client.write_all(&SIGNATURE[..5]).await.unwrap();
    drop(client);
    assert_eq!(read_header(&mut server).await.unwrap_err().reason(), "io");
}
