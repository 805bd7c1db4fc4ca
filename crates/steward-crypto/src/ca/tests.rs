use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::parse_x509_certificate;

use super::*;

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_750_000_000).unwrap().plus_millis(123)
}

fn ca() -> WorkloadCa {
    WorkloadCa::generate("steward.test", now()).unwrap()
}

fn workload_spki() -> Vec<u8> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap().subject_public_key_info()
}

#[test]
fn generated_ca_is_a_ten_year_p256_ca() {
    let ca = ca();
    let (_, cert) = parse_x509_certificate(ca.cert_der()).unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap();
    assert_eq!(cn, "Steward workload CA (steward.test)");
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert!(!ku.digital_signature());
    assert_eq!(cert.validity().not_before.timestamp(), now().unix_seconds() - 300);
    assert_eq!(cert.validity().not_after.timestamp(), now().unix_seconds() + 3650 * 86_400);
    assert_eq!(ca.not_after().unix_seconds(), now().unix_seconds() + 3650 * 86_400);
    cert.verify_signature(None).unwrap();
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(WorkloadCa::generate("", now()).is_err());
}

#[test]
fn client_cert_is_verified_by_the_ca_and_carries_only_the_identity() {
    let ca = ca();
    let uri = "spiffe://steward.test/tenant/t_1/workload/w_1";
    let issued = ca.issue_client_cert(&workload_spki(), uri, now(), 3600).unwrap();
    let (_, ca_cert) = parse_x509_certificate(ca.cert_der()).unwrap();
    let (_, cert) = parse_x509_certificate(&issued.cert_der).unwrap();

    cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    assert_eq!(cert.issuer(), ca_cert.subject());
    assert!(cert.subject().as_raw().len() <= 2, "empty subject");

    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical, "with an empty subject the SAN must be critical");
    assert_eq!(san.value.general_names, vec![GeneralName::URI(uri)]);

    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    assert!(!cert.is_ca());

    assert_eq!(issued.not_before.unix_seconds(), now().unix_seconds() - 300);
    assert_eq!(issued.not_after.unix_seconds(), now().unix_seconds() + 3600);
    assert_eq!(cert.validity().not_before.timestamp(), issued.not_before.unix_seconds());
    assert_eq!(cert.validity().not_after.timestamp(), issued.not_after.unix_seconds());
    assert_eq!(issued.not_before.unix_micros() % 1_000_000, 0);

    assert_eq!(issued.serial_hex, hex::encode(cert.raw_serial()));
    assert_eq!(issued.serial_hex.len(), 32);
    assert_eq!(issued.serial_hex, issued.serial_hex.to_lowercase());
    assert!(cert.raw_serial()[0] < 0x80, "positive");

    assert_eq!(issued.thumbprint, thumbprint_s256(&issued.cert_der));
    assert_eq!(issued.thumbprint.len(), 43);
    assert!(issued.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(cert.public_key().raw, &workload_spki_of(&issued)[..]);
}

fn workload_spki_of(issued: &IssuedClientCert) -> Vec<u8> {
    let (_, cert) = parse_x509_certificate(&issued.cert_der).unwrap();
    cert.public_key().raw.to_vec()
}

#[test]
fn client_cert_keeps_the_workload_public_key() {
    let ca = ca();
    let spki = workload_spki();
    let issued = ca.issue_client_cert(&spki, "spiffe://steward.test/w", now(), 60).unwrap();
    assert_eq!(workload_spki_of(&issued), spki);

    let ed = KeyPair::generate_for(&PKCS_ED25519).unwrap().subject_public_key_info();
    let issued = ca.issue_client_cert(&ed, "spiffe://steward.test/w", now(), 60).unwrap();
    assert_eq!(workload_spki_of(&issued), ed);

    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap().subject_public_key_info();
    assert!(ca.issue_client_cert(&p384, "spiffe://steward.test/w", now(), 60).is_ok());
}

#[test]
fn client_cert_rejects_bad_input() {
    let ca = ca();
    let spki = workload_spki();
    let uri = "spiffe://steward.test/w";
    assert!(matches!(ca.issue_client_cert(b"junk", uri, now(), 60), Err(CaError::UnsupportedPublicKey(_))));
    let mut trailing = spki.clone();
    trailing.push(0);
    assert!(ca.issue_client_cert(&trailing, uri, now(), 60).is_err());
    // A point that is not on the curve.
    let mut off_curve = spki.clone();
    let last = off_curve.len() - 1;
    off_curve[last] ^= 0x01;
    assert!(matches!(
        ca.issue_client_cert(&off_curve, uri, now(), 60),
        Err(CaError::UnsupportedPublicKey(_))
    ));
    for bad_uri in ["", "no-scheme", "spiffe://x/ y", "spiffe:", "://x", "spiffe://x/\u{e9}"] {
        assert!(
            matches!(ca.issue_client_cert(&spki, bad_uri, now(), 60), Err(CaError::InvalidSan(_))),
            "{bad_uri}"
        );
    }
    assert!(matches!(ca.issue_client_cert(&spki, uri, now(), 0), Err(CaError::InvalidValidity)));
    assert!(matches!(
        ca.issue_client_cert(&spki, uri, now(), 3651 * 86_400),
        Err(CaError::BeyondCaValidity { .. })
    ));
}

#[test]
fn serials_differ() {
    let ca = ca();
    let spki = workload_spki();
    let a = ca.issue_client_cert(&spki, "spiffe://steward.test/w", now(), 60).unwrap();
    let b = ca.issue_client_cert(&spki, "spiffe://steward.test/w", now(), 60).unwrap();
    assert_ne!(a.serial_hex, b.serial_hex);
    assert_ne!(a.thumbprint, b.thumbprint);
}

#[test]
fn server_cert_has_dns_and_ip_sans() {
    let ca = ca();
    let names = ["localhost", "127.0.0.1", "::1", "steward.example.com", "[fe80::1]"].map(String::from);
    let issued = ca.issue_server_cert(&names, now(), 365).unwrap();
    let (_, ca_cert) = parse_x509_certificate(ca.cert_der()).unwrap();
    let der = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes()).unwrap().1.contents;
    let (_, cert) = parse_x509_certificate(&der).unwrap();
    cert.verify_signature(Some(ca_cert.public_key())).unwrap();

    let sans = &cert.subject_alternative_name().unwrap().unwrap().value.general_names;
    assert!(sans.contains(&GeneralName::DNSName("localhost")));
    assert!(sans.contains(&GeneralName::DNSName("steward.example.com")));
    let ips: Vec<IpAddr> = sans
        .iter()
        .filter_map(|n| match n {
            GeneralName::IPAddress(b) if b.len() == 4 => Some(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap())),
            GeneralName::IPAddress(b) if b.len() == 16 => {
                Some(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()))
            }
            _ => None,
        })
        .collect();
    assert!(ips.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert!(ips.contains(&IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert!(ips.contains(&"fe80::1".parse().unwrap()));

    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    assert!(!cert.is_ca());
    assert_eq!(cert.validity().not_before.timestamp(), now().unix_seconds() - 300);
    assert_eq!(cert.validity().not_after.timestamp(), now().unix_seconds() + 365 * 86_400);

    // The key is a PKCS#8 PEM matching the certificate.
    assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let key = KeyPair::from_pem(&issued.key_pem).unwrap();
    assert_eq!(key.subject_public_key_info(), cert.public_key().raw);
    assert!(!format!("{issued:?}").contains("PRIVATE KEY"));
}

#[test]
fn server_cert_rejects_bad_names() {
    let ca = ca();
    assert!(matches!(ca.issue_server_cert(&[], now(), 365), Err(CaError::NoSans)));
    for bad in ["", "exa mple.com", "a..b", "-\u{e9}.com"] {
        assert!(
            matches!(ca.issue_server_cert(&[bad.to_owned()], now(), 365), Err(CaError::InvalidSan(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        ca.issue_server_cert(&["localhost".to_owned()], now(), 0),
        Err(CaError::InvalidValidity)
    ));
}

#[test]
fn from_parts_round_trip() {
    let ca = ca();
    let pkcs8 = ca.private_key_pkcs8();
    let again = WorkloadCa::from_parts(ca.cert_pem(), &pkcs8).unwrap();
    assert_eq!(again.cert_der(), ca.cert_der());
    assert_eq!(again.not_after(), ca.not_after());

    // Certificates from the rebuilt CA verify against the original ca.crt, with a matching AKI.
    let issued = again.issue_client_cert(&workload_spki(), "spiffe://steward.test/w", now(), 60).unwrap();
    let (_, ca_cert) = parse_x509_certificate(ca.cert_der()).unwrap();
    let (_, cert) = parse_x509_certificate(&issued.cert_der).unwrap();
    cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    assert_eq!(cert.issuer(), ca_cert.subject());
    let ski = ca_cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .unwrap();
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(aki, ski);
}

#[test]
fn from_parts_rejects_mismatches() {
    let ca = ca();
    let other = WorkloadCa::generate("steward.test", now()).unwrap();
    assert!(matches!(
        WorkloadCa::from_parts(ca.cert_pem(), &other.private_key_pkcs8()),
        Err(CaError::InvalidCaKey)
    ));
    assert!(matches!(WorkloadCa::from_parts(ca.cert_pem(), b"junk"), Err(CaError::InvalidCaKey)));
    assert!(matches!(
        WorkloadCa::from_parts("not pem", &ca.private_key_pkcs8()),
        Err(CaError::InvalidCaCertificate(_))
    ));
    // A leaf certificate is not a CA.
    let leaf = ca.issue_server_cert(&["localhost".to_owned()], now(), 30).unwrap();
    assert!(matches!(
        WorkloadCa::from_parts(&leaf.cert_pem, &ca.private_key_pkcs8()),
        Err(CaError::InvalidCaCertificate(_))
    ));
}

#[test]
fn debug_never_shows_the_key() {
    let ca = ca();
    let debug = format!("{ca:?}");
    assert!(debug.starts_with("WorkloadCa"), "{debug}");
    assert!(!debug.contains("BEGIN"), "{debug}");
}

#[test]
fn client_cert_accepts_rsa_2048_to_4096_with_e_65537() {
    let ca = ca();
    let uri = "spiffe://steward.test/w";
    for size in [rcgen::RsaKeySize::_2048, rcgen::RsaKeySize::_4096] {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, size).unwrap();
        let issued = ca.issue_client_cert(&key.subject_public_key_info(), uri, now(), 60).unwrap();
        let (_, cert) = parse_x509_certificate(&issued.cert_der).unwrap();
        assert_eq!(cert.public_key().raw, key.subject_public_key_info().as_slice());
    }
    // An SPKI claiming RSA but holding garbage is refused.
    let spki = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap()
        .subject_public_key_info();
    let mut broken = spki.clone();
    let last = broken.len() - 3;
    broken[last] ^= 0xff;
    assert!(ca.issue_client_cert(&broken, uri, now(), 60).is_err());
}
