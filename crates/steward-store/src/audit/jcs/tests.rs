use serde_json::{Map, Number, Value, json};

use super::*;

/// A small deterministic generator (xorshift64*), so failures reproduce without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Short strings from characters that sort or escape differently: quote and backslash, control
    /// characters, the bytes around the quote (space, `!`, `#`), DEL, U+2028, non-ASCII in and beyond
    /// the BMP (where UTF-8 and UTF-16 orders disagree), and plain letters.
    fn string(&mut self) -> String {
        const POOL: &[char] = &[
            'a', 'b', 'z', 'A', '_', '0', ' ', '!', '"', '#', '\\', '/', '\n', '\t', '\u{0}', '\u{1f}',
            '\u{7f}', 'é', '\u{2028}', '\u{e000}', '\u{ffff}', '😀', '𝄞',
        ];
        (0..self.below(6)).map(|_| POOL[self.below(POOL.len() as u64) as usize]).collect()
    }

    fn number(&mut self) -> Number {
        const FLOATS: &[f64] = &[
            0.0,
            -0.0,
            0.1,
            1.0,
            -1.5,
            1e21,
            1e20,
            1e-7,
            1e-6,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            123.456,
        ];
        match self.below(4) {
            0 => Number::from(self.next()),
            1 => Number::from(self.next() as i64),
            2 => Number::from_f64(FLOATS[self.below(FLOATS.len() as u64) as usize]).unwrap(),
            _ => Number::from_f64(f64::from_bits(self.next())).unwrap_or_else(|| Number::from(7)),
        }
    }

    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth == 0 { 4 } else { 6 }) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 0),
            2 => Value::Number(self.number()),
            3 => Value::String(self.string()),
            4 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut map = Map::new();
                for _ in 0..self.below(6) {
                    map.insert(self.string(), self.value(depth - 1));
                }
                Value::Object(map)
            }
        }
    }
}

fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, value).unwrap();
    out
}

#[test]
fn matches_serde_jcs_on_generated_values() {
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    for i in 0..5000 {
        let value = rng.value(4);
        assert_eq!(
            String::from_utf8(canonical(&value)).unwrap(),
            serde_jcs::to_string(&value).unwrap(),
            "value {i}: {value}"
        );
    }
}

#[test]
fn matches_serde_jcs_on_chosen_values() {
    let values = [
        json!({}),
        json!([]),
        json!(""),
        // A key that is a prefix of another, and keys around the quote byte.
        json!({"a": 1, "ab": 2, "a!": 3, "a ": 4, "a#": 5, "a\"": 6, "a\n": 7}),
        json!({"😀": 1, "\u{e000}": 2, "\u{ffff}": 3, "é": 4}),
        json!([0.0, -0.0, 1e21, 1e-7, 5e-324, u64::MAX, i64::MIN, 9_007_199_254_740_993_u64]),
        json!({"nested": {"z": [{"b": null, "a": true}], "a": "x"}}),
    ];
    for value in values {
        assert_eq!(canonical(&value), serde_jcs::to_vec(&value).unwrap(), "{value}");
    }
}
