//! Template compilation never panics on arbitrary JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = steward_canon::Template::from_json(&value);
    }
});
