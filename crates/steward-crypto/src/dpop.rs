//! DPoP proof verification (RFC 9449) and, for workloads and tests, a proof builder.
//!
//! [`verify_dpop_proof`] runs the checks of `spec/data-plane.md` "DPoP proof verification" in exactly
//! the spec's order, each failing with its own `dpop_*` code, and parses the JWS and JWK itself on
//! `serde_json`: general-purpose JOSE crates drop what they do not model (jsonwebtoken's `Jwk` silently
//! discards private members), and the spec's rejections depend on exactly those members.
//!
//! The proof builder ([`DpopKey`], in `dpop/key.rs`) is for workloads and tests.
//!
//! What this module does not do: the replay check. It has no storage and no clock; the caller passes
//! `now` and, only after this function returned `Ok`, records [`VerifiedProof::replay_key`] in its
//! coordination service for [`VerifiedProof::replay_ttl_seconds`] (`dpop_replay` when already present).
//! A proof rejected by any check here must never reach that step, so a forged or stale proof can never
//! burn the jti of a genuine one.

use std::collections::HashSet;
use std::fmt;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RSA_PSS_2048_8192_SHA256, RsaParameters, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use steward_types::ErrorCode;
use subtle::ConstantTimeEq;

mod key;

pub use key::{DpopKey, DpopKeyError};

/// The largest accepted `DPoP` header value, in bytes (spec: ≤ 8 KiB).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// The longest accepted `jti`, in characters.
pub const MAX_JTI_CHARS: usize = 256;

/// The `algs` parameter of `WWW-Authenticate: DPoP …` on every DPoP failure.
pub const DPOP_SIGNING_ALGS: &str = "ES256 ES384 EdDSA RS256 PS256";

/// The JWS `typ` a DPoP proof must carry.
const DPOP_TYP: &str = "dpop+jwt";

/// Members that only a private (or symmetric) JWK has. Checked on the raw header JSON so nothing a
/// JOSE library would drop can slip through.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 4096;
/// 65537, big-endian without leading zeros: the only public exponent accepted.
const RSA_EXPONENT_65537: [u8; 3] = [0x01, 0x00, 0x01];

/// What the request the proof arrived with says. The caller builds `htu` from `public_base_url` and the
/// request path, and passes its own clock's `now`.
#[derive(Clone, Copy)]
pub struct DpopExpectations<'a> {
    /// The request method, compared to `htm` exactly (methods are case-sensitive).
    pub method: &'a str,
    /// `public_base_url` + request path.
    pub htu: &'a str,
    pub now_unix: i64,
    /// `dpop.max_skew_seconds`; `iat` may be this far before or after `now_unix`, inclusive.
    pub max_skew_seconds: i64,
    /// Embedded mode without durable jtis: proofs issued before the process started are refused, so a
    /// restart (which empties the replay cache) cannot reopen a replay window.
    pub not_before_unix: Option<i64>,
    /// The presented access token (session token). When set, `ath` is required.
    pub access_token: Option<&'a str>,
    /// The bound session's `jkt`. When set, the proof's key thumbprint must equal it.
    pub expected_jkt: Option<&'a str>,
}

/// A proof that passed every check except replay, which is the caller's last step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    jkt: String,
    jti: String,
    iat: i64,
    replay_ttl_seconds: u64,
}

/// A rejected proof: the `dpop_*` code the response carries and a message safe to return (it never
/// echoes the proof, the token or key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DpopError {
    pub code: ErrorCode,
    pub message: String,
}

/// The five signature algorithms DPoP proofs may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DpopAlg {
    Es256,
    Es384,
    EdDsa,
    Rs256,
    Ps256,
}

/// Verifies one DPoP proof against the request it arrived with.
///
/// `header_values` is every `DPoP` header value of the request (zero → `dpop_missing`, two or more →
/// `dpop_malformed`). Checks run in the spec's order and the first failure is returned. On success the
/// caller must still check [`VerifiedProof::replay_key`] — and only then accept the request.
pub fn verify_dpop_proof(
    header_values: &[&[u8]],
    expect: &DpopExpectations<'_>,
) -> Result<VerifiedProof, DpopError> {
    // 1. Shape: exactly one header, ≤ 8 KiB, a compact JWS whose header and payload are JSON objects.
    let jws = match header_values {
        [] => return Err(err(ErrorCode::DpopMissing, "no DPoP header was sent")),
        [one] => *one,
        _ => return Err(malformed("more than one DPoP header was sent")),
    };
    if jws.len() > MAX_PROOF_BYTES {
        return Err(malformed("the DPoP proof is larger than 8 KiB"));
    }
    let jws = std::str::from_utf8(jws).map_err(|_| malformed("the DPoP proof is not a compact JWS"))?;
    let mut parts = jws.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("the DPoP proof is not a compact JWS of three parts"));
    };
    let header = decode_json_object(header_b64, "header")?;
    let claims = decode_json_object(payload_b64, "payload")?;
    // An empty signature is well-formed here: an unsecured (`alg: none`) proof is then refused as
    // `dpop_alg_forbidden`, the more useful answer.
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| malformed("the DPoP proof signature is not base64url"))?;
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: extensions we do not implement must make the JWS invalid.
        return Err(malformed("the DPoP proof names critical header extensions"));
    }

    // 2. typ.
    if header.get("typ").and_then(Value::as_str) != Some(DPOP_TYP) {
        return Err(err(ErrorCode::DpopBadTyp, "the DPoP proof header typ must be dpop+jwt"));
    }

    // 3. alg: allowed, and consistent with the key it claims to be verified by.
    let alg = header.get("alg").and_then(Value::as_str).and_then(DpopAlg::from_name).ok_or_else(|| {
        err(ErrorCode::DpopAlgForbidden, "the DPoP proof alg must be one of ES256 ES384 EdDSA RS256 PS256")
    })?;
    if let Some(jwk) = header.get("jwk").and_then(Value::as_object)
        && !alg.matches_jwk_type(jwk)
    {
        return Err(err(ErrorCode::DpopAlgForbidden, "the DPoP proof alg does not match its jwk key type"));
    }

    // 4. jwk: present, public, a supported and well-formed key.
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or_else(|| jwk_invalid("the DPoP proof header has no jwk object"))?;
    let key = PublicJwk::parse(jwk, alg)?;

    // 5. Signature over the exact bytes received.
    let signing_input = jws.get(..header_b64.len() + 1 + payload_b64.len()).ok_or_else(|| {
        // Unreachable: the prefix is made of the parts just split off `jws`.
        malformed("the DPoP proof is not a compact JWS")
    })?;
    key.verifier.verify_sig(signing_input.as_bytes(), &signature).map_err(|_| {
        err(ErrorCode::DpopSignatureInvalid, "the DPoP proof signature does not verify with its jwk")
    })?;

    // 6. Required claims and their types.
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS)
        .ok_or_else(|| missing_claims("jti (a string of 1 to 256 characters)"))?;
    let htm = claims.get("htm").and_then(Value::as_str).ok_or_else(|| missing_claims("htm"))?;
    let htu = claims.get("htu").and_then(Value::as_str).ok_or_else(|| missing_claims("htu"))?;
    let iat = claims.get("iat").and_then(numeric_date).ok_or_else(|| missing_claims("iat (a number)"))?;

    // 7. htm.
    if htm != expect.method {
        return Err(err(
            ErrorCode::DpopMethodMismatch,
            "the DPoP proof htm does not match the request method",
        ));
    }

    // 8. htu, after RFC 3986 normalization on both sides. An unparseable value can match nothing.
    let htu_matches = match (normalize_htu(htu), normalize_htu(expect.htu)) {
        (Some(got), Some(want)) => got == want,
        _ => false,
    };
    if !htu_matches {
        return Err(err(ErrorCode::DpopHtuMismatch, "the DPoP proof htu does not match the request URL"));
    }

    // 9. iat freshness. i128 so that no iat a client can send overflows the subtraction.
    let skew = i128::from(iat) - i128::from(expect.now_unix);
    if skew.abs() > i128::from(expect.max_skew_seconds) {
        return Err(err(ErrorCode::DpopIatSkew, "the DPoP proof iat is too far from the server's time"));
    }
    if expect.not_before_unix.is_some_and(|not_before| iat < not_before) {
        return Err(err(
            ErrorCode::DpopIatSkew,
            "the DPoP proof was issued before this server process started; send a fresh proof",
        ));
    }

    // 10. ath binds the proof to the presented token.
    if let Some(token) = expect.access_token {
        let ath = claims.get("ath").ok_or_else(|| {
            err(ErrorCode::DpopAthMissing, "the DPoP proof has no ath claim for the presented token")
        })?;
        let expected = access_token_hash(token);
        let equal = ath.as_str().is_some_and(|ath| bool::from(ath.as_bytes().ct_eq(expected.as_bytes())));
        if !equal {
            return Err(err(
                ErrorCode::DpopAthMismatch,
                "the DPoP proof ath does not match the presented token",
            ));
        }
    }

    // 11. The bound session's key.
    if let Some(expected_jkt) = expect.expected_jkt
        && !bool::from(key.thumbprint.as_bytes().ct_eq(expected_jkt.as_bytes()))
    {
        return Err(err(
            ErrorCode::DpopJktMismatch,
            "the DPoP proof key is not the key the session is bound to",
        ));
    }

    Ok(VerifiedProof {
        jkt: key.thumbprint,
        jti: jti.to_owned(),
        iat,
        replay_ttl_seconds: u64::try_from(expect.max_skew_seconds).unwrap_or(0).saturating_mul(2),
    })
}

/// The RFC 7638 JWK SHA-256 thumbprint (base64url, no padding) of a public JWK. The JWK is validated
/// exactly as a proof's would be (`dpop_jwk_invalid` otherwise), so a thumbprint is never computed
/// over a key the verifier would refuse.
pub fn jwk_thumbprint(jwk: &Value) -> Result<String, DpopError> {
    let jwk = jwk.as_object().ok_or_else(|| jwk_invalid("the jwk is not a JSON object"))?;
    let alg = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => match jwk.get("crv").and_then(Value::as_str) {
            Some("P-384") => DpopAlg::Es384,
            _ => DpopAlg::Es256,
        },
        Some("OKP") => DpopAlg::EdDsa,
        Some("RSA") => DpopAlg::Rs256,
        _ => return Err(jwk_invalid("the jwk kty must be EC, OKP or RSA")),
    };
    Ok(PublicJwk::parse(jwk, alg)?.thumbprint)
}

/// `ath`: base64url(SHA-256(access token)).
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(crate::hash::sha256(access_token.as_bytes()))
}

impl VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key (`dpop_jkt` of a session it binds).
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// `iat`, floored to whole seconds.
    pub fn iat(&self) -> i64 {
        self.iat
    }

    /// The key under which the caller records the jti. Scoped by key thumbprint (the spec's "not seen
    /// before for this key"), and the jti hashed so the key has a fixed length and charset whatever
    /// the client sent.
    pub fn replay_key(&self) -> String {
        format!("dpop:{}:{}", self.jkt, hex::encode(crate::hash::sha256(self.jti.as_bytes())))
    }

    /// How long the replay entry must live: 2 × `max_skew_seconds`, the longest time any proof with
    /// this `iat` can still pass the freshness check.
    pub fn replay_ttl_seconds(&self) -> u64 {
        self.replay_ttl_seconds
    }
}

impl DpopAlg {
    pub const ALL: [DpopAlg; 5] =
        [DpopAlg::Es256, DpopAlg::Es384, DpopAlg::EdDsa, DpopAlg::Rs256, DpopAlg::Ps256];

    /// The JWS `alg` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DpopAlg::Es256 => "ES256",
            DpopAlg::Es384 => "ES384",
            DpopAlg::EdDsa => "EdDSA",
            DpopAlg::Rs256 => "RS256",
            DpopAlg::Ps256 => "PS256",
        }
    }

    /// The algorithm for a JWS `alg` name; exact, case-sensitive match (RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<DpopAlg> {
        DpopAlg::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    /// Whether the JWK's `kty` (and `crv`, where the algorithm fixes the curve) fit this algorithm.
    ///
    /// Only a key Steward supports can mismatch: a missing, non-string or unsupported `kty`, or a
    /// curve outside the ones accepted for its key type (Ed448 or X25519 under OKP, P-521 under EC),
    /// is an invalid key rather than the wrong algorithm, left to the JWK check (`dpop_jwk_invalid`).
    fn matches_jwk_type(self, jwk: &Map<String, Value>) -> bool {
        let crv = jwk.get("crv").and_then(Value::as_str);
        let (kty, supported_curves): (&str, &[&str]) = match jwk.get("kty").and_then(Value::as_str) {
            Some("EC") => ("EC", &["P-256", "P-384"]),
            Some("OKP") => ("OKP", &["Ed25519"]),
            Some("RSA") => ("RSA", &[]),
            _ => return true,
        };
        let curve_is = |want: &str| crv.is_none_or(|crv| !supported_curves.contains(&crv) || crv == want);
        match self {
            DpopAlg::Es256 => kty == "EC" && curve_is("P-256"),
            DpopAlg::Es384 => kty == "EC" && curve_is("P-384"),
            DpopAlg::EdDsa => kty == "OKP" && curve_is("Ed25519"),
            DpopAlg::Rs256 | DpopAlg::Ps256 => kty == "RSA",
        }
    }
}

impl fmt::Display for DpopAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DpopExpectations<'_> {
    /// The access token is a bearer secret: shown only as present or absent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopExpectations")
            .field("method", &self.method)
            .field("htu", &self.htu)
            .field("now_unix", &self.now_unix)
            .field("max_skew_seconds", &self.max_skew_seconds)
            .field("not_before_unix", &self.not_before_unix)
            .field("access_token", &self.access_token.map(|_| "[REDACTED]"))
            .field("expected_jkt", &self.expected_jkt)
            .finish()
    }
}

// ---- helpers ----

/// A validated public JWK: the aws-lc key that verifies the proof and its RFC 7638 thumbprint.
struct PublicJwk {
    verifier: ParsedPublicKey,
    thumbprint: String,
}

impl PublicJwk {
    /// Validates `jwk` as a public key usable with `alg` (whose consistency with `kty` was checked
    /// before) and parses it with aws-lc, which rejects EC points that are not on the curve.
    fn parse(jwk: &Map<String, Value>, alg: DpopAlg) -> Result<PublicJwk, DpopError> {
        if PRIVATE_JWK_MEMBERS.iter().any(|member| jwk.contains_key(*member)) {
            return Err(jwk_invalid("the jwk contains private key members; send the public key only"));
        }
        let kty = jwk.get("kty").and_then(Value::as_str);
        let crv = jwk.get("crv").and_then(Value::as_str);
        // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace. Every value
        // is a canonical base64url string or a fixed name, so none needs JSON escaping.
        let (verifier, canonical) = match (kty, crv, alg) {
            (Some("EC"), Some(crv @ ("P-256" | "P-384")), DpopAlg::Es256 | DpopAlg::Es384) => {
                let (len, verification) = if crv == "P-256" {
                    (32, &ECDSA_P256_SHA256_FIXED)
                } else {
                    (48, &ECDSA_P384_SHA384_FIXED)
                };
                let x = jwk_bytes(jwk, "x", Some(len))?;
                let y = jwk_bytes(jwk, "y", Some(len))?;
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let verifier = ParsedPublicKey::new(verification, &point)
                    .map_err(|_| jwk_invalid("the jwk EC point is not on the curve"))?;
                let canonical = format!(
                    r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                    URL_SAFE_NO_PAD.encode(&x),
                    URL_SAFE_NO_PAD.encode(&y)
                );
                (verifier, canonical)
            }
            (Some("OKP"), Some("Ed25519"), DpopAlg::EdDsa) => {
                let x = jwk_bytes(jwk, "x", Some(32))?;
                let verifier = ParsedPublicKey::new(&ED25519, &x)
                    .map_err(|_| jwk_invalid("the jwk Ed25519 public key is invalid"))?;
                (verifier, format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(&x)))
            }
            (Some("RSA"), _, DpopAlg::Rs256 | DpopAlg::Ps256) => {
                let n = jwk_bytes(jwk, "n", None)?;
                let e = jwk_bytes(jwk, "e", None)?;
                let bits = match n.first() {
                    // RFC 7518 §6.3.1.1: the minimal encoding, so the thumbprint of a key is unique.
                    Some(&first) if first != 0 => n.len() * 8 - first.leading_zeros() as usize,
                    _ => return Err(jwk_invalid("the jwk RSA modulus is empty or has leading zero bytes")),
                };
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits)
                    || n.last().is_some_and(|last| last & 1 == 0)
                {
                    return Err(jwk_invalid("the jwk RSA modulus must be odd and 2048 to 4096 bits"));
                }
                if e != RSA_EXPONENT_65537 {
                    return Err(jwk_invalid("the jwk RSA public exponent must be 65537"));
                }
                let params: &'static RsaParameters = if alg == DpopAlg::Ps256 {
                    &RSA_PSS_2048_8192_SHA256
                } else {
                    &RSA_PKCS1_2048_8192_SHA256
                };
                let verifier = RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }
                    .to_parsed_public_key(params)
                    .map_err(|_| jwk_invalid("the jwk RSA key is invalid"))?;
                let canonical = format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    URL_SAFE_NO_PAD.encode(&e),
                    URL_SAFE_NO_PAD.encode(&n)
                );
                (verifier, canonical)
            }
            _ => {
                return Err(jwk_invalid("the jwk must be an EC P-256/P-384, OKP Ed25519 or RSA public key"));
            }
        };
        let thumbprint = URL_SAFE_NO_PAD.encode(crate::hash::sha256(canonical.as_bytes()));
        Ok(PublicJwk { verifier, thumbprint })
    }
}

/// A base64url JWK member, decoded, optionally of an exact length.
fn jwk_bytes(jwk: &Map<String, Value>, member: &str, len: Option<usize>) -> Result<Vec<u8>, DpopError> {
    let bytes = jwk
        .get(member)
        .and_then(Value::as_str)
        .and_then(|value| URL_SAFE_NO_PAD.decode(value).ok())
        .ok_or_else(|| jwk_invalid(format!("the jwk member {member} must be a base64url string")))?;
    match len {
        Some(len) if bytes.len() != len => {
            Err(jwk_invalid(format!("the jwk member {member} must decode to {len} bytes")))
        }
        _ => Ok(bytes),
    }
}

/// A base64url JWS part that must hold a JSON object with no duplicate member names (a duplicate
/// would let two parsers disagree on, say, which `jwk` was signed).
fn decode_json_object(part: &str, what: &str) -> Result<Map<String, Value>, DpopError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(format!("the DPoP proof {what} is not base64url")))?;
    serde_json::from_slice::<NoDuplicateKeys>(&bytes)
        .map_err(|_| malformed(format!("the DPoP proof {what} is not JSON without duplicate members")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(malformed(format!("the DPoP proof {what} is not a JSON object"))),
    }
}

/// Deserializes any JSON and fails on an object with a repeated member name, at any depth.
/// serde_json's recursion limit still applies, so deep nesting cannot exhaust the stack.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_str<E>(self, _: &str) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_unit<E>(self) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicateKeys, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicateKeys, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("duplicate member name"));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(NoDuplicateKeys)
    }
}

/// A JSON number as whole seconds (RFC 7519 NumericDate may be fractional). Out-of-range floats
/// saturate, and the freshness check then rejects them.
fn numeric_date(value: &Value) -> Option<i64> {
    let number = value.as_number()?;
    #[allow(clippy::cast_possible_truncation)] // Saturating on purpose; see above.
    number.as_i64().or_else(|| number.as_f64().map(|seconds| seconds.floor() as i64))
}

/// RFC 3986 normalization of an `htu` (RFC 9449 §4.3): syntax-based (case of scheme and host,
/// percent-encoding case and unreserved decoding, dot segments) and scheme-based (default port, empty
/// path is `/`), with query and fragment dropped. `None` when the value is not an absolute URI with
/// an authority, or carries userinfo (never part of a request URL the server sees).
fn normalize_htu(raw: &str) -> Option<String> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let (scheme, rest) = raw.get(..end)?.split_once("://")?;
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (literal, after) = bracketed.split_once(']').filter(|(literal, _)| !literal.contains('['))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{literal}]"), port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || (!host.starts_with('[') && host.contains([']', '['])) {
        return None;
    }
    // Lowercased after decoding, so an encoded uppercase letter ends up lowercase too.
    let host = normalize_percent_encoding(&host)?.to_ascii_lowercase();
    // An empty port is the same as none (RFC 3986 §6.2.3); otherwise digits, compared as a number.
    let port = match port {
        None | Some("") => None,
        Some(port) if port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(port.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    let port = match (scheme.as_str(), port) {
        ("https", Some(443)) | ("http", Some(80)) | (_, None) => String::new(),
        (_, Some(port)) => format!(":{port}"),
    };
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        remove_dot_segments(&normalize_percent_encoding(path)?)
    };
    Some(format!("{scheme}://{host}{port}{path}"))
}

/// Uppercases percent-encoding hex digits and decodes the encodings of unreserved characters
/// (RFC 3986 §6.2.2.1–2). `None` for a `%` not followed by two hex digits.
fn normalize_percent_encoding(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            let value =
                u8::from_str_radix(hex, 16).ok().filter(|_| hex.bytes().all(|h| h.is_ascii_hexdigit()))?;
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(char::from(b));
            i += 1;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4 for an absolute path (starts with `/`): `.` segments dropped, `..` removes the
/// previous one, never climbing above the root.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                // A trailing `.` or `..` leaves a directory, i.e. a trailing slash.
                if i == last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

fn err(code: ErrorCode, message: impl Into<String>) -> DpopError {
    DpopError { code, message: message.into() }
}

fn malformed(message: impl Into<String>) -> DpopError {
    err(ErrorCode::DpopMalformed, message)
}

fn jwk_invalid(message: impl Into<String>) -> DpopError {
    err(ErrorCode::DpopJwkInvalid, message)
}

fn missing_claims(claim: &str) -> DpopError {
    err(ErrorCode::DpopMissingClaims, format!("the DPoP proof is missing the claim {claim}"))
}

#[cfg(test)]
mod tests;
