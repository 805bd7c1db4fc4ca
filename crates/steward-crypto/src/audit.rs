//! The audit key: the HMAC key behind the audit hash chains and the `hmac:<hex>` redaction of
//! descriptor values. It is random and lives only as an envelope in the store, so someone who can
//! write the database still cannot forge a chain.

use zeroize::Zeroizing;

use crate::tokens::random_bytes;

/// A fresh 256-bit audit key (to be sealed in an envelope by the caller).
pub fn generate_audit_key() -> Zeroizing<[u8; 32]> {
    Zeroizing::new(random_bytes::<32>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hmac_sha256;

    #[test]
    fn audit_keys_are_random() {
        assert_ne!(*generate_audit_key(), *generate_audit_key());
    }

    #[test]
    fn hmac_known_answer() {
        // Computed independently (Python's hmac module): HMAC-SHA256(key = 32 x 0x0b, "Hi There").
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 32], b"Hi There")),
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }
}
