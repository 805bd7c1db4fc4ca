//! The email forms `allowed_email_domains` and `allowed_emails` accept: a bare `local@domain`, or
//! `Name <local@domain>` with an unquoted name free of `<>@,;:"\` or a quoted name free of `"`, `\`,
//! `<` and `>`. Anything else (address lists, comments, quoted local parts, a second address hidden
//! in the name, control characters) is not an address; only spaces around it are ignored, so the check fails closed.

/// The `local@domain` address of `value`, if it is one of the accepted forms.
pub(crate) fn address(value: &str) -> Option<&str> {
    let value = value.trim_matches(' ');
    let addr = match value.strip_suffix('>') {
        Some(rest) => {
            let (name, addr) = rest.rsplit_once('<')?;
            if !name_ok(name.trim_matches(' ')) {
                return None;
            }
            addr
        }
        None => value,
    };
    let (local, domain) = addr.split_once('@')?;
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.chars().all(|c| !c.is_whitespace() && !c.is_control() && !"@<>,;:\"\\()[]".contains(c))
    };
    (part_ok(local) && part_ok(domain) && !domain.starts_with('.') && !domain.ends_with('.')).then_some(addr)
}

/// The domain of an accepted address.
pub(crate) fn domain(value: &str) -> Option<&str> {
    address(value).and_then(|addr| addr.split_once('@')).map(|(_, domain)| domain)
}

fn name_ok(name: &str) -> bool {
    if name.chars().any(char::is_control) {
        return false;
    }
    match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(inner) => !inner.contains(['"', '\\', '<', '>']),
        None => !name.contains(['<', '>', '@', ',', ';', ':', '"', '\\']),
    }
}

#[cfg(test)]
mod tests {
    use super::{address, domain};

    #[test]
    fn bare_and_named_addresses_parse() {
        assert_eq!(address("a@example.com"), Some("a@example.com"));
        assert_eq!(address("  Ann Lee <ann@Example.com> "), Some("ann@Example.com"));
        assert_eq!(address("\"Lee, Ann\" <ann@example.com>"), Some("ann@example.com"));
        assert_eq!(address("<ann@example.com>"), Some("ann@example.com"));
        assert_eq!(domain("Ann <ann@Sub.Example.com>"), Some("Sub.Example.com"));
    }

    #[test]
    fn lists_and_tricks_are_not_addresses() {
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "a@b@example.com",
            "a@evil.com, b@example.com",
            "b@evil.com, Ann <a@example.com>",
            "Eve <e@evil.com> <a@example.com>",
            "e@evil.com <a@example.com>",
            "\"Eve\\\" <a@example.com>",
            "ann@example.com.",
            "ann@.example.com",
            "ann lee@example.com",
            "Ann <ann@example.com",
            "\"quoted\"@example.com",
            "ann@example.com\n",
            "Ann\u{0} <ann@example.com>",
        ] {
            assert_eq!(address(bad), None, "{bad:?}");
        }
    }
}
