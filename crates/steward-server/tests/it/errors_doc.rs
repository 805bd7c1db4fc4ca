//! `docs/errors.md` is generated from the `ErrorCode` enum and checked here, and the enum is checked
//! against the spec's table, so code, docs and contract cannot drift apart.
//! Regenerate with `STEWARD_REGENERATE_DOCS=1 cargo test -p steward-server --test errors_doc`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use steward_types::ErrorCode;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn status_name(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn render() -> String {
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for code in ErrorCode::ALL {
        let entry = by_status.entry(code.status()).or_default();
        if !entry.contains(&code.as_str()) {
            entry.push(code.as_str());
        }
    }
    let mut out = String::from(
        "# Error codes\n\n<!-- Generated from steward_types::ErrorCode by crates/steward-server/tests/it/errors_doc.rs; do not edit. -->\n\n\
         Every error response is `{\"error\": \"<code>\", \"message\": \"…\", \"correlation_id\": \"…\"}` with the\n\
         status below. The code is the stable contract; the message is for people and never contains a secret,\n\
         token, key or stack trace. `template_not_found` is 400 when an integration is written and 404 at\n\
         execute. Approval-required is not an error: `202` with `status: \"approval_required\"`.\n\n\
         | status | code |\n|---|---|\n",
    );
    for (status, codes) in &by_status {
        for code in codes {
            out.push_str(&format!("| {status} {} | `{code}` |\n", status_name(*status)));
        }
    }
    out
}

#[test]
fn docs_errors_md_is_generated_from_the_enum() {
    let path = repo_root().join("docs/errors.md");
    let expected = render();
    if std::env::var_os("STEWARD_REGENERATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(actual == expected, "docs/errors.md is stale: regenerate it (see the top of this test file)");
}

#[test]
fn the_enum_matches_the_spec_table() {
    let spec = repo_root().join("../shared/spec/errors.md");
    let Ok(text) = std::fs::read_to_string(&spec) else {
        panic!("the spec is expected at {}", spec.display());
    };
    let mut spec_codes: Vec<(u16, String)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("| ") else { continue };
        let Some((status, codes)) = rest.split_once(" | ") else { continue };
        let Ok(status) = status.trim().parse::<u16>() else { continue };
        // Codes are the backticked snake_case words (`retry-after` is a header, not a code).
        for piece in codes.split('`').skip(1).step_by(2) {
            if piece.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                spec_codes.push((status, piece.to_owned()));
            }
        }
    }
    assert!(spec_codes.len() > 100, "parsed the spec table");
    for (status, code) in &spec_codes {
        let found = ErrorCode::ALL.iter().any(|c| c.as_str() == code && c.status() == *status);
        assert!(found, "spec code {code} ({status}) is missing from ErrorCode");
    }
    for code in ErrorCode::ALL {
        assert!(
            spec_codes.iter().any(|(s, c)| c == code.as_str() && *s == code.status()),
            "ErrorCode {} ({}) is not in the spec",
            code.as_str(),
            code.status()
        );
    }
}
