//! Workload IP allowlists: entries are IPv4/IPv6 addresses or CIDRs. Parsed strictly when an admin
//! writes them (400 `ip_allowlist_invalid`, naming the entry) and matched against the TCP peer on
//! every data-plane request. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is treated as the IPv4
//! address it carries, on both sides, so a dual-stack listener cannot be used to slip past a v4 rule.

use std::net::IpAddr;

use ipnet::IpNet;
use steward_types::ErrorCode;

use crate::http::ApiError;

/// More entries than any sane allowlist needs; bounds the work per request.
pub const MAX_ENTRIES: usize = 256;

/// One allowlist entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Address(IpAddr),
    Network(IpNet),
}

fn parse_entry(text: &str) -> Option<Entry> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(Entry::Address(canonical(address)));
    }
    text.parse::<IpNet>().ok().map(Entry::Network)
}

/// `::ffff:a.b.c.d` → `a.b.c.d`; every other address unchanged.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Validates an allowlist as written by an admin and returns it with each entry trimmed.
pub fn validate(entries: &[String]) -> Result<Vec<String>, ApiError> {
    if entries.len() > MAX_ENTRIES {
        return Err(ApiError::new(
            ErrorCode::IpAllowlistInvalid,
            format!("ip_allowlist has {} entries; at most {MAX_ENTRIES} are allowed", entries.len()),
        ));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let trimmed = entry.trim();
            match parse_entry(trimmed) {
                Some(_) => Ok(trimmed.to_owned()),
                None => Err(ApiError::new(
                    ErrorCode::IpAllowlistInvalid,
                    format!("ip_allowlist[{i}]: {entry:?} is not an IPv4/IPv6 address or CIDR"),
                )),
            }
        })
        .collect()
}

/// Whether `peer` may connect: an empty list allows everyone. An entry that no longer parses (it was
/// validated on write, so only a tampered row) matches nothing: fail closed.
pub fn allows(entries: &[String], peer: IpAddr) -> bool {
    if entries.is_empty() {
        return true;
    }
    let peer = canonical(peer);
    entries.iter().filter_map(|e| parse_entry(e)).any(|entry| match entry {
        Entry::Address(address) => address == peer,
        Entry::Network(network) => network.contains(&peer),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn validation_names_the_bad_entry() {
        let ok = validate(&[" 10.0.0.0/8".into(), "::1".into(), "2001:db8::/32".into()]).unwrap();
        assert_eq!(ok, ["10.0.0.0/8", "::1", "2001:db8::/32"]);
        let error = validate(&["10.0.0.1".into(), "10.0.0.0/33".into()]).unwrap_err();
        assert_eq!(error.code, ErrorCode::IpAllowlistInvalid);
        assert!(error.message.contains("ip_allowlist[1]") && error.message.contains("10.0.0.0/33"));
        for bad in ["", "example.com", "10.0.0", "1.2.3.4/", "::g"] {
            assert!(validate(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(validate(&vec!["::1".to_owned(); MAX_ENTRIES + 1]).is_err());
    }

    #[test]
    fn matching_treats_mapped_v6_as_v4() {
        let list = vec!["10.0.0.0/8".to_owned(), "192.0.2.7".to_owned(), "2001:db8::/32".to_owned()];
        assert!(allows(&list, ip("10.1.2.3")));
        assert!(allows(&list, ip("::ffff:10.1.2.3")));
        assert!(allows(&list, ip("::ffff:192.0.2.7")));
        assert!(allows(&list, ip("2001:db8::5")));
        assert!(!allows(&list, ip("11.0.0.1")));
        assert!(!allows(&list, ip("::1")));
        assert!(allows(&["::ffff:127.0.0.1".to_owned()], ip("127.0.0.1")));
        assert!(allows(&[], ip("203.0.113.9")));
        assert!(!allows(&["garbage".to_owned()], ip("127.0.0.1")));
    }
}
