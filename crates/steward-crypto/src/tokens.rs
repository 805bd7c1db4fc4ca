//! Bearer tokens (admin, session, enrollment), their SHA-256 hashes, and random bytes.
//!
//! Only hashes are stored; a presented token is hashed and compared in constant time, so the time a
//! comparison takes says nothing about how much of a stored hash was guessed.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// `N` bytes from the system CSPRNG (AWS-LC).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // AWS-LC's RNG aborts the process rather than fail; an error here means the platform cannot give
    // us randomness at all, and there is no safe way to continue issuing keys or tokens.
    aws_lc_rs::rand::fill(&mut out).expect("the system random number generator failed");
    out
}

/// A freshly generated bearer token. `Debug` is redacted; the value is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(Zeroizing<String>);

impl SecretToken {
    /// The token itself, to hand to its holder exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token, what the store keeps.
    pub fn hash(&self) -> [u8; 32] {
        hash_token(&self.0)
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken([REDACTED])")
    }
}

/// `<prefix><43 base64url characters of 32 random bytes>`, e.g. `stw_adm_…`, `stw_sess_…`, `stw_enr_…`.
pub fn generate_token(prefix: &str) -> SecretToken {
    let bytes = Zeroizing::new(random_bytes::<32>());
    // Exact capacity, so no reallocation leaves a copy of the token behind.
    let mut token = Zeroizing::new(String::with_capacity(prefix.len() + 43));
    token.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(bytes.as_slice(), &mut token);
    SecretToken(token)
}

/// SHA-256 of a presented token.
pub fn hash_token(token: &str) -> [u8; 32] {
    crate::hash::sha256(token.as_bytes())
}

/// Constant-time equality of two token hashes.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_prefix_and_43_base64url_characters() {
        for prefix in ["stw_adm_", "stw_sess_", "stw_enr_"] {
            let token = generate_token(prefix);
            let rest = token.expose().strip_prefix(prefix).unwrap();
            assert_eq!(rest.len(), 43);
            assert_eq!(URL_SAFE_NO_PAD.decode(rest).unwrap().len(), 32);
        }
        assert_ne!(generate_token("x_").expose(), generate_token("x_").expose());
    }

    #[test]
    fn debug_is_redacted() {
        let token = generate_token("stw_adm_");
        let debug = format!("{token:?}");
        assert_eq!(debug, "SecretToken([REDACTED])");
        assert!(!debug.contains(token.expose()));
    }

    #[test]
    fn hashing_and_comparison() {
        let token = generate_token("stw_sess_");
        let stored = token.hash();
        assert_eq!(stored, hash_token(token.expose()));
        assert!(hashes_equal(&stored, &hash_token(token.expose())));
        assert!(!hashes_equal(&stored, &hash_token("stw_sess_other")));
        // Known answer: SHA-256("abc").
        assert_eq!(
            hex::encode(hash_token("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn random_bytes_differ() {
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
    }
}
