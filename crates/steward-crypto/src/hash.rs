//! SHA-256 and HMAC-SHA256 for the rest of the workspace: token and body hashes, the canonical
//! descriptor digest, the keyset `etag`, the audit chain and descriptor redaction, the scrubber cache
//! key and webhook signatures. Callers never touch aws-lc-rs' digest or HMAC directly (`clippy.toml`
//! bans it outside this crate), so the algorithm and the way tags are compared live in one place.

// This module is where SHA-256 and HMAC are computed; `clippy.toml` bans the aws-lc-rs digest and
// HMAC entry points everywhere else.
#![allow(clippy::disallowed_methods)]

use std::fmt;

use aws_lc_rs::{digest, hmac};
use subtle::ConstantTimeEq;

/// Length of a SHA-256 digest and of an HMAC-SHA256 tag.
pub const SHA256_LEN: usize = 32;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; SHA256_LEN] {
    to_array(digest::digest(&digest::SHA256, data).as_ref())
}

/// HMAC-SHA256 of `data` under `key` (any length). For a key used many times, build an [`HmacKey`]
/// once instead: it keeps the precomputed inner and outer pads.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; SHA256_LEN] {
    HmacKey::new(key).sign(data)
}

/// An HMAC-SHA256 key with its pads precomputed, for keys used on every request (the audit key, the
/// scrubber cache key). Cloning is cheap. `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct HmacKey(hmac::Key);

impl HmacKey {
    pub fn new(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// HMAC-SHA256 of `data`.
    pub fn sign(&self, data: &[u8]) -> [u8; SHA256_LEN] {
        to_array(hmac::sign(&self.0, data).as_ref())
    }

    /// An incremental HMAC: feed the message in pieces with [`HmacContext::update`].
    pub fn context(&self) -> HmacContext {
        HmacContext(hmac::Context::with_key(&self.0))
    }

    /// Whether `tag` is the HMAC of `data`, compared in constant time.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        constant_time_eq(&self.sign(data), tag)
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey([REDACTED])")
    }
}

/// An HMAC-SHA256 computation in progress (see [`HmacKey::context`]).
pub struct HmacContext(hmac::Context);

impl HmacContext {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The tag of everything fed in.
    pub fn finish(self) -> [u8; SHA256_LEN] {
        to_array(self.0.sign().as_ref())
    }
}

impl fmt::Debug for HmacContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacContext(..)")
    }
}

/// Constant-time equality of two byte strings (the lengths are not secret: unequal lengths are
/// unequal at once).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn to_array(bytes: &[u8]) -> [u8; SHA256_LEN] {
    let mut out = [0u8; SHA256_LEN];
    // SHA-256 digests and HMAC-SHA256 tags are always 32 bytes.
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests;
