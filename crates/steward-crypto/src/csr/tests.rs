use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_ECDSA_P521_SHA512, PKCS_ED25519, PKCS_RSA_SHA256, PublicKeyData, RsaKeySize,
    SanType, SignatureAlgorithm,
};

use super::*;

fn csr_for(key: &KeyPair) -> String {
    CertificateParams::new(vec!["ignored.example".to_owned()])
        .unwrap()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

fn key(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).unwrap()
}

#[test]
fn accepts_the_supported_key_types_and_returns_their_spki() {
    for (alg, expected) in [
        (&PKCS_ECDSA_P256_SHA256, CsrKeyType::EcdsaP256),
        (&PKCS_ECDSA_P384_SHA384, CsrKeyType::EcdsaP384),
        (&PKCS_ED25519, CsrKeyType::Ed25519),
    ] {
        let key = key(alg);
        let verified = verify_csr_pem(&csr_for(&key)).unwrap();
        assert_eq!(verified.key_type, expected);
        assert_eq!(verified.spki_der, key.subject_public_key_info());
    }
    let rsa = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
    let verified = verify_csr_pem(&csr_for(&rsa)).unwrap();
    assert_eq!(verified.key_type, CsrKeyType::Rsa { bits: 2048 });
    assert_eq!(verified.key_type.name(), "rsa2048");
}

#[test]
fn extensions_subject_and_sans_are_ignored() {
    let key = key(&PKCS_ECDSA_P256_SHA256);
    let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::URI("spiffe://steward/tenants/t_x/workloads/w_x".try_into().unwrap()));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.custom_extensions =
        vec![CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![5, 0])];
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    assert_eq!(verify_csr_pem(&pem).unwrap().key_type, CsrKeyType::EcdsaP256);
}

#[test]
fn unsupported_keys_are_reported_as_such() {
    let error = verify_csr_pem(&csr_for(&key(&PKCS_ECDSA_P521_SHA512))).unwrap_err();
    assert!(matches!(&error, CsrError::KeyUnsupported(m) if m.contains("1.3.132.0.35")), "{error:?}");
}

#[test]
fn a_bad_signature_or_structure_is_invalid() {
    let key = key(&PKCS_ECDSA_P256_SHA256);
    let pem = csr_for(&key);
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    // Flip a bit inside the signed part (the subject's DNS name sits in the request info).
    let mut der = block.contents.clone();
    let position = der.windows(7).position(|w| w == b"ignored").unwrap();
    der[position] ^= 0x01;
    assert!(matches!(verify_csr_der(&der), Err(CsrError::Invalid(m)) if m.contains("self-signature")));
    let mut trailing = block.contents.clone();
    trailing.push(0);
    assert!(matches!(verify_csr_der(&trailing), Err(CsrError::Invalid(_))));
    for bad in ["", "junk", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"] {
        assert!(matches!(verify_csr_pem(bad), Err(CsrError::Invalid(_))), "{bad:?}");
    }
    let huge = "A".repeat(MAX_CSR_PEM_BYTES + 1);
    assert!(matches!(verify_csr_pem(&huge), Err(CsrError::Invalid(m)) if m.contains("larger")));
}

#[test]
fn bit_lengths() {
    assert_eq!(bit_length(&[]), 0);
    assert_eq!(bit_length(&[1]), 1);
    assert_eq!(bit_length(&[0x80, 0]), 16);
    assert_eq!(strip_leading_zeros(&[0, 0, 1, 0]), &[1, 0]);
}

fn wrap_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> =
        body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

proptest! {
    // The fuzz target's stable twin: CSR intake never panics, whatever it is given.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_text(text in ".{0,2048}") {
        let _ = verify_csr_pem(&text);
    }

    #[test]
    fn never_panics_on_arbitrary_der_in_a_pem(der in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = verify_csr_pem(&wrap_pem("CERTIFICATE REQUEST", &der));
        let _ = verify_csr_der(&der);
    }

    #[test]
    fn never_panics_on_a_mutated_real_csr(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let pem = csr_for(&KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap());
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let mut der = block.contents;
        for (index, value) in flips {
            let i = index.index(der.len());
            der[i] ^= value;
        }
        let _ = verify_csr_der(&der);
        let truncated = &der[..cut.index(der.len() + 1)];
        let _ = verify_csr_pem(&wrap_pem("CERTIFICATE REQUEST", truncated));
    }
}
