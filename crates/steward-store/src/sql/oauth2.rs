//! `impl_oauth2_store!`: the SQL of [`crate::oauth2::OAuth2Store`] for both backends. Uses
//! `insert_envelope_tx`, `envelope_from_row` and `insert_secret_version_tx` of the backend type, so
//! it is expanded beside `impl_store!` and `impl_catalog_store!`.

macro_rules! impl_oauth2_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::oauth2::OAuth2Store for $store {
            async fn oauth2_token_state(
                &self,
                integration_id: &steward_types::IntegrationId,
            ) -> Result<Option<$crate::oauth2::OAuth2TokenState>, $crate::StoreError> {
                use sqlx::Row as _;
                let corrupt = $crate::sql::corrupt;
                let row = sqlx::query(
                    "SELECT o.secret_version, o.expires_at, o.obtained_at, o.refresh_lease_holder, \
                       o.refresh_lease_until, o.last_error, o.last_error_at, \
                       e.envelope_id AS e_envelope_id, e.kek_id AS e_kek_id, e.aad AS e_aad, e.body AS e_body \
                     FROM oauth2_tokens o \
                     LEFT JOIN envelopes e ON e.envelope_id = o.token_envelope_id AND e.destroyed_at IS NULL \
                     WHERE o.integration_id = $1",
                )
                .bind(integration_id)
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                let Some(row) = row else { return Ok(None) };
                let envelope_id: Option<String> = row.try_get("e_envelope_id").map_err(corrupt)?;
                let version: Option<i64> = row.try_get("secret_version").map_err(corrupt)?;
                let expires_at: Option<i64> = row.try_get("expires_at").map_err(corrupt)?;
                let obtained_at: Option<i64> = row.try_get("obtained_at").map_err(corrupt)?;
                let token = match (envelope_id, version, expires_at, obtained_at) {
                    (Some(_), Some(version), Some(expires_at), Some(obtained_at)) => {
                        Some($crate::oauth2::OAuth2TokenRecord {
                            integration_id: integration_id.clone(),
                            secret_version: $crate::sql::catalog::to_u64(version)?,
                            access_token: Self::envelope_from_row(&row, "e_")?,
                            expires_at: $crate::sql::timestamp(expires_at)?,
                            obtained_at: $crate::sql::timestamp(obtained_at)?,
                        })
                    }
                    _ => None,
                };
                Ok(Some($crate::oauth2::OAuth2TokenState {
                    token,
                    lease_holder: row.try_get("refresh_lease_holder").map_err(corrupt)?,
                    lease_until: $crate::sql::opt_timestamp(row.try_get("refresh_lease_until").map_err(corrupt)?)?,
                    last_error: row.try_get("last_error").map_err(corrupt)?,
                    last_error_at: $crate::sql::opt_timestamp(row.try_get("last_error_at").map_err(corrupt)?)?,
                }))
            }

            async fn take_oauth2_refresh_lease(
                &self,
                integration_id: &steward_types::IntegrationId,
                holder: &str,
                now: steward_types::Timestamp,
                until: steward_types::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                // Compare-and-set in one statement: a concurrent taker waits for the row lock and
                // re-evaluates the condition against the winner's lease.
                let taken = sqlx::query(
                    "INSERT INTO oauth2_tokens (integration_id, refresh_lease_holder, refresh_lease_until) \
                     VALUES ($1, $2, $3) \
                     ON CONFLICT (integration_id) DO UPDATE SET refresh_lease_holder = excluded.refresh_lease_holder, \
                       refresh_lease_until = excluded.refresh_lease_until \
                     WHERE oauth2_tokens.refresh_lease_until IS NULL OR oauth2_tokens.refresh_lease_until <= $4 \
                       OR oauth2_tokens.refresh_lease_holder = $2",
                )
                .bind(integration_id)
                .bind(holder)
                .bind(until.unix_micros())
                .bind(now.unix_micros())
                .execute(self.writer())
                .await
                .map_err($crate::sql::map_sqlx)?
                .rows_affected();
                Ok(taken == 1)
            }

            async fn release_oauth2_refresh_lease(
                &self,
                integration_id: &steward_types::IntegrationId,
                holder: &str,
                error: Option<&str>,
                now: steward_types::Timestamp,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "UPDATE oauth2_tokens SET refresh_lease_holder = NULL, refresh_lease_until = NULL, \
                       last_error = COALESCE($3, last_error), \
                       last_error_at = CASE WHEN $3 IS NULL THEN last_error_at ELSE $4 END \
                     WHERE integration_id = $1 AND refresh_lease_holder = $2",
                )
                .bind(integration_id)
                .bind(holder)
                .bind(error)
                .bind(now.unix_micros())
                .execute(self.writer())
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(())
            }

            async fn store_oauth2_token(
                &self,
                token: &$crate::oauth2::OAuth2TokenRecord,
                holder: &str,
                rotated: Option<&$crate::catalog::NewSecretVersion>,
            ) -> Result<$crate::oauth2::StoreTokenOutcome, $crate::StoreError> {
                use sqlx::Row as _;
                use $crate::oauth2::StoreTokenOutcome;
                let map = $crate::sql::map_sqlx;
                let id = &token.integration_id;
                let now = token.obtained_at.unix_micros();
                let release = |tx: sqlx::Transaction<'static, $db>| async move {
                    tx.rollback().await.map_err(map)?;
                    sqlx::query(
                        "UPDATE oauth2_tokens SET refresh_lease_holder = NULL, refresh_lease_until = NULL \
                         WHERE integration_id = $1 AND refresh_lease_holder = $2",
                    )
                    .bind(id)
                    .bind(holder)
                    .execute(self.writer())
                    .await
                    .map_err(map)?;
                    Ok::<(), $crate::StoreError>(())
                };
                let mut tx = self.writer().begin().await.map_err(map)?;
                let live = sqlx::query(
                    "SELECT integration_id FROM integrations WHERE integration_id = $1 AND deleted_at IS NULL",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map)?;
                if live.is_none() {
                    tx.rollback().await.map_err(map)?;
                    return Ok(StoreTokenOutcome::IntegrationGone);
                }
                if let Some(rotated) = rotated {
                    let newest: Option<i64> = sqlx::query(
                        "SELECT MAX(version) AS newest FROM secret_versions WHERE integration_id = $1",
                    )
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map)?
                    .try_get("newest")
                    .map_err($crate::sql::corrupt)?;
                    let next = newest.unwrap_or(0).saturating_add(1);
                    if $crate::sql::catalog::to_i64(rotated.version)? != next
                        || rotated.version != token.secret_version
                    {
                        release(tx).await?;
                        return Ok(StoreTokenOutcome::SecretVersionTaken);
                    }
                    match Self::insert_secret_version_tx(&mut tx, id, rotated).await {
                        Ok(()) => {}
                        Err($crate::StoreError::Conflict(_)) => {
                            release(tx).await?;
                            return Ok(StoreTokenOutcome::SecretVersionTaken);
                        }
                        Err(other) => return Err(other),
                    }
                }
                Self::insert_envelope_tx(&mut tx, &token.access_token, token.obtained_at).await?;
                // The token it replaces is shredded.
                sqlx::query(
                    "UPDATE envelopes SET body = '', destroyed_at = $2 WHERE destroyed_at IS NULL AND envelope_id = \
                     (SELECT token_envelope_id FROM oauth2_tokens WHERE integration_id = $1)",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                sqlx::query(
                    "INSERT INTO oauth2_tokens (integration_id, secret_version, token_envelope_id, expires_at, \
                       obtained_at, refresh_lease_holder, refresh_lease_until, last_error, last_error_at) \
                     VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL, NULL) \
                     ON CONFLICT (integration_id) DO UPDATE SET secret_version = excluded.secret_version, \
                       token_envelope_id = excluded.token_envelope_id, expires_at = excluded.expires_at, \
                       obtained_at = excluded.obtained_at, last_error = NULL, last_error_at = NULL, \
                       refresh_lease_holder = CASE WHEN oauth2_tokens.refresh_lease_holder = $6 THEN NULL \
                         ELSE oauth2_tokens.refresh_lease_holder END, \
                       refresh_lease_until = CASE WHEN oauth2_tokens.refresh_lease_holder = $6 THEN NULL \
                         ELSE oauth2_tokens.refresh_lease_until END",
                )
                .bind(id)
                .bind($crate::sql::catalog::to_i64(token.secret_version)?)
                .bind(&token.access_token.envelope_id)
                .bind(token.expires_at.unix_micros())
                .bind(now)
                .bind(holder)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
                tx.commit().await.map_err(map)?;
                Ok(StoreTokenOutcome::Stored)
            }

            async fn drop_oauth2_token(
                &self,
                integration_id: &steward_types::IntegrationId,
                envelope_id: &str,
                now: steward_types::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let map = $crate::sql::map_sqlx;
                let mut tx = self.writer().begin().await.map_err(map)?;
                let dropped = sqlx::query(
                    "UPDATE oauth2_tokens SET token_envelope_id = NULL, secret_version = NULL, expires_at = NULL, \
                       obtained_at = NULL WHERE integration_id = $1 AND token_envelope_id = $2",
                )
                .bind(integration_id)
                .bind(envelope_id)
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
                if dropped == 1 {
                    sqlx::query(
                        "UPDATE envelopes SET body = '', destroyed_at = $2 WHERE envelope_id = $1 AND destroyed_at IS NULL",
                    )
                    .bind(envelope_id)
                    .bind(now.unix_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
                }
                tx.commit().await.map_err(map)?;
                Ok(dropped == 1)
            }
        }
    };
}

pub(crate) use impl_oauth2_store;
