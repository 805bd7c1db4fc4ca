//! DPoP header and JWK parsing never panic on arbitrary header bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward_crypto::{DpopExpectations, verify_dpop_proof};

fuzz_target!(|data: &[u8]| {
    let expect = DpopExpectations {
        method: "POST",
        htu: "https://localhost:8081/v1/execute",
        now_unix: 1_800_000_000,
        max_skew_seconds: 300,
        not_before_unix: None,
        access_token: Some("stw_sess_token"),
        expected_jkt: None,
    };
    let _ = verify_dpop_proof(&[data], &expect);
});
