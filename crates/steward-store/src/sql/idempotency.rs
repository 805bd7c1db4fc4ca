//! `impl_idempotency_store!`: the SQL of [`crate::idempotency::IdempotencyStore`] for both backends.
//! Uses `insert_envelope_tx` and `envelope_from_row` of the backend type, so it is expanded beside
//! `impl_store!`.

macro_rules! impl_idempotency_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::idempotency::IdempotencyStore for $store {
            async fn idempotency_record(
                &self,
                scope: &$crate::idempotency::IdempotencyScope,
                now: steward_types::Timestamp,
            ) -> Result<Option<$crate::idempotency::IdempotencyRecord>, $crate::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT r.request_digest, r.created_at, r.expires_at, e.envelope_id AS e_envelope_id, \
                     e.kek_id AS e_kek_id, e.aad AS e_aad, e.body AS e_body \
                     FROM idempotency_records r JOIN envelopes e ON e.envelope_id = r.response_envelope_id \
                     WHERE r.tenant_id = $1 AND r.workload_id = $2 AND r.integration_id = $3 \
                     AND r.idempotency_key = $4 AND r.status = 'completed' AND r.expires_at > $5",
                )
                .bind(&scope.tenant_id)
                .bind(&scope.workload_id)
                .bind(&scope.integration_id)
                .bind(&scope.key)
                .bind(now.unix_micros())
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some($crate::idempotency::IdempotencyRecord {
                    scope: scope.clone(),
                    request_digest: row.try_get("request_digest").map_err($crate::sql::corrupt)?,
                    response: Self::envelope_from_row(&row, "e_")?,
                    created_at: $crate::sql::timestamp(row.try_get("created_at").map_err($crate::sql::corrupt)?)?,
                    expires_at: $crate::sql::timestamp(row.try_get("expires_at").map_err($crate::sql::corrupt)?)?,
                }))
            }

            async fn store_idempotency_record(
                &self,
                record: &$crate::idempotency::IdempotencyRecord,
                now: steward_types::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let scope = &record.scope;
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                // An expired record of the same scope gives way; its stored response is shredded.
                sqlx::query(
                    "UPDATE envelopes SET body = '', destroyed_at = $5 WHERE envelope_id IN \
                     (SELECT response_envelope_id FROM idempotency_records WHERE tenant_id = $1 AND workload_id = $2 \
                     AND integration_id = $3 AND idempotency_key = $4 AND expires_at <= $5)",
                )
                .bind(&scope.tenant_id)
                .bind(&scope.workload_id)
                .bind(&scope.integration_id)
                .bind(&scope.key)
                .bind(now.unix_micros())
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                sqlx::query(
                    "DELETE FROM idempotency_records WHERE tenant_id = $1 AND workload_id = $2 \
                     AND integration_id = $3 AND idempotency_key = $4 AND expires_at <= $5",
                )
                .bind(&scope.tenant_id)
                .bind(&scope.workload_id)
                .bind(&scope.integration_id)
                .bind(&scope.key)
                .bind(now.unix_micros())
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                Self::insert_envelope_tx(&mut tx, &record.response, record.created_at).await?;
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_records (tenant_id, workload_id, integration_id, idempotency_key, \
                     request_digest, status, response_envelope_id, created_at, completed_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, 'completed', $6, $7, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(&scope.tenant_id)
                .bind(&scope.workload_id)
                .bind(&scope.integration_id)
                .bind(&scope.key)
                .bind(&record.request_digest)
                .bind(&record.response.envelope_id)
                .bind(record.created_at.unix_micros())
                .bind(record.expires_at.unix_micros())
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?
                .rows_affected();
                if inserted == 0 {
                    // An unexpired record exists: keep it, and do not leave our envelope behind.
                    tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                    return Ok(false);
                }
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok(true)
            }
        }
    };
}

pub(crate) use impl_idempotency_store;
