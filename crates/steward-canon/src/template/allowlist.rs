//! Header allowlists (`header_forward_allowlist`, `response_header_allowlist`): exact names and prefix
//! entries `name-*` (`spec/gateway.md` §1), validated once on publish and matched by [`HeaderAllowlist::allows`]
//! wherever headers are filtered, request side (canonicalization) and response side (egress).

use std::ops::Deref;

use serde::Serialize;
use steward_types::ErrorCode;

use crate::error::TemplateError;
use crate::http;

/// The suffix that makes an entry a prefix entry.
const PREFIX_MARK: &str = "-*";
/// Shortest stem before `-*`: `x-*` or `ab-*` would admit far more than anyone meant.
const MIN_STEM: usize = 3;

/// A validated header allowlist: lowercase entries, each an exact name or a prefix entry `stem-*`
/// that admits every name beginning with `stem-` (and at least one more character).
///
/// It dereferences to its entries as published (`["content-type", "x-stainless-*"]`), which is what
/// manifests show and what callers that only pass the list along need; matching goes through
/// [`allows`](Self::allows) or [`entries_allow`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct HeaderAllowlist(Vec<String>);

impl HeaderAllowlist {
    /// Validates a list as published. `field` names it in messages (`path_groups[0].header_forward_allowlist`).
    pub fn parse(field: &str, raw: &[String]) -> Result<Self, TemplateError> {
        let mut entries: Vec<String> = Vec::with_capacity(raw.len());
        for entry in raw {
            let lower = entry.to_ascii_lowercase();
            let bad = |why: String| {
                TemplateError::new(
                    ErrorCode::TemplateHeaderAllowlistInvalid,
                    format!("{field}: {entry:?} {why}"),
                )
            };
            match lower.strip_suffix(PREFIX_MARK) {
                Some(stem) => {
                    if !http::is_token(stem) || stem.contains('*') {
                        return Err(bad(
                            "is not a prefix entry: the part before -* must be an HTTP token".into()
                        ));
                    }
                    if stem.len() < MIN_STEM {
                        return Err(bad(format!("needs at least {MIN_STEM} characters before -*")));
                    }
                    if let Some(name) = http::NEVER_ALLOWLISTABLE.iter().find(|n| prefix_admits(stem, n)) {
                        return Err(bad(format!("would admit {name:?}, which can never be allowlisted")));
                    }
                }
                None => {
                    // `*` is a token character, but a name with one is far likelier a mistyped prefix
                    // entry than a real header.
                    if !http::is_token(&lower) || lower.contains('*') {
                        return Err(bad("is not an HTTP token name (or a prefix entry name-*)".into()));
                    }
                    if http::never_allowlistable(&lower) {
                        return Err(bad("can never be allowlisted".into()));
                    }
                }
            }
            if let Some(other) = entries.iter().find(|e| overlaps(e, &lower)) {
                let why = if *other == lower {
                    "is listed twice (names compare case-insensitively)".to_owned()
                } else {
                    format!("overlaps {other:?}: one of them admits the other")
                };
                return Err(TemplateError::new(
                    ErrorCode::TemplateAllowlistDuplicate,
                    format!("{field}: {entry:?} {why}"),
                ));
            }
            entries.push(lower);
        }
        Ok(HeaderAllowlist(entries))
    }

    /// Built from entries already validated (the default response allowlist, derived from a
    /// validated request allowlist).
    pub(crate) fn from_validated(entries: Vec<String>) -> Self {
        HeaderAllowlist(entries)
    }

    /// True when the list admits header `name` (compared case-insensitively).
    pub fn allows(&self, name: &str) -> bool {
        entries_allow(&self.0, name)
    }

    /// The entries as published, lowercase.
    pub fn entries(&self) -> &[String] {
        &self.0
    }
}

impl Deref for HeaderAllowlist {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

/// True when the allowlist `entries` (of a [`HeaderAllowlist`], exact names and `stem-*` prefix
/// entries) admits header `name`, compared case-insensitively. For callers that hold the entries as a
/// slice.
pub fn entries_allow(entries: &[String], name: &str) -> bool {
    entries.iter().any(|entry| match entry.strip_suffix(PREFIX_MARK) {
        Some(stem) => prefix_admits(stem, name),
        None => entry.eq_ignore_ascii_case(name),
    })
}

/// True when prefix entry `stem-*` admits `name`: `name` is `stem-` plus at least one character.
fn prefix_admits(stem: &str, name: &str) -> bool {
    name.len() > stem.len() + 1
        && name.get(..stem.len()).is_some_and(|head| head.eq_ignore_ascii_case(stem))
        && name.as_bytes().get(stem.len()) == Some(&b'-')
}

/// True when two (lowercase) entries are equal or one admits everything, or something, the other
/// names: then one of them is redundant.
fn overlaps(a: &str, b: &str) -> bool {
    match (a.strip_suffix(PREFIX_MARK), b.strip_suffix(PREFIX_MARK)) {
        (None, None) => a == b,
        (Some(stem), None) => prefix_admits(stem, b),
        (None, Some(stem)) => prefix_admits(stem, a),
        // `x-ratelimit-*` and `x-ratelimit-limit-*`: the shorter admits every name the longer does.
        (Some(x), Some(y)) => x == y || prefix_admits(x, y) || prefix_admits(y, x),
    }
}
