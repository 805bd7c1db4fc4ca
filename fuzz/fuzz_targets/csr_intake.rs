//! CSR intake never panics, on arbitrary bytes as PEM text or as DER.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = steward_crypto::verify_csr_pem(text);
    }
    let _ = steward_crypto::csr::verify_csr_der(data);
});
