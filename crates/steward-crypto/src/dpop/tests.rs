use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::json;

use super::*;

const HTU: &str = "https://localhost/v1/session";
const NOW: i64 = 1_700_000_000;
const SKEW: i64 = 300;

/// Shared keys: RSA generation is the slow part of this suite, and sharing keeps proptest fast.
static ES256: LazyLock<DpopKey> = LazyLock::new(|| DpopKey::generate_es256().unwrap());
static ED25519: LazyLock<DpopKey> = LazyLock::new(|| DpopKey::generate_ed25519().unwrap());
static RS256: LazyLock<DpopKey> = LazyLock::new(|| DpopKey::generate(DpopAlg::Rs256).unwrap());

fn expect() -> DpopExpectations<'static> {
    DpopExpectations {
        method: "POST",
        htu: HTU,
        now_unix: NOW,
        max_skew_seconds: SKEW,
        not_before_unix: None,
        access_token: None,
        expected_jkt: None,
    }
}

fn verify(proof: &str, expect: &DpopExpectations<'_>) -> Result<VerifiedProof, DpopError> {
    verify_dpop_proof(&[proof.as_bytes()], expect)
}

fn code(proof: &str, expect: &DpopExpectations<'_>) -> ErrorCode {
    verify(proof, expect).expect_err("the proof should be rejected").code
}

fn header(key: &DpopKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.alg().as_str(), "jwk": key.public_jwk()})
}

fn claims() -> Value {
    json!({"jti": "jti-1", "htm": "POST", "htu": HTU, "iat": NOW})
}

/// A proof with any header and claims, correctly signed by `key`.
fn craft(key: &DpopKey, header: &Value, claims: &Value) -> String {
    key.sign_compact(&serde_json::to_vec(header).unwrap(), &serde_json::to_vec(claims).unwrap()).unwrap()
}

fn with(mut value: Value, member: &str, replacement: Value) -> Value {
    value.as_object_mut().unwrap().insert(member.to_owned(), replacement);
    value
}

fn without(mut value: Value, member: &str) -> Value {
    value.as_object_mut().unwrap().remove(member);
    value
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---- accepted proofs ----

#[test]
fn every_algorithm_verifies() {
    for alg in DpopAlg::ALL {
        let key = DpopKey::generate(alg).unwrap();
        let proof = key.proof("POST", HTU, NOW, "jti-1", None).unwrap();
        let verified = verify(&proof, &expect()).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(verified.jkt(), key.thumbprint(), "{alg}");
        assert_eq!(verified.jti(), "jti-1");
        assert_eq!(verified.iat(), NOW);

        // The same key on a bound session with a token.
        let proof =
            key.proof("GET", "https://localhost/v1/execute", NOW, "jti-2", Some("stw_sess_x")).unwrap();
        let bound = DpopExpectations {
            method: "GET",
            htu: "https://localhost/v1/execute",
            access_token: Some("stw_sess_x"),
            expected_jkt: Some(key.thumbprint()),
            ..expect()
        };
        assert!(verify(&proof, &bound).is_ok(), "{alg}");
    }
}

#[test]
fn pkcs8_round_trips_and_wrong_inputs_fail() {
    for alg in DpopAlg::ALL {
        let key = DpopKey::generate(alg).unwrap();
        let pkcs8 = key.to_pkcs8().unwrap();
        let again = DpopKey::from_pkcs8(alg, &pkcs8).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint(), "{alg}");
        assert_eq!(again.public_jwk(), key.public_jwk(), "{alg}");
        assert!(DpopKey::from_pkcs8(alg, b"garbage").is_err(), "{alg}");
    }
    let es256 = ES256.to_pkcs8().unwrap();
    assert!(DpopKey::from_pkcs8(DpopAlg::Es384, &es256).is_err());
    assert!(DpopKey::from_pkcs8(DpopAlg::EdDsa, &es256).is_err());
    // Debug never shows key material.
    let debug = format!("{:?}", *ES256);
    assert!(debug.contains(ES256.thumbprint()) && !debug.contains("pair"), "{debug}");
}

#[test]
fn public_jwks_carry_only_public_members() {
    assert_eq!(ED25519.public_jwk().as_object().unwrap().len(), 3);
    assert_eq!(ES256.public_jwk()["crv"], "P-256");
    assert_eq!(RS256.public_jwk()["e"], "AQAB");
    for key in [&*ES256, &*ED25519, &*RS256] {
        let jwk = key.public_jwk().as_object().unwrap();
        assert!(PRIVATE_JWK_MEMBERS.iter().all(|m| !jwk.contains_key(*m)));
    }
}

// ---- RFC 7638 thumbprints ----

#[test]
fn thumbprint_matches_rfc_7638_example() {
    // RFC 7638 §3.1; `alg` and `kid` are not thumbprint members and must not change the result.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    });
    assert_eq!(jwk_thumbprint(&jwk).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

#[test]
fn thumbprint_matches_rfc_8037_ed25519_example() {
    // RFC 8037 Appendix A.3.
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    assert_eq!(jwk_thumbprint(&jwk).unwrap(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
}

#[test]
fn thumbprint_refuses_what_the_verifier_refuses() {
    let private = with(ED25519.public_jwk().clone(), "d", json!(b64([7u8; 32])));
    assert_eq!(jwk_thumbprint(&private).unwrap_err().code, ErrorCode::DpopJwkInvalid);
    assert_eq!(jwk_thumbprint(&json!("x")).unwrap_err().code, ErrorCode::DpopJwkInvalid);
    assert_eq!(
        jwk_thumbprint(&json!({"kty": "oct", "k": "AAAA"})).unwrap_err().code,
        ErrorCode::DpopJwkInvalid
    );
}

// ---- dpop_missing / dpop_malformed ----

#[test]
fn header_count_and_size() {
    let proof = ES256.proof("POST", HTU, NOW, "j", None).unwrap();
    assert_eq!(verify_dpop_proof(&[], &expect()).unwrap_err().code, ErrorCode::DpopMissing);
    let two = [proof.as_bytes(), proof.as_bytes()];
    assert_eq!(verify_dpop_proof(&two, &expect()).unwrap_err().code, ErrorCode::DpopMalformed);

    // A correctly signed proof just over 8 KiB is refused for its size alone.
    let padding = |len: usize| with(claims(), "pad", json!("a".repeat(len)));
    let base = craft(&ES256, &header(&ES256), &padding(0)).len();
    // Every 3 payload bytes add 4 base64url characters; aim just past the limit.
    let big = craft(&ES256, &header(&ES256), &padding((MAX_PROOF_BYTES - base) * 3 / 4 + 3));
    assert!(big.len() > MAX_PROOF_BYTES && big.len() < MAX_PROOF_BYTES + 8, "{}", big.len());
    assert_eq!(code(&big, &expect()), ErrorCode::DpopMalformed);
    let fits = craft(&ES256, &header(&ES256), &padding((MAX_PROOF_BYTES - base) * 3 / 4 - 3));
    assert!(fits.len() <= MAX_PROOF_BYTES);
    assert!(verify(&fits, &expect()).is_ok());
}

#[test]
fn malformed_shapes() {
    let proof = ES256.proof("POST", HTU, NOW, "j", None).unwrap();
    let (h, rest) = proof.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let array = b64("[1]");
    let object = b64(r#"{"a":1}"#);
    let cases = [
        String::new(),
        "abc".to_owned(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}=.{p}.{s}"),    // padding
        format!("{h}.{p}.{s}="),    // padding on the signature
        format!("{h}.{p}.{s}+"),    // standard, not url-safe, alphabet
        format!(" {h}.{p}.{s}"),    // whitespace
        format!("{array}.{p}.{s}"), // header not an object
        format!("{h}.{array}.{s}"), // payload not an object
        format!("{h}.{}.{s}", b64("not json")),
        format!("{}.{p}.{s}", b64([0xff, 0xfe])),
        format!("{object}.{object}.{}", "!"),
    ];
    for case in &cases {
        assert_eq!(code(case, &expect()), ErrorCode::DpopMalformed, "{case}");
    }
    assert_eq!(
        verify_dpop_proof(&[&[0xff, b'.', b'.']], &expect()).unwrap_err().code,
        ErrorCode::DpopMalformed
    );

    // Duplicate member names, at the top or nested in the jwk, could make two parsers disagree.
    let duplicated = format!(
        r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{},"alg":"ES256"}}"#,
        serde_json::to_string(ES256.public_jwk()).unwrap()
    );
    let proof = ES256.sign_compact(duplicated.as_bytes(), &serde_json::to_vec(&claims()).unwrap()).unwrap();
    assert_eq!(code(&proof, &expect()), ErrorCode::DpopMalformed);
    let nested = r#"{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","kty":"OKP"}}"#;
    let proof = ED25519.sign_compact(nested.as_bytes(), &serde_json::to_vec(&claims()).unwrap()).unwrap();
    assert_eq!(code(&proof, &expect()), ErrorCode::DpopMalformed);

    // Critical extensions we do not implement make the JWS invalid.
    let crit = with(header(&ES256), "crit", json!(["exp"]));
    assert_eq!(code(&craft(&ES256, &crit, &claims()), &expect()), ErrorCode::DpopMalformed);
}

// ---- dpop_bad_typ ----

#[test]
fn typ_must_be_dpop_jwt() {
    for typ in
        [json!("jwt"), json!("JWT"), json!("DPOP+JWT"), json!("application/dpop+jwt"), json!(1), Value::Null]
    {
        let h = with(header(&ES256), "typ", typ.clone());
        assert_eq!(code(&craft(&ES256, &h, &claims()), &expect()), ErrorCode::DpopBadTyp, "{typ}");
    }
    let h = without(header(&ES256), "typ");
    assert_eq!(code(&craft(&ES256, &h, &claims()), &expect()), ErrorCode::DpopBadTyp);
}

// ---- dpop_alg_forbidden ----

#[test]
fn alg_none_and_hmac_are_forbidden() {
    // An unsecured JWS: empty signature part.
    let none = with(header(&ES256), "alg", json!("none"));
    let unsecured = format!("{}.{}.", b64(none.to_string()), b64(claims().to_string()));
    assert_eq!(code(&unsecured, &expect()), ErrorCode::DpopAlgForbidden);

    // HS256 "signed" with a symmetric jwk: refused at alg, before the jwk's `k` is even looked at.
    let hs = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"secret")}});
    let hs_proof = format!(
        "{}.{}.{}",
        b64(hs.to_string()),
        b64(claims().to_string()),
        b64(crate::hash::hmac_sha256(&[7u8; 32], b"x"))
    );
    assert_eq!(code(&hs_proof, &expect()), ErrorCode::DpopAlgForbidden);

    for alg in [json!("HS384"), json!("ES512"), json!("RS512"), json!("es256"), json!("Ed25519"), json!(7)] {
        let h = with(header(&ES256), "alg", alg.clone());
        assert_eq!(code(&craft(&ES256, &h, &claims()), &expect()), ErrorCode::DpopAlgForbidden, "{alg}");
    }
    let h = without(header(&ES256), "alg");
    assert_eq!(code(&craft(&ES256, &h, &claims()), &expect()), ErrorCode::DpopAlgForbidden);
}

#[test]
fn alg_must_match_the_jwk_type() {
    let es384 = DpopKey::generate(DpopAlg::Es384).unwrap();
    let cases: [(&DpopKey, &str); 6] = [
        (&ED25519, "ES256"), // the brief's case: ES256 header, Ed25519 key
        (&ES256, "ES384"),   // right kty, wrong curve
        (&es384, "ES256"),
        (&ES256, "RS256"),
        (&RS256, "EdDSA"),
        (&ED25519, "PS256"),
    ];
    for (key, alg) in cases {
        let h = with(header(key), "alg", json!(alg));
        assert_eq!(code(&craft(key, &h, &claims()), &expect()), ErrorCode::DpopAlgForbidden, "{alg}");
    }
    // RS256 and PS256 share a key type: a PS256-signed proof labelled RS256 gets past alg and fails
    // at the signature instead.
    let ps256 = DpopKey::generate(DpopAlg::Ps256).unwrap();
    let h = with(header(&ps256), "alg", json!("RS256"));
    assert_eq!(code(&craft(&ps256, &h, &claims()), &expect()), ErrorCode::DpopSignatureInvalid);
}

// ---- dpop_jwk_invalid ----

#[test]
fn jwk_must_be_present_and_an_object() {
    let h = without(header(&ES256), "jwk");
    assert_eq!(code(&craft(&ES256, &h, &claims()), &expect()), ErrorCode::DpopJwkInvalid);
    let h = with(header(&ES256), "jwk", json!(ES256.public_jwk().to_string()));
    assert_eq!(code(&craft(&ES256, &h, &claims()), &expect()), ErrorCode::DpopJwkInvalid);
}

#[test]
fn any_private_member_is_refused() {
    for member in PRIVATE_JWK_MEMBERS {
        for key in [&*ES256, &*ED25519, &*RS256] {
            // Present at all is enough, whatever its value: a JOSE library would drop it silently.
            for value in [json!(b64([1u8; 32])), Value::Null] {
                let jwk = with(key.public_jwk().clone(), member, value);
                let h = with(header(key), "jwk", jwk);
                assert_eq!(
                    code(&craft(key, &h, &claims()), &expect()),
                    ErrorCode::DpopJwkInvalid,
                    "{member} on {}",
                    key.alg()
                );
            }
        }
    }
}

#[test]
fn ec_and_okp_keys_are_checked() {
    let jwk = ES256.public_jwk().clone();
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let bad_jwks = [
        without(jwk.clone(), "crv"),
        with(jwk.clone(), "crv", json!(1)),
        without(jwk.clone(), "y"),
        with(jwk.clone(), "x", json!(b64(&x[1..]))), // 31 bytes
        with(jwk.clone(), "x", json!(b64([x.clone(), vec![0]].concat()))), // 33 bytes
        with(jwk.clone(), "y", json!(b64([1u8; 32]))), // not on the curve
        with(jwk.clone(), "x", json!(format!("{}=", jwk["x"].as_str().unwrap()))), // padded
        with(jwk.clone(), "y", json!(7)),
    ];
    for bad in bad_jwks {
        let h = with(header(&ES256), "jwk", bad.clone());
        assert_eq!(code(&craft(&ES256, &h, &claims()), &expect()), ErrorCode::DpopJwkInvalid, "{bad}");
    }

    let jwk = ED25519.public_jwk().clone();
    for bad in [with(jwk.clone(), "x", json!(b64([3u8; 31]))), without(jwk.clone(), "x")] {
        let h = with(header(&ED25519), "jwk", bad.clone());
        assert_eq!(code(&craft(&ED25519, &h, &claims()), &expect()), ErrorCode::DpopJwkInvalid, "{bad}");
    }
}

/// An RSA header that passes typ and alg, with a made-up modulus: the signature step is never reached.
fn rsa_proof_with(n: &[u8], e: &[u8]) -> String {
    let h = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": {"kty": "RSA", "n": b64(n), "e": b64(e)}});
    format!("{}.{}.{}", b64(h.to_string()), b64(claims().to_string()), b64([0u8; 128]))
}

fn modulus(bits: usize) -> Vec<u8> {
    let mut n = vec![0xa5u8; bits.div_ceil(8)];
    n[0] = 0x80 >> ((8 - bits % 8) % 8);
    n[0] |= 1;
    if let Some(last) = n.last_mut() {
        *last |= 1;
    }
    n
}

#[test]
fn rsa_keys_must_be_2048_to_4096_bits_with_exponent_65537() {
    assert_eq!(modulus(1024).len(), 128);
    assert_eq!(code(&rsa_proof_with(&modulus(1024), &[1, 0, 1]), &expect()), ErrorCode::DpopJwkInvalid);
    assert_eq!(code(&rsa_proof_with(&modulus(2047), &[1, 0, 1]), &expect()), ErrorCode::DpopJwkInvalid);
    assert_eq!(code(&rsa_proof_with(&modulus(4097), &[1, 0, 1]), &expect()), ErrorCode::DpopJwkInvalid);
    // The boundaries themselves pass the key checks and fail only at the (garbage) signature.
    for bits in [2048, 3072, 4096] {
        assert_eq!(
            code(&rsa_proof_with(&modulus(bits), &[1, 0, 1]), &expect()),
            ErrorCode::DpopSignatureInvalid,
            "{bits}"
        );
    }
    for e in [&[3u8][..], &[0, 1, 0, 1], &[1, 0, 0, 1], &[]] {
        assert_eq!(code(&rsa_proof_with(&modulus(2048), e), &expect()), ErrorCode::DpopJwkInvalid, "{e:?}");
    }
    let leading_zero = [vec![0u8], modulus(2048)].concat();
    assert_eq!(code(&rsa_proof_with(&leading_zero, &[1, 0, 1]), &expect()), ErrorCode::DpopJwkInvalid);
    let mut even = modulus(2048);
    *even.last_mut().unwrap() &= 0xfe;
    assert_eq!(code(&rsa_proof_with(&even, &[1, 0, 1]), &expect()), ErrorCode::DpopJwkInvalid);
}

#[test]
fn unknown_key_types_are_refused() {
    // kty RSA with an EC-style body, and a jwk without kty, under algs consistent with the jwk.
    let h = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": {"kty": "RSA", "x": "AAAA"}});
    assert_eq!(code(&craft(&RS256, &h, &claims()), &expect()), ErrorCode::DpopJwkInvalid);
    // No kty, or one outside EC/OKP/RSA, is not a supported key: the jwk check refuses it.
    for kty in [None, Some(json!("oct")), Some(json!("ec")), Some(json!(1))] {
        let mut jwk = json!({"crv": "P-256", "x": b64([1u8; 32]), "y": b64([2u8; 32])});
        if let Some(kty) = &kty {
            jwk["kty"] = kty.clone();
        }
        let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        assert_eq!(code(&craft(&ES256, &h, &claims()), &expect()), ErrorCode::DpopJwkInvalid, "kty {kty:?}");
    }
}

#[test]
fn curves_outside_the_allowed_set_are_invalid_keys_not_alg_mismatches() {
    // The alg is consistent with the key type (EdDSA ↔ OKP, ES* ↔ EC), so the alg check passes; the
    // curve is not one Steward accepts, so the jwk check refuses the key.
    let cases = [
        ("EdDSA", json!({"kty": "OKP", "crv": "Ed448", "x": b64([7u8; 57])})),
        ("EdDSA", json!({"kty": "OKP", "crv": "X25519", "x": b64([7u8; 32])})),
        ("EdDSA", json!({"kty": "OKP", "crv": "X448", "x": b64([7u8; 56])})),
        ("EdDSA", json!({"kty": "OKP", "x": b64([7u8; 32])})),
        ("ES256", json!({"kty": "EC", "crv": "P-521", "x": b64([7u8; 66]), "y": b64([8u8; 66])})),
        ("ES384", json!({"kty": "EC", "crv": "P-521", "x": b64([7u8; 66]), "y": b64([8u8; 66])})),
        ("ES256", json!({"kty": "EC", "crv": "secp256k1", "x": b64([7u8; 32]), "y": b64([8u8; 32])})),
        ("ES256", json!({"kty": "EC", "crv": "p-256", "x": b64([7u8; 32]), "y": b64([8u8; 32])})),
    ];
    for (alg, jwk) in cases {
        let h = json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
        assert_eq!(
            code(&craft(&ED25519, &h, &claims()), &expect()),
            ErrorCode::DpopJwkInvalid,
            "{alg} {jwk}"
        );
    }
    // A supported curve that is not the alg's is still an alg mismatch.
    let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-384", "x": b64([7u8; 48]), "y": b64([8u8; 48])}});
    assert_eq!(code(&craft(&ED25519, &h, &claims()), &expect()), ErrorCode::DpopAlgForbidden);
}

// ---- dpop_signature_invalid ----

#[test]
fn tampered_or_foreign_signatures_fail() {
    for key in [&*ES256, &*ED25519, &*RS256] {
        let proof = key.proof("POST", HTU, NOW, "j", None).unwrap();
        let (signing_input, signature) = proof.rsplit_once('.').unwrap();
        // Change the first signature character, which is always a full 6 bits of data.
        let first = if signature.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{signing_input}.{first}{}", &signature[1..]);
        assert_eq!(code(&tampered, &expect()), ErrorCode::DpopSignatureInvalid, "{}", key.alg());

        // Claims swapped under the original signature.
        let (h, _) = signing_input.split_once('.').unwrap();
        let other_claims = b64(with(claims(), "jti", json!("other")).to_string());
        let swapped = format!("{h}.{other_claims}.{signature}");
        assert_eq!(code(&swapped, &expect()), ErrorCode::DpopSignatureInvalid, "{}", key.alg());

        // Signature stripped.
        assert_eq!(code(&format!("{signing_input}."), &expect()), ErrorCode::DpopSignatureInvalid);
    }
    // Signed by another key of the same type than the one in the header.
    let other = DpopKey::generate_es256().unwrap();
    let proof = craft(&other, &header(&ES256), &claims());
    assert_eq!(code(&proof, &expect()), ErrorCode::DpopSignatureInvalid);
}

// ---- dpop_missing_claims ----

#[test]
fn required_claims_and_types() {
    let bad_claims = [
        without(claims(), "jti"),
        without(claims(), "htm"),
        without(claims(), "htu"),
        without(claims(), "iat"),
        with(claims(), "jti", json!("")),
        with(claims(), "jti", json!("j".repeat(257))),
        with(claims(), "jti", json!(12)),
        with(claims(), "htm", json!(["POST"])),
        with(claims(), "htu", Value::Null),
        with(claims(), "iat", json!("1700000000")),
    ];
    for bad in bad_claims {
        assert_eq!(
            code(&craft(&ES256, &header(&ES256), &bad), &expect()),
            ErrorCode::DpopMissingClaims,
            "{bad}"
        );
    }
    // 256 characters is the limit, counted in characters, not bytes.
    for jti in ["j".repeat(256), "é".repeat(256)] {
        let ok = craft(&ES256, &header(&ES256), &with(claims(), "jti", json!(jti)));
        assert_eq!(verify(&ok, &expect()).unwrap().jti(), jti);
    }
}

// ---- dpop_method_mismatch ----

#[test]
fn htm_must_equal_the_method_exactly() {
    for htm in ["GET", "post", "POST "] {
        let proof = ES256.proof(htm, HTU, NOW, "j", None).unwrap();
        assert_eq!(code(&proof, &expect()), ErrorCode::DpopMethodMismatch, "{htm}");
    }
}

// ---- dpop_htu_mismatch ----

#[test]
fn htu_is_compared_after_normalization() {
    let matching = [
        "https://localhost/v1/session",
        "HTTPS://LOCALHOST:443/v1/session",
        "https://localhost:/v1/session",
        "https://localhost/v1/session?query=1",
        "https://localhost/v1/session#fragment",
        "https://localhost/v1/%73ession",
        "https://localhost/v1/./x/../session",
    ];
    for htu in matching {
        let proof = ES256.proof("POST", htu, NOW, "j", None).unwrap();
        assert!(verify(&proof, &expect()).is_ok(), "{htu}");
    }
    let mismatching = [
        "https://example.com/v1/session",
        "https://localhost:8443/v1/session",
        "https://localhost:80/v1/session",
        "http://localhost/v1/session",
        "https://localhost/v1/execute",
        "https://localhost/v1/session/",
        "https://localhost/V1/session",
        "https://user@localhost/v1/session",
        "/v1/session",
        "localhost/v1/session",
        "not a url",
        "",
    ];
    for htu in mismatching {
        let proof = ES256.proof("POST", htu, NOW, "j", None).unwrap();
        assert_eq!(code(&proof, &expect()), ErrorCode::DpopHtuMismatch, "{htu}");
    }
    // The expected side is normalized too: a base URL with an explicit default port still matches.
    let proof = ES256.proof("POST", HTU, NOW, "j", None).unwrap();
    assert!(
        verify(&proof, &DpopExpectations { htu: "https://Localhost:443/v1/session", ..expect() }).is_ok()
    );
}

#[test]
fn htu_normalization_details() {
    let cases = [
        ("HTTP://Example.COM:80", Some("http://example.com/")),
        ("http://example.com:8080/a", Some("http://example.com:8080/a")),
        ("http://example.com:08080/a", Some("http://example.com:8080/a")),
        ("https://[::1]:443/a", Some("https://[::1]/a")),
        ("https://[FE80::1]/a", Some("https://[fe80::1]/a")),
        ("https://h/a%2fb%7e%41", Some("https://h/a%2Fb~A")),
        ("https://h/a/b/../../../c", Some("https://h/c")),
        ("https://h/a/b/..", Some("https://h/a/")),
        ("https://h/a//b", Some("https://h/a//b")),
        ("https://h/%zz", None),
        ("https://h/%4", None),
        ("https://h:99999/", None),
        ("https://h:x/", None),
        ("https://:443/", None),
        ("https://[::1/", None),
        ("https://h]/", None),
        ("1https://h/", None),
        ("https://h/ü", None),
        ("https://h/a b", None),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_htu(raw).as_deref(), want, "{raw}");
    }
}

// ---- dpop_iat_skew ----

#[test]
fn iat_window_is_inclusive() {
    for (iat, ok) in
        [(NOW - SKEW, true), (NOW + SKEW, true), (NOW - SKEW - 1, false), (NOW + SKEW + 1, false)]
    {
        let proof = ES256.proof("POST", HTU, iat, "j", None).unwrap();
        match verify(&proof, &expect()) {
            Ok(verified) => assert!(ok && verified.iat() == iat, "{iat}"),
            Err(e) => assert!(!ok && e.code == ErrorCode::DpopIatSkew, "{iat}: {e}"),
        }
    }
}

#[test]
fn iat_extremes_and_fractions() {
    let fraction = craft(&ES256, &header(&ES256), &with(claims(), "iat", json!(NOW as f64 + 0.75)));
    assert_eq!(verify(&fraction, &expect()).unwrap().iat(), NOW);
    for iat in [json!(i64::MIN), json!(i64::MAX), json!(u64::MAX), json!(1e300), json!(-1e300), json!(0)] {
        let proof = craft(&ES256, &header(&ES256), &with(claims(), "iat", iat.clone()));
        assert_eq!(code(&proof, &expect()), ErrorCode::DpopIatSkew, "{iat}");
    }
}

#[test]
fn proofs_from_before_process_start_are_refused() {
    let started = DpopExpectations { not_before_unix: Some(NOW - 10), ..expect() };
    let before = ES256.proof("POST", HTU, NOW - 11, "j", None).unwrap();
    let err = verify(&before, &started).unwrap_err();
    assert_eq!(err.code, ErrorCode::DpopIatSkew);
    assert!(err.message.contains("before this server process started"), "{}", err.message);
    let at = ES256.proof("POST", HTU, NOW - 10, "j", None).unwrap();
    assert!(verify(&at, &started).is_ok());
}

// ---- dpop_ath_missing / dpop_ath_mismatch ----

#[test]
fn ath_binds_the_token() {
    let with_token = DpopExpectations { access_token: Some("stw_sess_token"), ..expect() };
    let no_ath = ES256.proof("POST", HTU, NOW, "j", None).unwrap();
    assert_eq!(code(&no_ath, &with_token), ErrorCode::DpopAthMissing);
    let other_token = ES256.proof("POST", HTU, NOW, "j", Some("stw_sess_other")).unwrap();
    assert_eq!(code(&other_token, &with_token), ErrorCode::DpopAthMismatch);
    let not_a_string = craft(&ES256, &header(&ES256), &with(claims(), "ath", json!(1)));
    assert_eq!(code(&not_a_string, &with_token), ErrorCode::DpopAthMismatch);
    let right = ES256.proof("POST", HTU, NOW, "j", Some("stw_sess_token")).unwrap();
    assert!(verify(&right, &with_token).is_ok());
    // Without a token (POST /v1/session) an ath is neither required nor checked.
    assert!(verify(&other_token, &expect()).is_ok());
    // The hash is base64url SHA-256, no padding (RFC 9449 §4.2).
    assert_eq!(access_token_hash("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}

// ---- dpop_jkt_mismatch ----

#[test]
fn bound_session_requires_its_key() {
    let proof = ES256.proof("POST", HTU, NOW, "j", None).unwrap();
    let other = DpopExpectations { expected_jkt: Some(ED25519.thumbprint()), ..expect() };
    assert_eq!(code(&proof, &other), ErrorCode::DpopJktMismatch);
    let own = DpopExpectations { expected_jkt: Some(ES256.thumbprint()), ..expect() };
    assert!(verify(&proof, &own).is_ok());
}

// ---- order and replay hand-off ----

#[test]
fn the_first_failing_check_wins() {
    let strict = DpopExpectations {
        access_token: Some("t"),
        expected_jkt: Some("someone-else"),
        not_before_unix: Some(NOW + 1000),
        ..expect()
    };
    let broken_claims = json!({"jti": "j", "htm": "GET", "htu": "https://evil/", "iat": 0});
    // Each step: a header/claims pair failing this check and every later one.
    let typ_and_alg = json!({"typ": "jwt", "alg": "none", "jwk": {"d": "x"}});
    assert_eq!(code(&craft(&ES256, &typ_and_alg, &broken_claims), &strict), ErrorCode::DpopBadTyp);
    let alg_and_jwk = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "x"}});
    assert_eq!(code(&craft(&ES256, &alg_and_jwk, &broken_claims), &strict), ErrorCode::DpopAlgForbidden);
    let jwk_and_sig = with(header(&ES256), "jwk", with(ES256.public_jwk().clone(), "d", json!("x")));
    assert_eq!(code(&craft(&ED25519, &jwk_and_sig, &broken_claims), &strict), ErrorCode::DpopJwkInvalid);
    assert_eq!(code(&craft(&ED25519, &header(&ES256), &json!({})), &strict), ErrorCode::DpopSignatureInvalid);
    assert_eq!(
        code(&craft(&ES256, &header(&ES256), &without(broken_claims.clone(), "jti")), &strict),
        ErrorCode::DpopMissingClaims
    );
    assert_eq!(code(&craft(&ES256, &header(&ES256), &broken_claims), &strict), ErrorCode::DpopMethodMismatch);
    let htu_on = with(broken_claims.clone(), "htm", json!("POST"));
    assert_eq!(code(&craft(&ES256, &header(&ES256), &htu_on), &strict), ErrorCode::DpopHtuMismatch);
    let iat_on = with(htu_on, "htu", json!(HTU));
    assert_eq!(code(&craft(&ES256, &header(&ES256), &iat_on), &strict), ErrorCode::DpopIatSkew);
    let not_before_on = with(iat_on, "iat", json!(NOW));
    let err = verify(&craft(&ES256, &header(&ES256), &not_before_on), &strict).unwrap_err();
    assert!(err.code == ErrorCode::DpopIatSkew && err.message.contains("started"), "{err}");
    let relaxed = DpopExpectations { not_before_unix: None, ..strict };
    assert_eq!(code(&craft(&ES256, &header(&ES256), &not_before_on), &relaxed), ErrorCode::DpopAthMissing);
    let ath_on = with(not_before_on, "ath", json!(access_token_hash("t")));
    assert_eq!(code(&craft(&ES256, &header(&ES256), &ath_on), &relaxed), ErrorCode::DpopJktMismatch);
}

#[test]
fn replay_key_is_per_key_and_fixed_shape() {
    let a = verify(&ES256.proof("POST", HTU, NOW, "same-jti", None).unwrap(), &expect()).unwrap();
    let b = verify(&ED25519.proof("POST", HTU, NOW, "same-jti", None).unwrap(), &expect()).unwrap();
    let again = verify(&ES256.proof("POST", HTU, NOW + 1, "same-jti", None).unwrap(), &expect()).unwrap();
    assert_ne!(a.replay_key(), b.replay_key());
    assert_eq!(a.replay_key(), again.replay_key());
    let hash = a.replay_key().strip_prefix(&format!("dpop:{}:", ES256.thumbprint())).unwrap().to_owned();
    assert!(hash.len() == 64 && hash.bytes().all(|c| c.is_ascii_hexdigit()), "{hash}");
    assert_eq!(a.replay_ttl_seconds(), 2 * SKEW as u64);
}

#[test]
fn debug_output_hides_the_token() {
    let e = DpopExpectations { access_token: Some("stw_sess_SECRET"), ..expect() };
    let debug = format!("{e:?}");
    assert!(!debug.contains("SECRET") && debug.contains("[REDACTED]"), "{debug}");
}

// ---- properties: parsing never panics ----

fn json_key() -> impl Strategy<Value = String> {
    const KNOWN: [&str; 17] = [
        "typ", "alg", "jwk", "crit", "kty", "crv", "x", "y", "n", "e", "d", "k", "jti", "htm", "htu", "iat",
        "ath",
    ];
    prop_oneof![prop::sample::select(&KNOWN[..]).prop_map(str::to_owned), "[a-z]{1,3}"]
}

fn json_value() -> impl Strategy<Value = Value> {
    const NAMES: [&str; 18] = [
        "dpop+jwt", "ES256", "ES384", "EdDSA", "RS256", "PS256", "none", "HS256", "EC", "OKP", "RSA", "oct",
        "P-256", "P-384", "Ed25519", "AQAB", "POST", HTU,
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        "[A-Za-z0-9_./:%?#@\\[\\]-]{0,24}".prop_map(Value::from),
        prop::sample::select(&NAMES[..]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(json_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_header_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..10_000)) {
        let _ = verify_dpop_proof(&[&bytes], &expect());
    }

    #[test]
    fn arbitrary_base64url_parts_never_panic(proof in "[A-Za-z0-9_=.-]{0,600}") {
        let _ = verify(&proof, &expect());
    }

    #[test]
    fn arbitrary_signed_json_never_panics(header in json_value(), claims in json_value()) {
        // Correctly signed, so arbitrary JSON reaches every check past the signature too.
        let proof = craft(&ES256, &header, &claims);
        let _ = verify(&proof, &DpopExpectations { access_token: Some("t"), not_before_unix: Some(0), ..expect() });
    }

    #[test]
    fn arbitrary_members_over_a_valid_proof_never_panic(
        header_extra in prop::collection::btree_map(json_key(), json_value(), 0..4),
        jwk_extra in prop::collection::btree_map(json_key(), json_value(), 0..4),
        claims_extra in prop::collection::btree_map(json_key(), json_value(), 0..4),
    ) {
        let mut jwk = ES256.public_jwk().clone();
        jwk.as_object_mut().unwrap().extend(jwk_extra);
        let mut h = with(header(&ES256), "jwk", jwk);
        h.as_object_mut().unwrap().extend(header_extra);
        let mut c = claims();
        c.as_object_mut().unwrap().extend(claims_extra);
        if let Ok(verified) = verify(&craft(&ES256, &h, &c), &expect()) {
            // Whatever was added, an accepted proof is one signed by the key it names.
            prop_assert_eq!(verified.jkt(), ES256.thumbprint());
        }
    }

    #[test]
    fn htu_normalization_is_idempotent(raw in "(https?|HTTPS|ftp)://[A-Za-z0-9.:\\[\\]@%-]{0,20}(/[A-Za-z0-9.%~_-]{0,8}){0,5}[?#]?[a-z]{0,3}") {
        if let Some(once) = normalize_htu(&raw) {
            let twice = normalize_htu(&once);
            prop_assert_eq!(twice.as_deref(), Some(once.as_str()));
        }
    }
}
