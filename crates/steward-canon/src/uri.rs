//! Strict RFC 3986 parsing of an absolute URI with an authority, written by hand so no WHATWG leniency
//! (backslashes, tabs, missing slashes, guessed schemes) slips in. This step only splits and checks
//! characters; the host, port, path and query are normalized by the canonicalizer's later steps.

use steward_types::ErrorCode;

use crate::error::CanonError;

/// The raw parts of a URI that passed step 1 of canonicalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawUri<'a> {
    /// Lowercased.
    pub(crate) scheme: String,
    /// As written (may contain non-ASCII, brackets for IPv6).
    pub(crate) host: &'a str,
    /// `None` when absent or empty.
    pub(crate) port: Option<&'a str>,
    /// Empty or starting with `/`.
    pub(crate) path: &'a str,
    /// Without the `?`.
    pub(crate) query: Option<&'a str>,
}

const FORBIDDEN_RAW: &[char] = &[' ', '\\', '"', '<', '>', '{', '}', '|', '^', '`'];

fn invalid(message: String) -> CanonError {
    CanonError::new(ErrorCode::RequestUrlInvalid, message)
}

/// Step 1 of canonicalization.
pub(crate) fn parse(url: &str) -> Result<RawUri<'_>, CanonError> {
    if let Some((at, c)) = url.char_indices().find(|&(_, c)| c.is_control() || FORBIDDEN_RAW.contains(&c)) {
        return Err(invalid(format!("the URL contains {:?} at byte {at}, which must be percent-encoded", c)));
    }
    if url.contains('#') {
        return Err(CanonError::new(ErrorCode::RequestUrlFragmentForbidden, "the URL has a fragment ('#')"));
    }
    let (scheme, rest) = url
        .split_once(':')
        .filter(|(scheme, _)| is_scheme(scheme))
        .ok_or_else(|| invalid("the URL is not an absolute URI (no valid scheme)".into()))?;
    let after_slashes = rest
        .strip_prefix("//")
        .ok_or_else(|| invalid("the URL has no authority (expected \"//\" after the scheme)".into()))?;
    let authority_end = after_slashes.find(['/', '?']).unwrap_or(after_slashes.len());
    let (authority, path_and_query) = after_slashes.split_at(authority_end);
    if authority.contains('@') {
        return Err(CanonError::new(
            ErrorCode::RequestUrlUserinfoForbidden,
            "the URL carries userinfo ('@')",
        ));
    }
    if !path_and_query.is_ascii() {
        return Err(invalid("the URL has non-ASCII characters outside the host".into()));
    }
    if path_and_query.contains(['[', ']']) {
        return Err(invalid("the URL has '[' or ']' outside an IPv6 host literal".into()));
    }
    let (host, port) = split_host_port(authority)?;
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    Ok(RawUri {
        scheme: scheme.to_ascii_lowercase(),
        host,
        port: port.filter(|p| !p.is_empty()),
        path,
        query,
    })
}

/// RFC 3986 `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), CanonError> {
    let (host, after) = if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or_else(|| invalid("the URL's IPv6 host literal has no closing ']'".into()))?;
        authority.split_at(close + 1)
    } else {
        let end = authority.find(':').unwrap_or(authority.len());
        authority.split_at(end)
    };
    let port = match after.strip_prefix(':') {
        Some(port) => Some(port),
        None if after.is_empty() => None,
        None => return Err(invalid(format!("the URL's authority has {after:?} after the host"))),
    };
    if !port.unwrap_or_default().is_ascii() || port.is_some_and(|p| p.contains(':')) {
        return Err(invalid("the URL's port is not a decimal number".into()));
    }
    Ok((host, port))
}

/// Step 2's port rule: digits only, no leading zeros, at most 65535. `None` means the scheme default.
pub(crate) fn parse_port(port: Option<&str>) -> Result<Option<u16>, CanonError> {
    let Some(port) = port else { return Ok(None) };
    let digits = port.bytes().all(|b| b.is_ascii_digit());
    if !digits || port.len() > 5 || (port.len() > 1 && port.starts_with('0')) {
        return Err(invalid(format!("port {port:?} is not a decimal number without leading zeros")));
    }
    port.parse::<u16>().map(Some).map_err(|_| invalid(format!("port {port} is larger than 65535")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(url: &str) -> ErrorCode {
        parse(url).map(|_| ()).err().map(|e| e.code()).unwrap_or(ErrorCode::InternalError)
    }

    #[test]
    fn splits() {
        let uri = parse("HTTPS://Host.example:8443/a/b?x=1&y").unwrap();
        assert_eq!(uri.scheme, "https");
        assert_eq!(uri.host, "Host.example");
        assert_eq!(uri.port, Some("8443"));
        assert_eq!(uri.path, "/a/b");
        assert_eq!(uri.query, Some("x=1&y"));
        let uri = parse("https://[::1]:/?").unwrap();
        assert_eq!((uri.host, uri.port, uri.path, uri.query), ("[::1]", None, "/", Some("")));
        let uri = parse("https://bücher.example").unwrap();
        assert_eq!((uri.host, uri.path, uri.query), ("bücher.example", "", None));
    }

    #[test]
    fn rejects() {
        for url in [
            "https://a.example/ b",
            "https://a.example/\tb",
            "https:\\\\a.example/",
            "https://a.example/\"",
            "https://a.example/<",
            "https://a.example/{}",
            "https://a.example/|",
            "https://a.example/^",
            "https://a.example/`",
            "https://a.example/\u{7f}",
            "https://a.example/\u{85}",
            "https://a.example/é",
            "https://a.example/?q=é",
            "https://a.example/[x]",
            "https:/a.example/",
            "a.example/x",
            "1https://a.example/",
            "//a.example/",
            "https://[::1/",
            "https://[::1]x/",
            "https://a.example:1:2/",
        ] {
            assert_eq!(code(url), ErrorCode::RequestUrlInvalid, "{url}");
        }
        assert_eq!(code("https://u:p@a.example/"), ErrorCode::RequestUrlUserinfoForbidden);
        assert_eq!(code("https://@a.example/"), ErrorCode::RequestUrlUserinfoForbidden);
        assert_eq!(code("https://a.example/#"), ErrorCode::RequestUrlFragmentForbidden);
        assert_eq!(code("https://a.example/#x"), ErrorCode::RequestUrlFragmentForbidden);
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port(None).unwrap(), None);
        assert_eq!(parse_port(Some("443")).unwrap(), Some(443));
        assert_eq!(parse_port(Some("65535")).unwrap(), Some(65535));
        for bad in ["0443", "65536", "99999999999", "+1", "1a", "00"] {
            assert!(parse_port(Some(bad)).is_err(), "{bad}");
        }
    }
}
