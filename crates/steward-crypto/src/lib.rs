//! Steward's cryptography: the KEK keyring, envelope encryption of everything secret in the store,
//! token generation and hashing, CSR intake (parse, key check, proof of possession), the workload CA
//! (issuing server and client certificates), manifest signing keys (Ed25519 compact JWS), the audit
//! key, and DPoP proof verification (RFC 9449).
//!
//! What this crate owns: every use of key material. It is the only place that turns a keyring into
//! plaintext, and its types keep secrets in `Zeroizing` buffers whose `Debug` output is redacted.
//!
//! What it must not do: no network, no database, no reading of the process environment (the caller
//! passes `STEWARD_KEK_KEYRING`'s value in), no clock (the caller passes `now`), and no file I/O
//! except reading and writing the keyring file. aws-lc-rs is the only cryptographic backend; `ring`
//! must never enter the dependency tree. Unix only: keyring files are created with mode 0600.

pub mod audit;
pub mod ca;
pub mod csr;
pub mod dpop;
pub mod envelope;
pub mod hash;
pub mod keyring;
pub mod signing;
pub mod tokens;

pub use audit::generate_audit_key;
pub use ca::{CaError, IssuedClientCert, IssuedServerCert, WorkloadCa, thumbprint_s256};
pub use csr::{CsrError, CsrKeyType, VerifiedCsr, verify_csr_pem};
pub use dpop::{
    DpopAlg, DpopError, DpopExpectations, DpopKey, DpopKeyError, VerifiedProof, access_token_hash,
    jwk_thumbprint, verify_dpop_proof,
};
pub use envelope::{
    Envelope, EnvelopeContext, EnvelopeError, aad_bytes, open, rewrap, rewrap_recorded, seal,
};
pub use hash::{HmacContext, HmacKey, SHA256_LEN, constant_time_eq, hmac_sha256, sha256};
pub use keyring::{Keyring, KeyringError, KeyringSource, LoadedKeyring};
pub use signing::{JwsError, SigningKey, verify_compact_jws_ed25519};
pub use tokens::{SecretToken, generate_token, hash_token, hashes_equal, random_bytes};
