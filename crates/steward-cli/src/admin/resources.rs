//! `steward admin tenants|workloads|integrations|tokens`.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Map, Value, json};

use super::client::{AdminClient, CliError, CliResult, read_secret, segment};
use super::output::Printer;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        dpop_required: bool,
        /// An https:// URL that receives approval notifications.
        #[arg(long)]
        approval_webhook_url: Option<String>,
    },
    List,
    Get {
        tenant_id: String,
    },
    /// Change a tenant's name, DPoP requirement or approval webhook.
    Update {
        tenant_id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        dpop_required: Option<bool>,
        #[arg(long, conflicts_with = "clear_approval_webhook_url")]
        approval_webhook_url: Option<String>,
        #[arg(long)]
        clear_approval_webhook_url: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkloadsCommand {
    /// Create a workload; prints its one-time enrollment token.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// An IP address or CIDR the workload may connect from (repeatable; none = any).
        #[arg(long = "ip")]
        ip_allowlist: Vec<String>,
        #[arg(long)]
        dpop_required: bool,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Get {
        workload_id: String,
    },
    Update {
        workload_id: String,
        #[arg(long)]
        enabled: Option<bool>,
        /// Replaces the allowlist (repeatable).
        #[arg(long = "ip")]
        ip_allowlist: Option<Vec<String>>,
        #[arg(long)]
        dpop_required: Option<bool>,
    },
    /// Disable for good; revokes its sessions and certificates.
    Delete {
        workload_id: String,
    },
    /// A new enrollment token (earlier unused ones stop working).
    EnrollmentToken {
        workload_id: String,
    },
    Certificates {
        workload_id: String,
    },
    RevokeCertificate {
        workload_id: String,
        serial: String,
    },
    RevokeSessions {
        workload_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IntegrationsCommand {
    /// Create an integration. The secret comes from --secret-file or --secret-env, never the command line.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        provider: String,
        #[arg(long)]
        template: String,
        #[arg(long)]
        template_version: Option<u64>,
        #[command(flatten)]
        secret: SecretArgs,
        /// Injection JSON, e.g. '{"type":"header","name":"x-api-key","format":"{secret}"}'.
        #[arg(long)]
        injection: Option<String>,
        /// OAuth2 settings JSON without the client secret (for OAuth2 secret types).
        #[arg(long, conflicts_with = "oauth2_file")]
        oauth2: Option<String>,
        /// A file holding the OAuth2 settings JSON; the only way to pass `client_secret`.
        #[arg(long)]
        oauth2_file: Option<PathBuf>,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Get {
        integration_id: String,
    },
    Update {
        integration_id: String,
        #[arg(long)]
        enabled: Option<bool>,
        #[arg(long, conflicts_with = "follow_latest")]
        template_version: Option<u64>,
        /// Unpin: follow the template's latest version.
        #[arg(long)]
        follow_latest: bool,
    },
    /// Replace the secret (a new secret version).
    SetSecret {
        integration_id: String,
        #[command(flatten)]
        secret: SecretArgs,
        /// OAuth2 settings JSON without the client secret.
        #[arg(long, conflicts_with = "oauth2_file")]
        oauth2: Option<String>,
        /// A file holding the OAuth2 settings JSON; the only way to pass `client_secret`.
        #[arg(long)]
        oauth2_file: Option<PathBuf>,
    },
    /// Disable for good and destroy its secrets.
    Delete {
        integration_id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct SecretArgs {
    /// A file holding the secret (one trailing newline is dropped).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// An environment variable holding the secret.
    #[arg(long)]
    secret_env: Option<String>,
    /// api_key, oauth2_refresh_token or oauth2_client_credentials.
    #[arg(long, default_value = "api_key")]
    secret_type: String,
}

impl SecretArgs {
    fn body(&self) -> CliResult<Value> {
        let value = read_secret(self.secret_file.as_deref(), self.secret_env.as_deref())?;
        Ok(json!({"type": self.secret_type, "value": value}))
    }
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an admin token; prints it once.
    Create {
        #[arg(long)]
        name: String,
        /// owner, admin, operator or auditor.
        #[arg(long)]
        role: String,
        /// A tenant the token covers (repeatable; owners cover all).
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        #[arg(long)]
        ttl_seconds: Option<u64>,
    },
    List,
    Revoke {
        token_id: String,
    },
}

const TENANT_COLUMNS: &[&str] = &["tenant_id", "name", "dpop_required", "approval_webhook_url", "created_at"];
const WORKLOAD_COLUMNS: &[&str] =
    &["workload_id", "tenant_id", "name", "enabled", "ip_allowlist", "dpop_required"];
const INTEGRATION_COLUMNS: &[&str] = &[
    "integration_id",
    "tenant_id",
    "name",
    "provider",
    "template_id",
    "template_version",
    "enabled",
    "secret_version",
];

pub async fn tenants(api: &AdminClient, out: Printer, command: TenantsCommand) -> CliResult<()> {
    match command {
        TenantsCommand::Create { name, dpop_required, approval_webhook_url } => {
            let mut body = json!({"name": name, "dpop_required": dpop_required});
            if let Some(url) = approval_webhook_url {
                body["approval_webhook_url"] = url.into();
            }
            out.object(&api.post("/v1/tenants", Some(body)).await?, "tenant_id")?;
        }
        TenantsCommand::List => {
            out.list(&api.get("/v1/tenants").await?, "tenants", TENANT_COLUMNS, "tenant_id")?
        }
        TenantsCommand::Get { tenant_id } => {
            out.object(&api.get(&format!("/v1/tenants/{}", segment(&tenant_id))).await?, "tenant_id")?
        }
        TenantsCommand::Update {
            tenant_id,
            name,
            dpop_required,
            approval_webhook_url,
            clear_approval_webhook_url,
        } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), name.into());
            }
            if let Some(flag) = dpop_required {
                body.insert("dpop_required".into(), flag.into());
            }
            if let Some(url) = approval_webhook_url {
                body.insert("approval_webhook_url".into(), url.into());
            }
            if clear_approval_webhook_url {
                body.insert("approval_webhook_url".into(), Value::Null);
            }
            nothing_to_change(&body)?;
            out.object(
                &api.patch(&format!("/v1/tenants/{}", segment(&tenant_id)), Value::Object(body)).await?,
                "tenant_id",
            )?;
        }
    }
    Ok(())
}

pub async fn workloads(api: &AdminClient, out: Printer, command: WorkloadsCommand) -> CliResult<()> {
    let path = |id: &str| format!("/v1/workloads/{}", segment(id));
    match command {
        WorkloadsCommand::Create { tenant, name, ip_allowlist, dpop_required } => {
            let body = json!({"name": name, "ip_allowlist": ip_allowlist, "dpop_required": dpop_required});
            let created =
                api.post(&format!("/v1/tenants/{}/workloads", segment(&tenant)), Some(body)).await?;
            out.object(&created, "workload_id")?;
        }
        WorkloadsCommand::List { tenant } => out.list(
            &api.get(&format!("/v1/tenants/{}/workloads", segment(&tenant))).await?,
            "workloads",
            WORKLOAD_COLUMNS,
            "workload_id",
        )?,
        WorkloadsCommand::Get { workload_id } => {
            out.object(&api.get(&path(&workload_id)).await?, "workload_id")?
        }
        WorkloadsCommand::Update { workload_id, enabled, ip_allowlist, dpop_required } => {
            let mut body = Map::new();
            if let Some(enabled) = enabled {
                body.insert("enabled".into(), enabled.into());
            }
            if let Some(list) = ip_allowlist {
                body.insert("ip_allowlist".into(), list.into());
            }
            if let Some(flag) = dpop_required {
                body.insert("dpop_required".into(), flag.into());
            }
            nothing_to_change(&body)?;
            out.object(&api.patch(&path(&workload_id), Value::Object(body)).await?, "workload_id")?;
        }
        WorkloadsCommand::Delete { workload_id } => {
            let answer = api.delete(&path(&workload_id)).await?;
            out.done(&format!("workload {workload_id} deleted (disabled for good)"), &answer, &workload_id);
        }
        WorkloadsCommand::EnrollmentToken { workload_id } => {
            out.object(
                &api.post(&format!("{}/enrollment-token", path(&workload_id)), None).await?,
                "enrollment_token",
            )?;
        }
        WorkloadsCommand::Certificates { workload_id } => out.list(
            &wrap(api.get(&format!("{}/certificates", path(&workload_id))).await?, "certificates"),
            "certificates",
            &["serial", "not_before", "not_after", "thumbprint", "revoked_at"],
            "serial",
        )?,
        WorkloadsCommand::RevokeCertificate { workload_id, serial } => {
            let answer = api
                .post(&format!("{}/certificates/{}/revoke", path(&workload_id), segment(&serial)), None)
                .await?;
            out.done(&format!("certificate {serial} revoked"), &answer, &serial);
        }
        WorkloadsCommand::RevokeSessions { workload_id } => {
            let answer = api.post(&format!("{}/sessions/revoke", path(&workload_id)), None).await?;
            let revoked = super::output::cell(&answer["revoked"]);
            out.done(&format!("{revoked} sessions revoked"), &answer, &workload_id);
        }
    }
    Ok(())
}

pub async fn integrations(api: &AdminClient, out: Printer, command: IntegrationsCommand) -> CliResult<()> {
    let path = |id: &str| format!("/v1/integrations/{}", segment(id));
    match command {
        IntegrationsCommand::Create {
            tenant,
            name,
            provider,
            template,
            template_version,
            secret,
            injection,
            oauth2,
            oauth2_file,
        } => {
            let mut body = json!({"name": name, "provider": provider, "template_id": template, "secret": secret.body()?});
            if let Some(version) = template_version {
                body["template_version"] = version.into();
            }
            if let Some(text) = injection {
                body["injection"] = super::parse_json_arg("--injection", &text)?;
            }
            if let Some(block) = oauth2_block(oauth2.as_deref(), oauth2_file.as_deref())? {
                body["oauth2"] = block;
            }
            out.object(
                &api.post(&format!("/v1/tenants/{}/integrations", segment(&tenant)), Some(body)).await?,
                "integration_id",
            )?;
        }
        IntegrationsCommand::List { tenant } => out.list(
            &api.get(&format!("/v1/tenants/{}/integrations", segment(&tenant))).await?,
            "integrations",
            INTEGRATION_COLUMNS,
            "integration_id",
        )?,
        IntegrationsCommand::Get { integration_id } => {
            out.object(&api.get(&path(&integration_id)).await?, "integration_id")?
        }
        IntegrationsCommand::Update { integration_id, enabled, template_version, follow_latest } => {
            let mut body = Map::new();
            if let Some(enabled) = enabled {
                body.insert("enabled".into(), enabled.into());
            }
            if let Some(version) = template_version {
                body.insert("template_version".into(), version.into());
            }
            if follow_latest {
                body.insert("template_version".into(), Value::Null);
            }
            nothing_to_change(&body)?;
            out.object(&api.patch(&path(&integration_id), Value::Object(body)).await?, "integration_id")?;
        }
        IntegrationsCommand::SetSecret { integration_id, secret, oauth2, oauth2_file } => {
            let mut body = secret.body()?;
            if let Some(block) = oauth2_block(oauth2.as_deref(), oauth2_file.as_deref())? {
                body["oauth2"] = block;
            }
            out.object(
                &api.put(&format!("{}/secret", path(&integration_id)), body).await?,
                "integration_id",
            )?;
        }
        IntegrationsCommand::Delete { integration_id } => {
            let answer = api.delete(&path(&integration_id)).await?;
            out.done(
                &format!("integration {integration_id} deleted; its secrets were destroyed"),
                &answer,
                &integration_id,
            );
        }
    }
    Ok(())
}

/// The `oauth2` block from `--oauth2 JSON` or `--oauth2-file FILE`. A client secret is a secret: it
/// is refused on the command line (where `ps` and shell history would keep it) and read from the
/// file only.
fn oauth2_block(inline: Option<&str>, file: Option<&std::path::Path>) -> CliResult<Option<Value>> {
    match (inline, file) {
        (Some(text), _) => {
            let block = super::parse_json_arg("--oauth2", text)?;
            if block.get("client_secret").is_some() {
                return Err(CliError::Usage(
                    "--oauth2 may not carry client_secret (it would be visible on the command line); \
                     put the whole block in a file and pass --oauth2-file FILE"
                        .into(),
                ));
            }
            Ok(Some(block))
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("cannot read --oauth2-file {}: {e}", path.display())))?;
            // serde's message may quote the text; name the file only.
            let block: Value = serde_json::from_str(&text).map_err(|_| {
                CliError::Usage(format!("--oauth2-file {} is not a JSON object", path.display()))
            })?;
            if !block.is_object() {
                return Err(CliError::Usage(format!(
                    "--oauth2-file {} is not a JSON object",
                    path.display()
                )));
            }
            Ok(Some(block))
        }
        (None, None) => Ok(None),
    }
}

pub async fn tokens(api: &AdminClient, out: Printer, command: TokensCommand) -> CliResult<()> {
    match command {
        TokensCommand::Create { name, role, tenants, ttl_seconds } => {
            let mut body = json!({"name": name, "role": role, "tenant_ids": tenants});
            if let Some(ttl) = ttl_seconds {
                body["ttl_seconds"] = ttl.into();
            }
            out.object(&api.post("/v1/admin/tokens", Some(body)).await?, "token_id")?;
        }
        TokensCommand::List => out.list(
            &api.get("/v1/admin/tokens").await?,
            "tokens",
            &["token_id", "name", "role", "tenant_ids", "expires_at", "revoked_at"],
            "token_id",
        )?,
        TokensCommand::Revoke { token_id } => {
            let answer = api.delete(&format!("/v1/admin/tokens/{}", segment(&token_id))).await?;
            out.done(&format!("token {token_id} revoked"), &answer, &token_id);
        }
    }
    Ok(())
}

fn nothing_to_change(body: &Map<String, Value>) -> CliResult<()> {
    if body.is_empty() {
        return Err(CliError::Usage("nothing to change: give at least one option".into()));
    }
    Ok(())
}

/// A bare array answer as `{key: array}`, so lists render the same whatever the route returns.
fn wrap(value: Value, key: &str) -> Value {
    if value.is_array() { json!({ key: value }) } else { value }
}

#[cfg(test)]
mod oauth2_block_tests {
    #![allow(clippy::unwrap_used)]

    use super::oauth2_block;

    #[test]
    fn a_client_secret_is_taken_from_the_file_only() {
        let inline = r#"{"token_url":"https://o.example/t","client_id":"c","scopes":[],"auth_method":"client_secret_post"}"#;
        assert_eq!(oauth2_block(Some(inline), None).unwrap().unwrap()["client_id"], "c");
        let with_secret = r#"{"client_id":"c","client_secret":"cs-very-secret"}"#;
        let refused = format!("{:?}", oauth2_block(Some(with_secret), None).unwrap_err());
        assert!(refused.contains("--oauth2-file") && !refused.contains("cs-very-secret"), "{refused}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oauth2.json");
        std::fs::write(&file, with_secret).unwrap();
        assert_eq!(oauth2_block(None, Some(&file)).unwrap().unwrap()["client_secret"], "cs-very-secret");
        std::fs::write(&file, "not json cs-very-secret").unwrap();
        let bad = format!("{:?}", oauth2_block(None, Some(&file)).unwrap_err());
        assert!(!bad.contains("cs-very-secret"), "{bad}");
        assert_eq!(oauth2_block(None, None).unwrap(), None);
    }
}
