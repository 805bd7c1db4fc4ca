//! Scrubbing never panics, and a secret planted in the answer in any per-byte mix of one escape
//! family (percent: itself, `%XX`, `%xx`, `+` for a space; JSON: itself, `\"`, `\\`, `\/`,
//! `\u00XX` in either case) is always found and removed, whatever text surrounds it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward_egress::Scrubber;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn escape(out: &mut Vec<u8>, prefix: &[u8], byte: u8, digits: &[u8; 16]) {
    out.extend_from_slice(prefix);
    out.push(digits[usize::from(byte >> 4)]);
    out.push(digits[usize::from(byte & 0xf)]);
}

/// Appends one byte of the secret, spelled as `choice` picks within the family.
fn spell(out: &mut Vec<u8>, byte: u8, json: bool, choice: u8) {
    match (json, choice % 4) {
        (false, 1) => escape(out, b"%", byte, HEX_UPPER),
        (false, 2) => escape(out, b"%", byte, HEX_LOWER),
        (false, 3) if byte == b' ' => out.push(b'+'),
        (true, 1) => escape(out, b"\\u00", byte, HEX_UPPER),
        (true, 2) => escape(out, b"\\u00", byte, HEX_LOWER),
        (true, 3) if matches!(byte, b'"' | b'\\' | b'/') => out.extend_from_slice(&[b'\\', byte]),
        _ => out.push(byte),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let len = 8 + usize::from(first % 24);
    if rest.len() < len * 2 {
        return;
    }
    // Secrets are visible ASCII and space (`spec/pipeline.md`: anything else is refused when written).
    let secret: Vec<u8> = rest[..len].iter().map(|b| b' ' + b % 95).collect();
    let choices = &rest[len..2 * len];
    let text = &rest[2 * len..];
    let json = choices[0] & 0x80 != 0;
    let (before, after) = text.split_at(text.len() / 2);
    let mut answer = before.to_vec();
    for (&byte, &choice) in secret.iter().zip(choices) {
        spell(&mut answer, byte, json, choice);
    }
    answer.extend_from_slice(after);

    let Ok(scrubber) = Scrubber::new(&[&secret]) else { return };
    let Some(clean) = scrubber.scrub(&answer) else {
        panic!("a planted secret was not found (json family: {json})");
    };
    assert!(!contains(&clean, &secret), "the raw secret survived scrubbing");
    assert!(scrubber.scrub(&clean).is_none(), "scrubbing again still found something");
});
