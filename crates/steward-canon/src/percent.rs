//! RFC 3986 percent-encoding normalization (§6.2.2.2) and dot-segment removal (§5.2.4).

/// Validates and normalizes percent-encodings: `%` must be followed by two hex digits; encoded unreserved
/// characters are decoded; other encodings get uppercase hex; encoded control characters (`%00`–`%1F`,
/// `%7F`) are refused. The input is ASCII; the error is a message.
pub(crate) fn normalize_percent(input: &str) -> Result<String, String> {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let (hi, lo) =
            match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(hi), Some(lo)) => (hi, lo),
                _ => {
                    let shown: String = input[i..].chars().take(3).collect();
                    return Err(format!("{shown:?} is not '%' followed by two hex digits"));
                }
            };
        let value = hi << 4 | lo;
        if value < 0x20 || value == 0x7f {
            return Err(format!("%{value:02X} encodes a control character"));
        }
        if is_unreserved(value) {
            out.push(char::from(value));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(hi)]));
            out.push(char::from(HEX_UPPER[usize::from(lo)]));
        }
        i += 3;
    }
    Ok(out)
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// RFC 3986 `unreserved`.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §5.2.4 `remove_dot_segments`, on a path whose encoded dots are already decoded.
pub(crate) fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." { "/" } else { &input[3..] };
            pop_last_segment(&mut output);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

/// True when the path holds an encoded `/` or `\` (`%2F`, `%5C`, either hex case).
pub(crate) fn has_encoded_separator(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes
        .windows(3)
        .any(|w| w[0] == b'%' && matches!((w[1], w[2].to_ascii_uppercase()), (b'2', b'F') | (b'5', b'C')))
}

/// The first segment that, read with `%2F` and `%5C` as separators (as an upstream that decodes them
/// would), holds a `.` or `..` segment: `..%2F`, `a%2F..`, `.%5C`. Encoded dots must already be
/// decoded (as [`normalize_percent`] does).
pub(crate) fn encoded_dot_segment(path: &str) -> Option<&str> {
    path.split('/').filter(|segment| has_encoded_separator(segment)).find(|segment| {
        let upper = segment.to_ascii_uppercase().replace("%5C", "%2F");
        upper.split("%2F").any(|piece| piece == "." || piece == "..")
    })
}

fn pop_last_segment(output: &mut String) {
    match output.rfind('/') {
        Some(i) => output.truncate(i),
        None => output.clear(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent() {
        assert_eq!(normalize_percent("/%7e%41%2f%c3%a9").unwrap(), "/~A%2F%C3%A9");
        assert_eq!(normalize_percent("/%2e%2E").unwrap(), "/..");
        assert!(normalize_percent("/%").is_err());
        assert!(normalize_percent("/%4").is_err());
        assert!(normalize_percent("/%zz").is_err());
        assert!(normalize_percent("/%00").is_err());
        assert!(normalize_percent("/%1f").is_err());
        assert!(normalize_percent("/%7F").is_err());
        assert_eq!(normalize_percent("/%20").unwrap(), "/%20");
    }

    #[test]
    fn encoded_separators() {
        for yes in ["/a%2Fb", "/a%2fb", "/a%5Cb", "/%5c", "/x/%2F"] {
            assert!(has_encoded_separator(yes), "{yes}");
        }
        for no in ["/a/b", "/a%2Eb", "/a%25Fb", "/%2", "/%5", "/a%F2"] {
            assert!(!has_encoded_separator(no), "{no}");
        }
        assert_eq!(encoded_dot_segment("/v1/..%2Fx"), Some("..%2Fx"));
        assert_eq!(encoded_dot_segment("/v1/a%2f.."), Some("a%2f.."));
        assert_eq!(encoded_dot_segment("/v1/a%5C.%5Cb"), Some("a%5C.%5Cb"));
        assert_eq!(encoded_dot_segment("/v1/%2F"), None);
        assert_eq!(encoded_dot_segment("/v1/a%2F...%2Fb"), None);
        assert_eq!(encoded_dot_segment("/v1/..a%2Fb.."), None);
        assert_eq!(encoded_dot_segment("/../x"), None);
    }

    #[test]
    fn dot_segments_rfc_examples() {
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
        assert_eq!(remove_dot_segments("/.."), "/");
        assert_eq!(remove_dot_segments("/../../x"), "/x");
        assert_eq!(remove_dot_segments("/a/."), "/a/");
        assert_eq!(remove_dot_segments("/a/.."), "/");
        assert_eq!(remove_dot_segments("/a/..b/.c"), "/a/..b/.c");
        assert_eq!(remove_dot_segments("//a/../b"), "//b");
        assert_eq!(remove_dot_segments(""), "");
    }
}
