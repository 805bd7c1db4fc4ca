//! The built-in templates (`builtin_templates/*.json`, embedded at build time), installed under
//! `global` as version 1 by `steward init` and by `POST /v1/templates/install-builtin`.
//!
//! They are narrow by design: each group admits a handful of documented endpoints, so an operator
//! can bind an integration and write allow rules without first writing a template. A test checks that
//! every one passes the same validation as a published template.

use steward_canon::Template;
use steward_store::Store;
use steward_store::StoreError;
use steward_store::catalog::{PublishOutcome, TemplateVersionRecord};
use steward_types::{GLOBAL_TENANT, Timestamp};

/// `(template_id, JSON)` of every built-in template.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    ("tpl_openai", include_str!("../builtin_templates/tpl_openai.json")),
    ("tpl_anthropic", include_str!("../builtin_templates/tpl_anthropic.json")),
    ("tpl_gmail", include_str!("../builtin_templates/tpl_gmail.json")),
    ("tpl_google_calendar", include_str!("../builtin_templates/tpl_google_calendar.json")),
    ("tpl_github", include_str!("../builtin_templates/tpl_github.json")),
    ("tpl_slack", include_str!("../builtin_templates/tpl_slack.json")),
];

/// Which built-ins an install wrote and which were there already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltinReport {
    pub installed: Vec<String>,
    pub already_present: Vec<String>,
}

/// Why the built-ins could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// A built-in failed validation: a bug in this build, caught by the crate's tests.
    #[error("built-in template {id} is invalid: {detail}")]
    Invalid { id: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every built-in, parsed and validated.
pub fn builtin_templates() -> Result<Vec<Template>, BuiltinError> {
    BUILTIN_TEMPLATES
        .iter()
        .map(|(id, text)| {
            let invalid = |detail: String| BuiltinError::Invalid { id: (*id).to_owned(), detail };
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
            Template::from_json(&value).map_err(|e| invalid(e.to_string()))
        })
        .collect()
}

/// The store record of a template published by `owner` at `now`.
pub fn template_record(owner: &str, template: &Template, now: Timestamp) -> TemplateVersionRecord {
    TemplateVersionRecord {
        owner: owner.to_owned(),
        template_id: template.id().to_owned(),
        version: template.version(),
        provider: template.provider().to_owned(),
        body: template.canonical_json(),
        created_at: now,
    }
}

/// Installs every built-in under `global`. Idempotent: a built-in whose id already has a global
/// version (ours, or one an owner published) is reported as already present and left alone.
pub async fn install_builtin_templates(
    store: &dyn Store,
    now: Timestamp,
) -> Result<BuiltinReport, BuiltinError> {
    let mut report = BuiltinReport::default();
    for template in builtin_templates()? {
        let record = template_record(GLOBAL_TENANT, &template, now);
        let outcome = match store.publish_template(&record).await {
            // A concurrent install won the race: that version is there now.
            Err(StoreError::Conflict(_)) => PublishOutcome::VersionExists,
            other => other?,
        };
        let id = template.id().to_owned();
        match outcome {
            PublishOutcome::Published => report.installed.push(id),
            _ => report.already_present.push(id),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_passes_validation_under_its_file_name() {
        let templates = builtin_templates().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(templates.len(), BUILTIN_TEMPLATES.len());
        for (template, (id, _)) in templates.iter().zip(BUILTIN_TEMPLATES) {
            assert_eq!(template.id(), *id);
            assert_eq!(template.version(), 1);
        }
    }
}
