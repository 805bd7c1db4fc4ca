//! Host normalization shared by template validation and canonicalization: lowercase, one trailing dot
//! removed, IDNA (UTS 46) to ASCII; IPv4 only as four-part dotted decimal; IPv6 literals in brackets,
//! serialized in RFC 5952 form. Errors are messages; callers attach their own code.

use std::net::Ipv6Addr;

use idna::AsciiDenyList;

const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// The normalized form of a host, or why it is not one. IPv6 literals come back in brackets, in
/// RFC 5952 form. Templates, requests and policy rules all normalize hosts with this one function, so
/// two spellings of one address always meet.
pub fn normalize_host(input: &str) -> Result<String, String> {
    if input.is_empty() {
        return Err("the host is empty".into());
    }
    if input.contains('%') {
        return Err(format!("host {input:?} contains '%' (percent-encoding and zone ids are not allowed)"));
    }
    if let Some(rest) = input.strip_prefix('[') {
        let inner = rest.strip_suffix(']').ok_or_else(|| format!("host {input:?} has an unclosed '['"))?;
        return parse_ipv6(inner).map(|addr| format!("[{addr}]"));
    }
    if input.contains(['[', ']']) {
        return Err(format!("host {input:?} has brackets but is not an IPv6 literal"));
    }
    let lower = input.to_ascii_lowercase();
    let undotted = lower.strip_suffix('.').unwrap_or(&lower);
    if undotted.is_empty() {
        return Err(format!("host {input:?} is empty once its trailing dot is removed"));
    }
    let ascii = idna::domain_to_ascii_cow(undotted.as_bytes(), AsciiDenyList::URL)
        .map_err(|_| format!("host {input:?} is not a valid domain name under IDNA (UTS 46)"))?;
    check_labels(input, &ascii)?;
    if ends_in_number(&ascii) {
        return parse_ipv4(&ascii).ok_or_else(|| {
            format!("host {input:?} is an IPv4 address not in four-part dotted decimal form")
        });
    }
    Ok(ascii.into_owned())
}

/// LDH labels (plus `_`), none empty, within DNS lengths.
fn check_labels(input: &str, ascii: &str) -> Result<(), String> {
    if ascii.len() > MAX_HOST_LEN {
        return Err(format!("host {input:?} is longer than {MAX_HOST_LEN} characters"));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(format!("host {input:?} has an empty label"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!("host {input:?} has a label longer than {MAX_LABEL_LEN} characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            return Err(format!("host {input:?} has characters other than letters, digits, '-' and '_'"));
        }
    }
    Ok(())
}

/// The WHATWG "ends in a number" test: such hosts are IPv4 addresses or nothing.
fn ends_in_number(ascii: &str) -> bool {
    let last = ascii.rsplit('.').next().unwrap_or_default();
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    last.strip_prefix("0x").is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Four decimal octets, no leading zeros, each at most 255.
fn parse_ipv4(ascii: &str) -> Option<String> {
    let parts: Vec<&str> = ascii.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    for part in &parts {
        let canonical = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && !(part.len() > 1 && part.starts_with('0'));
        if !canonical || part.parse::<u16>().ok()? > 255 {
            return None;
        }
    }
    Some(ascii.to_owned())
}

/// An RFC 3986 `IPv6address` (no IPvFuture, no zone id).
fn parse_ipv6(inner: &str) -> Result<Ipv6Addr, String> {
    if !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
        return Err(format!("[{inner}] is not an IPv6 literal (IPvFuture and zone ids are not supported)"));
    }
    inner.parse::<Ipv6Addr>().map_err(|_| format!("[{inner}] is not a valid IPv6 address"))
}

#[cfg(test)]
mod tests;
