//! Path patterns: anchored `regex` expressions compiled in ASCII mode within a size limit, refused when
//! they would match every path.

use regex::bytes::{Regex, RegexBuilder};
use steward_types::ErrorCode;

use crate::error::TemplateError;

const MAX_PATTERN_LEN: usize = 1024;
const SIZE_LIMIT: usize = 256 * 1024;
const DFA_SIZE_LIMIT: usize = 1024 * 1024;
const NEST_LIMIT: u32 = 32;

/// Paths that a sensible pattern never matches all of.
const OVERBROAD_PROBES: &[&str] = &["/", "/x", "/x/y/z", "/admin", "/.well-known/security.txt"];

/// A compiled path pattern. Matching is against the whole normalized path, whatever alternations the
/// pattern uses (it is wrapped in `\A(?:…)\z`).
#[derive(Debug, Clone)]
pub struct PathPattern {
    source: String,
    regex: Regex,
}

impl PathPattern {
    /// Checks anchoring, compiles, and refuses overbroad patterns, in that order.
    pub fn compile(source: &str) -> Result<Self, TemplateError> {
        if !source.starts_with('^') || !ends_with_unescaped_dollar(source) {
            return Err(TemplateError::new(
                ErrorCode::TemplatePathPatternUnanchored,
                format!("path pattern {source:?} must start with '^' and end with '$'"),
            ));
        }
        let invalid = |why: String| {
            TemplateError::new(
                ErrorCode::TemplatePathPatternInvalid,
                format!("path pattern {source:?} {why}"),
            )
        };
        if source.len() > MAX_PATTERN_LEN {
            return Err(invalid(format!("is longer than {MAX_PATTERN_LEN} bytes")));
        }
        // Compile the pattern alone first so that it is balanced before it is wrapped.
        build(source).map_err(|e| invalid(format!("does not compile: {e}")))?;
        let regex =
            build(&format!(r"\A(?:{source})\z")).map_err(|e| invalid(format!("does not compile: {e}")))?;
        if OVERBROAD_PROBES.iter().all(|probe| regex.is_match(probe.as_bytes())) {
            return Err(TemplateError::new(
                ErrorCode::TemplatePathPatternOverbroad,
                format!(
                    "path pattern {source:?} matches every path (it matches all of {OVERBROAD_PROBES:?})"
                ),
            ));
        }
        Ok(Self { source: source.to_owned(), regex })
    }

    /// The pattern as written in the template.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the whole normalized path matches.
    pub fn is_match(&self, path: &str) -> bool {
        self.regex.is_match(path.as_bytes())
    }
}

fn build(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
}

/// Ends with `$` that is not itself escaped by an odd run of backslashes.
fn ends_with_unescaped_dollar(source: &str) -> bool {
    match source.strip_suffix('$') {
        Some(before) => before.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 0,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(source: &str) -> Option<ErrorCode> {
        PathPattern::compile(source).err().map(|e| e.code())
    }

    #[test]
    fn anchoring() {
        assert_eq!(code("/v1/x$"), Some(ErrorCode::TemplatePathPatternUnanchored));
        assert_eq!(code("^/v1/x"), Some(ErrorCode::TemplatePathPatternUnanchored));
        assert_eq!(code(r"^/v1/x\$"), Some(ErrorCode::TemplatePathPatternUnanchored));
        assert_eq!(code(r"^/v1/x\\$"), None);
    }

    #[test]
    fn invalid_and_overbroad() {
        assert_eq!(code("^/v1/(x$"), Some(ErrorCode::TemplatePathPatternInvalid));
        assert_eq!(code("^a)|(b$"), Some(ErrorCode::TemplatePathPatternInvalid));
        assert_eq!(
            code("^(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))$"),
            Some(ErrorCode::TemplatePathPatternInvalid)
        );
        assert_eq!(code("^/x{1000}{1000}{1000}$"), Some(ErrorCode::TemplatePathPatternInvalid));
        assert_eq!(code("^.*$"), Some(ErrorCode::TemplatePathPatternOverbroad));
        assert_eq!(code("^/.*$"), Some(ErrorCode::TemplatePathPatternOverbroad));
        assert_eq!(code("^(?s:.)*$"), Some(ErrorCode::TemplatePathPatternOverbroad));
        assert_eq!(code("^/[^/]*$"), None);
    }

    #[test]
    fn whole_path_matching() {
        let p = PathPattern::compile("^/a$|^/b$").unwrap();
        assert!(p.is_match("/a"));
        assert!(p.is_match("/b"));
        assert!(!p.is_match("/a/x"));
        let p = PathPattern::compile("^/a|/b$").unwrap();
        assert!(!p.is_match("/xx/b"), "alternation must not escape the anchors");
        let p = PathPattern::compile(r"^/repos/[^/]+/[^/]+/issues$").unwrap();
        assert!(p.is_match("/repos/o/r/issues"));
        assert!(!p.is_match("/repos/o/r/x/issues"));
        assert_eq!(p.as_str(), r"^/repos/[^/]+/[^/]+/issues$");
    }
}
