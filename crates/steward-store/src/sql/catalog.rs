//! `impl_catalog_store!`: the SQL of [`crate::catalog::CatalogStore`] for both backends.
//!
//! Uses `insert_envelope_tx`, `envelope_from_row` and `lock_deployment` of the backend type (defined
//! by `impl_store!` and the backend), so it must be expanded in the same module as `impl_store!`.

/// The columns of an integration plus the summary of its newest secret version.
pub(crate) const INTEGRATION_SELECT: &str = "SELECT i.integration_id, i.tenant_id, i.name, i.provider, \
     i.template_owner, i.template_id, i.template_version, i.injection, i.enabled, i.created_at, i.updated_at, \
     i.deleted_at, s.version AS secret_version, s.created_at AS secret_updated_at, s.bound_hosts, \
     s.bound_injection \
     FROM integrations i LEFT JOIN secret_versions s ON s.integration_id = i.integration_id \
     AND s.version = (SELECT MAX(version) FROM secret_versions m WHERE m.integration_id = i.integration_id)";

pub(crate) const POLICY_SELECT: &str = "SELECT policy_id, tenant_id, integration_id, action_group, method, host, \
     workload_id, rule_type, rule, created_at, disabled_at FROM policies";

pub(crate) const TEMPLATE_COLUMNS: &str = "owner_tenant_id, template_id, version, provider, body, created_at";

/// `$start, $start+1, …` for `n` values.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

pub(crate) fn to_i64(value: u64) -> Result<i64, crate::StoreError> {
    i64::try_from(value).map_err(|_| crate::StoreError::Database(format!("{value} is out of range")))
}

pub(crate) fn to_u64(value: i64) -> Result<u64, crate::StoreError> {
    u64::try_from(value).map_err(super::corrupt)
}

/// A nullable JSON text column; SQL NULL and JSON `null` are both `None`.
pub(crate) fn json_column(text: Option<String>) -> Result<Option<serde_json::Value>, crate::StoreError> {
    match text {
        None => Ok(None),
        Some(text) => {
            let value: serde_json::Value = serde_json::from_str(&text).map_err(super::corrupt)?;
            Ok((!value.is_null()).then_some(value))
        }
    }
}

macro_rules! impl_catalog_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn template_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::catalog::TemplateVersionRecord, $crate::StoreError> {
                use sqlx::Row as _;
                Ok($crate::catalog::TemplateVersionRecord {
                    owner: row.try_get("owner_tenant_id").map_err($crate::sql::corrupt)?,
                    template_id: row.try_get("template_id").map_err($crate::sql::corrupt)?,
                    version: $crate::sql::catalog::to_u64(row.try_get("version").map_err($crate::sql::corrupt)?)?,
                    provider: row.try_get("provider").map_err($crate::sql::corrupt)?,
                    body: row.try_get("body").map_err($crate::sql::corrupt)?,
                    created_at: $crate::sql::timestamp(row.try_get("created_at").map_err($crate::sql::corrupt)?)?,
                })
            }

            fn integration_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::catalog::IntegrationRecord, $crate::StoreError> {
                use sqlx::Row as _;
                let pin: Option<i64> = row.try_get("template_version").map_err($crate::sql::corrupt)?;
                let injection: String = row.try_get("injection").map_err($crate::sql::corrupt)?;
                let injection: serde_json::Value = serde_json::from_str(&injection).map_err($crate::sql::corrupt)?;
                let secret_version: Option<i64> = row.try_get("secret_version").map_err($crate::sql::corrupt)?;
                let hosts: Option<String> = row.try_get("bound_hosts").map_err($crate::sql::corrupt)?;
                let bound_injection: Option<String> =
                    row.try_get("bound_injection").map_err($crate::sql::corrupt)?;
                Ok($crate::catalog::IntegrationRecord {
                    integration_id: row.try_get("integration_id").map_err($crate::sql::corrupt)?,
                    tenant_id: row.try_get("tenant_id").map_err($crate::sql::corrupt)?,
                    name: row.try_get("name").map_err($crate::sql::corrupt)?,
                    provider: row.try_get("provider").map_err($crate::sql::corrupt)?,
                    template_owner: row.try_get("template_owner").map_err($crate::sql::corrupt)?,
                    template_id: row.try_get("template_id").map_err($crate::sql::corrupt)?,
                    template_version: pin.map($crate::sql::catalog::to_u64).transpose()?,
                    injection: (!injection.is_null()).then_some(injection),
                    enabled: row.try_get("enabled").map_err($crate::sql::corrupt)?,
                    created_at: $crate::sql::timestamp(row.try_get("created_at").map_err($crate::sql::corrupt)?)?,
                    updated_at: $crate::sql::timestamp(row.try_get("updated_at").map_err($crate::sql::corrupt)?)?,
                    deleted_at: $crate::sql::opt_timestamp(row.try_get("deleted_at").map_err($crate::sql::corrupt)?)?,
                    secret_version: secret_version.map($crate::sql::catalog::to_u64).transpose()?.unwrap_or(0),
                    secret_updated_at: $crate::sql::opt_timestamp(row.try_get("secret_updated_at").map_err($crate::sql::corrupt)?)?,
                    bound_hosts: match hosts {
                        Some(hosts) => serde_json::from_str(&hosts).map_err($crate::sql::corrupt)?,
                        None => Vec::new(),
                    },
                    bound_injection: $crate::sql::catalog::json_column(bound_injection)?,
                })
            }

            fn policy_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::catalog::PolicyRecord, $crate::StoreError> {
                use sqlx::Row as _;
                let rule: String = row.try_get("rule").map_err($crate::sql::corrupt)?;
                Ok($crate::catalog::PolicyRecord {
                    policy_id: row.try_get("policy_id").map_err($crate::sql::corrupt)?,
                    tenant_id: row.try_get("tenant_id").map_err($crate::sql::corrupt)?,
                    integration_id: row.try_get("integration_id").map_err($crate::sql::corrupt)?,
                    action_group: row.try_get("action_group").map_err($crate::sql::corrupt)?,
                    method: row.try_get("method").map_err($crate::sql::corrupt)?,
                    host: row.try_get("host").map_err($crate::sql::corrupt)?,
                    workload_id: row.try_get("workload_id").map_err($crate::sql::corrupt)?,
                    rule_type: row.try_get("rule_type").map_err($crate::sql::corrupt)?,
                    rule: serde_json::from_str(&rule).map_err($crate::sql::corrupt)?,
                    created_at: $crate::sql::timestamp(row.try_get("created_at").map_err($crate::sql::corrupt)?)?,
                    disabled_at: $crate::sql::opt_timestamp(row.try_get("disabled_at").map_err($crate::sql::corrupt)?)?,
                })
            }

            async fn insert_secret_version_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                integration_id: &steward_types::IntegrationId,
                secret: &$crate::catalog::NewSecretVersion,
            ) -> Result<(), $crate::StoreError> {
                let at = secret.created_at;
                Self::insert_envelope_tx(tx, &secret.envelope, at).await?;
                if let Some(client_secret) = &secret.client_secret {
                    Self::insert_envelope_tx(tx, client_secret, at).await?;
                }
                let hosts = serde_json::to_string(&secret.bound_hosts).map_err($crate::sql::corrupt)?;
                let injection = serde_json::to_string(&secret.bound_injection).map_err($crate::sql::corrupt)?;
                let oauth2 = secret
                    .oauth2
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err($crate::sql::corrupt)?;
                sqlx::query(
                    "INSERT INTO secret_versions (integration_id, version, envelope_id, secret_type, bound_hosts, \
                     bound_injection, oauth2_config, client_secret_envelope_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(integration_id)
                .bind($crate::sql::catalog::to_i64(secret.version)?)
                .bind(&secret.envelope.envelope_id)
                .bind(&secret.secret_type)
                .bind(hosts)
                .bind(injection)
                .bind(oauth2)
                .bind(secret.client_secret.as_ref().map(|e| e.envelope_id.as_str()))
                .bind(at.unix_micros())
                .execute(&mut **tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::catalog::CatalogStore for $store {
            async fn publish_template(
                &self,
                record: &$crate::catalog::TemplateVersionRecord,
            ) -> Result<$crate::catalog::PublishOutcome, $crate::StoreError> {
                use $crate::catalog::PublishOutcome;
                use sqlx::Row as _;
                let map = $crate::sql::map_sqlx;
                let version = $crate::sql::catalog::to_i64(record.version)?;
                let mut tx = self.writer().begin().await.map_err(map)?;
                // Publishing is rare: serializing it (with `steward init`, under the same lock on
                // PostgreSQL; by the single writer on SQLite) keeps the version and provider checks
                // exact under concurrency.
                Self::lock_deployment(&mut tx).await?;
                let same = sqlx::query(
                    "SELECT body FROM template_versions WHERE owner_tenant_id = $1 AND template_id = $2 AND version = $3",
                )
                .bind(&record.owner)
                .bind(&record.template_id)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?;
                let outcome = if let Some(row) = same {
                    let body: String = row.try_get("body").map_err($crate::sql::corrupt)?;
                    Some(if body == record.body {
                        PublishOutcome::VersionExists
                    } else {
                        PublishOutcome::VersionImmutable
                    })
                } else {
                    let latest = sqlx::query(
                        "SELECT version, provider FROM template_versions WHERE owner_tenant_id = $1 \
                         AND template_id = $2 ORDER BY version DESC LIMIT 1",
                    )
                    .bind(&record.owner)
                    .bind(&record.template_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map)?;
                    match latest {
                        Some(row) => {
                            let latest: i64 = row.try_get("version").map_err($crate::sql::corrupt)?;
                            let provider: String = row.try_get("provider").map_err($crate::sql::corrupt)?;
                            if latest >= version {
                                Some(PublishOutcome::NotIncremented {
                                    latest: $crate::sql::catalog::to_u64(latest)?,
                                })
                            } else if provider != record.provider {
                                Some(PublishOutcome::ProviderMismatch { provider })
                            } else {
                                None
                            }
                        }
                        None => None,
                    }
                };
                if let Some(outcome) = outcome {
                    tx.rollback().await.map_err(map)?;
                    return Ok(outcome);
                }
                sqlx::query(&format!(
                    "INSERT INTO template_versions ({}) VALUES ($1, $2, $3, $4, $5, $6)",
                    $crate::sql::catalog::TEMPLATE_COLUMNS
                ))
                .bind(&record.owner)
                .bind(&record.template_id)
                .bind(version)
                .bind(&record.provider)
                .bind(&record.body)
                .bind(record.created_at.unix_micros())
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                tx.commit().await.map_err(map)?;
                Ok(PublishOutcome::Published)
            }

            async fn template_version(
                &self,
                owner: &str,
                template_id: &str,
                version: Option<u64>,
            ) -> Result<Option<$crate::catalog::TemplateVersionRecord>, $crate::StoreError> {
                let columns = $crate::sql::catalog::TEMPLATE_COLUMNS;
                let row = match version {
                    Some(version) => {
                        sqlx::query(&format!(
                            "SELECT {columns} FROM template_versions WHERE owner_tenant_id = $1 \
                             AND template_id = $2 AND version = $3"
                        ))
                        .bind(owner)
                        .bind(template_id)
                        .bind($crate::sql::catalog::to_i64(version)?)
                        .fetch_optional(self.reader())
                        .await
                    }
                    None => {
                        sqlx::query(&format!(
                            "SELECT {columns} FROM template_versions WHERE owner_tenant_id = $1 \
                             AND template_id = $2 ORDER BY version DESC LIMIT 1"
                        ))
                        .bind(owner)
                        .bind(template_id)
                        .fetch_optional(self.reader())
                        .await
                    }
                }
                .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map(Self::template_from_row).transpose()
            }

            async fn list_latest_templates(
                &self,
                owners: Option<&[String]>,
            ) -> Result<Vec<$crate::catalog::TemplateVersionRecord>, $crate::StoreError> {
                let filter = match owners {
                    Some([]) => return Ok(Vec::new()),
                    Some(owners) => {
                        format!(" WHERE t.owner_tenant_id IN ({})", $crate::sql::catalog::placeholders(1, owners.len()))
                    }
                    None => String::new(),
                };
                let sql = format!(
                    "SELECT t.owner_tenant_id, t.template_id, t.version, t.provider, t.body, t.created_at \
                     FROM template_versions t JOIN (SELECT owner_tenant_id, template_id, MAX(version) AS v \
                     FROM template_versions GROUP BY owner_tenant_id, template_id) m \
                     ON t.owner_tenant_id = m.owner_tenant_id AND t.template_id = m.template_id AND t.version = m.v\
                     {filter} ORDER BY t.owner_tenant_id, t.template_id"
                );
                let mut query = sqlx::query(&sql);
                for owner in owners.unwrap_or_default() {
                    query = query.bind(owner);
                }
                let rows = query.fetch_all(self.reader()).await.map_err($crate::sql::map_sqlx)?;
                rows.iter().map(Self::template_from_row).collect()
            }

            async fn catalog_tenant_exists(&self, tenant_id: &steward_types::TenantId) -> Result<bool, $crate::StoreError> {
                let row = sqlx::query("SELECT tenant_id FROM tenants WHERE tenant_id = $1")
                    .bind(tenant_id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                Ok(row.is_some())
            }

            async fn create_integration(
                &self,
                integration: &$crate::catalog::IntegrationRecord,
                secret: &$crate::catalog::NewSecretVersion,
            ) -> Result<$crate::catalog::CreateIntegrationOutcome, $crate::StoreError> {
                let map = $crate::sql::map_sqlx;
                let injection = serde_json::to_string(&integration.injection).map_err($crate::sql::corrupt)?;
                let mut tx = self.writer().begin().await.map_err(map)?;
                let inserted = sqlx::query(
                    "INSERT INTO integrations (integration_id, tenant_id, name, provider, template_owner, template_id, \
                     template_version, injection, enabled, created_at, updated_at, deleted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)",
                )
                .bind(integration.integration_id.as_str())
                .bind(integration.tenant_id.as_str())
                .bind(&integration.name)
                .bind(&integration.provider)
                .bind(&integration.template_owner)
                .bind(&integration.template_id)
                .bind(integration.template_version.map($crate::sql::catalog::to_i64).transpose()?)
                .bind(injection)
                .bind(integration.enabled)
                .bind(integration.created_at.unix_micros())
                .bind(integration.updated_at.unix_micros())
                .execute(&mut *tx)
                .await
                .map_err(map);
                match inserted {
                    Ok(_) => {}
                    Err($crate::StoreError::Conflict(_)) => {
                        tx.rollback().await.map_err(map)?;
                        return Ok($crate::catalog::CreateIntegrationOutcome::NameConflict);
                    }
                    Err(other) => return Err(other),
                }
                Self::insert_secret_version_tx(&mut tx, &integration.integration_id, secret).await?;
                tx.commit().await.map_err(map)?;
                Ok($crate::catalog::CreateIntegrationOutcome::Created)
            }

            async fn integration(
                &self,
                integration_id: &steward_types::IntegrationId,
            ) -> Result<Option<$crate::catalog::IntegrationRecord>, $crate::StoreError> {
                let sql = format!("{} WHERE i.integration_id = $1", $crate::sql::catalog::INTEGRATION_SELECT);
                let row = sqlx::query(&sql)
                    .bind(integration_id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map(Self::integration_from_row).transpose()
            }

            async fn list_integrations(
                &self,
                tenant_ids: Option<&[steward_types::TenantId]>,
            ) -> Result<Vec<$crate::catalog::IntegrationRecord>, $crate::StoreError> {
                let filter = match tenant_ids {
                    Some([]) => return Ok(Vec::new()),
                    Some(ids) => format!(" WHERE i.tenant_id IN ({})", $crate::sql::catalog::placeholders(1, ids.len())),
                    None => String::new(),
                };
                let sql = format!(
                    "{}{filter} ORDER BY i.created_at, i.integration_id",
                    $crate::sql::catalog::INTEGRATION_SELECT
                );
                let mut query = sqlx::query(&sql);
                for id in tenant_ids.unwrap_or_default() {
                    query = query.bind(id);
                }
                let rows = query.fetch_all(self.reader()).await.map_err($crate::sql::map_sqlx)?;
                rows.iter().map(Self::integration_from_row).collect()
            }

            async fn update_integration(
                &self,
                integration_id: &steward_types::IntegrationId,
                patch: &$crate::catalog::IntegrationPatch,
                now: steward_types::Timestamp,
            ) -> Result<Option<$crate::catalog::IntegrationRecord>, $crate::StoreError> {
                use sqlx::Row as _;
                let map = $crate::sql::map_sqlx;
                let mut tx = self.writer().begin().await.map_err(map)?;
                let row = sqlx::query(
                    "SELECT enabled, template_version, injection FROM integrations \
                     WHERE integration_id = $1 AND deleted_at IS NULL",
                )
                .bind(integration_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?;
                let Some(row) = row else {
                    tx.rollback().await.map_err(map)?;
                    return Ok(None);
                };
                let enabled: bool = patch.enabled.map_or_else(|| row.try_get("enabled").map_err($crate::sql::corrupt), Ok)?;
                let pin: Option<i64> = match patch.template_version {
                    Some(pin) => pin.map($crate::sql::catalog::to_i64).transpose()?,
                    None => row.try_get("template_version").map_err($crate::sql::corrupt)?,
                };
                let injection: String = match &patch.injection {
                    Some(injection) => serde_json::to_string(injection).map_err($crate::sql::corrupt)?,
                    None => row.try_get("injection").map_err($crate::sql::corrupt)?,
                };
                sqlx::query(
                    "UPDATE integrations SET enabled = $1, template_version = $2, injection = $3, updated_at = $4 \
                     WHERE integration_id = $5",
                )
                .bind(enabled)
                .bind(pin)
                .bind(injection)
                .bind(now.unix_micros())
                .bind(integration_id)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                tx.commit().await.map_err(map)?;
                self.integration(integration_id).await
            }

            async fn add_secret_version(
                &self,
                integration_id: &steward_types::IntegrationId,
                secret: &$crate::catalog::NewSecretVersion,
            ) -> Result<bool, $crate::StoreError> {
                let map = $crate::sql::map_sqlx;
                let mut tx = self.writer().begin().await.map_err(map)?;
                let live = sqlx::query(
                    "SELECT integration_id FROM integrations WHERE integration_id = $1 AND deleted_at IS NULL",
                )
                .bind(integration_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?;
                if live.is_none() {
                    tx.rollback().await.map_err(map)?;
                    return Ok(false);
                }
                Self::insert_secret_version_tx(&mut tx, integration_id, secret).await?;
                sqlx::query("UPDATE integrations SET updated_at = $1 WHERE integration_id = $2")
                    .bind(secret.created_at.unix_micros())
                    .bind(integration_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
                tx.commit().await.map_err(map)?;
                Ok(true)
            }

            async fn current_secret(
                &self,
                integration_id: &steward_types::IntegrationId,
            ) -> Result<Option<$crate::catalog::SecretVersionRecord>, $crate::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT s.integration_id, s.version, s.secret_type, s.bound_hosts, s.bound_injection, \
                       s.oauth2_config, s.created_at, \
                       e.envelope_id AS e_envelope_id, e.kek_id AS e_kek_id, e.aad AS e_aad, e.body AS e_body, \
                       e.destroyed_at AS e_destroyed_at, \
                       k.envelope_id AS k_envelope_id, k.kek_id AS k_kek_id, k.aad AS k_aad, k.body AS k_body \
                     FROM secret_versions s JOIN envelopes e ON e.envelope_id = s.envelope_id \
                     LEFT JOIN envelopes k ON k.envelope_id = s.client_secret_envelope_id \
                     WHERE s.integration_id = $1 ORDER BY s.version DESC LIMIT 1",
                )
                .bind(integration_id)
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                let Some(row) = row else { return Ok(None) };
                let destroyed: Option<i64> = row.try_get("e_destroyed_at").map_err($crate::sql::corrupt)?;
                if destroyed.is_some() {
                    return Ok(None);
                }
                let hosts: String = row.try_get("bound_hosts").map_err($crate::sql::corrupt)?;
                let injection: Option<String> = row.try_get("bound_injection").map_err($crate::sql::corrupt)?;
                let oauth2: Option<String> = row.try_get("oauth2_config").map_err($crate::sql::corrupt)?;
                let client_id: Option<String> = row.try_get("k_envelope_id").map_err($crate::sql::corrupt)?;
                Ok(Some($crate::catalog::SecretVersionRecord {
                    integration_id: row.try_get("integration_id").map_err($crate::sql::corrupt)?,
                    version: $crate::sql::catalog::to_u64(row.try_get("version").map_err($crate::sql::corrupt)?)?,
                    secret_type: row.try_get("secret_type").map_err($crate::sql::corrupt)?,
                    envelope: Self::envelope_from_row(&row, "e_")?,
                    bound_hosts: serde_json::from_str(&hosts).map_err($crate::sql::corrupt)?,
                    bound_injection: $crate::sql::catalog::json_column(injection)?,
                    oauth2: oauth2.map(|text| serde_json::from_str(&text)).transpose().map_err($crate::sql::corrupt)?,
                    client_secret: match client_id {
                        Some(_) => Some(Self::envelope_from_row(&row, "k_")?),
                        None => None,
                    },
                    created_at: $crate::sql::timestamp(row.try_get("created_at").map_err($crate::sql::corrupt)?)?,
                }))
            }

            async fn delete_integration(
                &self,
                integration_id: &steward_types::IntegrationId,
                now: steward_types::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let map = $crate::sql::map_sqlx;
                let mut tx = self.writer().begin().await.map_err(map)?;
                let done = sqlx::query(
                    "UPDATE integrations SET enabled = $1, deleted_at = $2, updated_at = $2 \
                     WHERE integration_id = $3 AND deleted_at IS NULL",
                )
                .bind(false)
                .bind(now.unix_micros())
                .bind(integration_id)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                if done.rows_affected() != 1 {
                    tx.rollback().await.map_err(map)?;
                    return Ok(false);
                }
                // Crypto-shredding: the ciphertexts go; the rows stay so references and audit resolve.
                sqlx::query(
                    "UPDATE envelopes SET body = '', destroyed_at = $1 WHERE destroyed_at IS NULL AND envelope_id IN (\
                       SELECT envelope_id FROM secret_versions WHERE integration_id = $2 \
                       UNION SELECT client_secret_envelope_id FROM secret_versions \
                         WHERE integration_id = $2 AND client_secret_envelope_id IS NOT NULL \
                       UNION SELECT token_envelope_id FROM secret_versions \
                         WHERE integration_id = $2 AND token_envelope_id IS NOT NULL \
                       UNION SELECT token_envelope_id FROM oauth2_tokens \
                         WHERE integration_id = $2 AND token_envelope_id IS NOT NULL)",
                )
                .bind(now.unix_micros())
                .bind(integration_id)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                tx.commit().await.map_err(map)?;
                Ok(true)
            }

            async fn insert_policy(&self, policy: &$crate::catalog::PolicyRecord) -> Result<(), $crate::StoreError> {
                let map = $crate::sql::map_sqlx;
                let rule = serde_json::to_string(&policy.rule).map_err($crate::sql::corrupt)?;
                let mut tx = self.writer().begin().await.map_err(map)?;
                sqlx::query(
                    "INSERT INTO policies (policy_id, tenant_id, integration_id, action_group, method, host, \
                     workload_id, rule_type, rule, created_at, disabled_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(policy.policy_id.as_str())
                .bind(policy.tenant_id.as_str())
                .bind(policy.integration_id.as_str())
                .bind(&policy.action_group)
                .bind(&policy.method)
                .bind(&policy.host)
                .bind(policy.workload_id.as_ref())
                .bind(&policy.rule_type)
                .bind(rule)
                .bind(policy.created_at.unix_micros())
                .bind(policy.disabled_at.map(|t| t.unix_micros()))
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                tx.commit().await.map_err(map)
            }

            async fn policy(
                &self,
                policy_id: &steward_types::PolicyId,
            ) -> Result<Option<$crate::catalog::PolicyRecord>, $crate::StoreError> {
                let sql = format!("{} WHERE policy_id = $1", $crate::sql::catalog::POLICY_SELECT);
                let row = sqlx::query(&sql)
                    .bind(policy_id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map(Self::policy_from_row).transpose()
            }

            async fn list_policies(
                &self,
                filter: &$crate::catalog::PolicyFilter,
            ) -> Result<Vec<$crate::catalog::PolicyRecord>, $crate::StoreError> {
                let mut sql = format!("{} WHERE disabled_at IS NULL", $crate::sql::catalog::POLICY_SELECT);
                let mut binds: Vec<&str> = Vec::new();
                if let Some(tenants) = &filter.tenant_ids {
                    if tenants.is_empty() {
                        return Ok(Vec::new());
                    }
                    sql.push_str(&format!(
                        " AND tenant_id IN ({})",
                        $crate::sql::catalog::placeholders(1, tenants.len())
                    ));
                    binds.extend(tenants.iter().map(steward_types::TenantId::as_str));
                }
                if let Some(integration_id) = &filter.integration_id {
                    sql.push_str(&format!(" AND integration_id = ${}", binds.len() + 1));
                    binds.push(integration_id.as_str());
                }
                sql.push_str(" ORDER BY created_at, policy_id");
                let mut query = sqlx::query(&sql);
                for value in binds {
                    query = query.bind(value);
                }
                let rows = query.fetch_all(self.reader()).await.map_err($crate::sql::map_sqlx)?;
                rows.iter().map(Self::policy_from_row).collect()
            }

            async fn active_policies(
                &self,
                tenant_id: &steward_types::TenantId,
                integration_id: &steward_types::IntegrationId,
                action_group: &str,
            ) -> Result<Vec<$crate::catalog::PolicyRecord>, $crate::StoreError> {
                let sql = format!(
                    "{} WHERE tenant_id = $1 AND integration_id = $2 AND action_group = $3 \
                     AND disabled_at IS NULL ORDER BY created_at, policy_id",
                    $crate::sql::catalog::POLICY_SELECT
                );
                let rows = sqlx::query(&sql)
                    .bind(tenant_id)
                    .bind(integration_id)
                    .bind(action_group)
                    .fetch_all(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                rows.iter().map(Self::policy_from_row).collect()
            }

            async fn disable_policy(
                &self,
                policy_id: &steward_types::PolicyId,
                now: steward_types::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let map = $crate::sql::map_sqlx;
                let mut tx = self.writer().begin().await.map_err(map)?;
                let done = sqlx::query(
                    "UPDATE policies SET disabled_at = $1 WHERE policy_id = $2 AND disabled_at IS NULL",
                )
                .bind(now.unix_micros())
                .bind(policy_id)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                tx.commit().await.map_err(map)?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_catalog_store;
