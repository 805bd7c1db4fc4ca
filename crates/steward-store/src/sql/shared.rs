//! `impl_store!`: the one implementation of [`crate::Store`] for both backends.
//!
//! A macro rather than generics over `sqlx::Database` because the trait bounds sqlx needs for a
//! generic executor are long and brittle, while the SQL below is plain and identical in both
//! dialects. The backend type must provide:
//! - `fn reader(&self) -> &sqlx::Pool<DB>` and `fn writer(&self) -> &sqlx::Pool<DB>`;
//! - `async fn lock_deployment(tx: &mut sqlx::Transaction<'_, DB>) -> Result<(), StoreError>`, which
//!   serializes concurrent `initialize_deployment` calls (an advisory lock on PostgreSQL);
//! - `async fn append_audit_rows(&self, events: &[audit::StoredEvent]) -> Result<(), StoreError>`,
//!   which writes a non-empty batch of chained audit events in one transaction.

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal) => {
        impl $store {
            async fn insert_envelope_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                envelope: &$crate::EnvelopeRecord,
                created_at: steward_types::Timestamp,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO envelopes (envelope_id, kek_id, aad, body, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&envelope.envelope_id)
                .bind(&envelope.kek_id)
                .bind(&envelope.aad)
                .bind(&envelope.body)
                .bind(created_at.unix_micros())
                .execute(&mut **tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(())
            }

            /// Retires the active manifest signing key and makes `new` the active one, inside `tx`;
            /// the caller holds the rotation lock (`lock_key_rotation`).
            async fn activate_signing_key_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                new: &$crate::SigningKeyRecord,
                now: steward_types::Timestamp,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query("UPDATE manifest_signing_keys SET active = $1, retired_at = $2 WHERE active")
                    .bind(false)
                    .bind(now.unix_micros())
                    .execute(&mut **tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                Self::insert_envelope_tx(tx, &new.private_key, now).await?;
                sqlx::query(
                    "INSERT INTO manifest_signing_keys (kid, public_key, private_key_envelope_id, active, created_at, \
                     retired_at) VALUES ($1, $2, $3, $4, $5, NULL)",
                )
                .bind(new.kid.as_str())
                .bind(&new.public_key)
                .bind(&new.private_key.envelope_id)
                .bind(true)
                .bind(new.created_at.unix_micros())
                .execute(&mut **tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(())
            }

            async fn insert_admin_token_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                token: &$crate::AdminTokenRecord,
            ) -> Result<(), $crate::StoreError> {
                let tenant_ids = serde_json::to_string(&token.tenant_ids).map_err($crate::sql::corrupt)?;
                sqlx::query(
                    "INSERT INTO admin_tokens (token_id, name, role, tenant_ids, token_hash, created_at, \
                     expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(token.token_id.as_str())
                .bind(&token.name)
                .bind(token.role.as_str())
                .bind(tenant_ids)
                .bind(&token.token_hash[..])
                .bind(token.created_at.unix_micros())
                .bind(token.expires_at.map(|t| t.unix_micros()))
                .bind(token.revoked_at.map(|t| t.unix_micros()))
                .execute(&mut **tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(())
            }

            fn envelope_from_row(
                row: &<$db as sqlx::Database>::Row,
                prefix: &str,
            ) -> Result<$crate::EnvelopeRecord, $crate::StoreError> {
                use sqlx::Row as _;
                let get = |column: &str| -> Result<String, $crate::StoreError> {
                    row.try_get::<String, _>(format!("{prefix}{column}").as_str()).map_err($crate::sql::corrupt)
                };
                Ok($crate::EnvelopeRecord {
                    envelope_id: get("envelope_id")?,
                    kek_id: get("kek_id")?,
                    aad: get("aad")?,
                    body: get("body")?,
                })
            }

            fn checkpoint_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::audit::Checkpoint, $crate::StoreError> {
                use sqlx::Row as _;
                let id: String = row.try_get("checkpoint_id").map_err($crate::sql::corrupt)?;
                let heads: String = row.try_get("heads").map_err($crate::sql::corrupt)?;
                let (heads, tenant_signatures) = $crate::audit::Checkpoint::parse_heads_column(&heads)?;
                Ok($crate::audit::Checkpoint {
                    checkpoint_id: steward_types::CheckpointId::parse(&id).map_err($crate::sql::corrupt)?,
                    writer_id: row.try_get("writer_id").map_err($crate::sql::corrupt)?,
                    created_at: $crate::sql::timestamp(row.try_get("created_at").map_err($crate::sql::corrupt)?)?,
                    heads,
                    kid: row.try_get("kid").map_err($crate::sql::corrupt)?,
                    signature: row.try_get("signature").map_err($crate::sql::corrupt)?,
                    tenant_signatures,
                })
            }

            fn head_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::audit::ChainHead, $crate::StoreError> {
                use sqlx::Row as _;
                Ok($crate::audit::ChainHead {
                    chain_id: row.try_get("chain_id").map_err($crate::sql::corrupt)?,
                    tenant_id: row.try_get("tenant_id").map_err($crate::sql::corrupt)?,
                    writer_id: row.try_get("writer_id").map_err($crate::sql::corrupt)?,
                    seq: row.try_get("seq").map_err($crate::sql::corrupt)?,
                    hash: row.try_get("hash").map_err($crate::sql::corrupt)?,
                    event_id: row.try_get("event_id").map_err($crate::sql::corrupt)?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            async fn ping(&self) -> Result<(), $crate::StoreError> {
                sqlx::query("SELECT 1").execute(self.reader()).await.map_err($crate::sql::map_sqlx)?;
                Ok(())
            }

            async fn change_counter(&self) -> Result<i64, $crate::StoreError> {
                let (value,): (i64,) = sqlx::query_as("SELECT value FROM change_counter WHERE id = 1")
                    .fetch_one(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                Ok(value)
            }

            fn backend(&self) -> &'static str {
                $backend
            }

            async fn deployment(&self) -> Result<Option<$crate::Deployment>, $crate::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT d.ca_cert_pem, d.created_at, \
                       ck.envelope_id AS ck_envelope_id, ck.kek_id AS ck_kek_id, ck.aad AS ck_aad, ck.body AS ck_body, \
                       ak.envelope_id AS ak_envelope_id, ak.kek_id AS ak_kek_id, ak.aad AS ak_aad, ak.body AS ak_body, \
                       k.kid, k.public_key, k.created_at AS k_created_at, k.retired_at AS k_retired_at, \
                       pk.envelope_id AS pk_envelope_id, pk.kek_id AS pk_kek_id, pk.aad AS pk_aad, pk.body AS pk_body \
                     FROM deployment d \
                     JOIN envelopes ck ON ck.envelope_id = d.ca_key_envelope_id \
                     JOIN envelopes ak ON ak.envelope_id = d.audit_key_envelope_id \
                     LEFT JOIN manifest_signing_keys k ON k.active \
                     LEFT JOIN envelopes pk ON pk.envelope_id = k.private_key_envelope_id \
                     WHERE d.id = 1",
                )
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                let Some(row) = row else { return Ok(None) };
                let kid: Option<String> = row.try_get("kid").map_err($crate::sql::corrupt)?;
                let Some(kid) = kid else {
                    return Err($crate::sql::corrupt("the deployment has no active manifest signing key"));
                };
                Ok(Some($crate::Deployment {
                    ca_cert_pem: row.try_get("ca_cert_pem").map_err($crate::sql::corrupt)?,
                    ca_key: Self::envelope_from_row(&row, "ck_")?,
                    audit_key: Self::envelope_from_row(&row, "ak_")?,
                    active_signing_key: $crate::SigningKeyRecord {
                        kid: steward_types::SigningKeyId::parse(&kid).map_err($crate::sql::corrupt)?,
                        public_key: row.try_get("public_key").map_err($crate::sql::corrupt)?,
                        private_key: Self::envelope_from_row(&row, "pk_")?,
                        created_at: $crate::sql::timestamp(row.try_get("k_created_at").map_err($crate::sql::corrupt)?)?,
                        retired_at: $crate::sql::opt_timestamp(row.try_get("k_retired_at").map_err($crate::sql::corrupt)?)?,
                    },
                    created_at: $crate::sql::timestamp(row.try_get("created_at").map_err($crate::sql::corrupt)?)?,
                }))
            }

            async fn initialize_deployment(
                &self,
                init: $crate::NewDeployment,
            ) -> Result<$crate::InitOutcome, $crate::StoreError> {
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                Self::lock_deployment(&mut tx).await?;
                let existing = sqlx::query("SELECT id FROM deployment WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                if existing.is_some() {
                    tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                    return Ok($crate::InitOutcome::AlreadyInitialized);
                }
                let at = init.created_at;
                Self::insert_envelope_tx(&mut tx, &init.ca_key, at).await?;
                Self::insert_envelope_tx(&mut tx, &init.audit_key, at).await?;
                Self::insert_envelope_tx(&mut tx, &init.signing_key.private_key, at).await?;
                sqlx::query(
                    "INSERT INTO deployment (id, ca_cert_pem, ca_key_envelope_id, audit_key_envelope_id, created_at) \
                     VALUES (1, $1, $2, $3, $4)",
                )
                .bind(&init.ca_cert_pem)
                .bind(&init.ca_key.envelope_id)
                .bind(&init.audit_key.envelope_id)
                .bind(at.unix_micros())
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                sqlx::query(
                    "INSERT INTO manifest_signing_keys (kid, public_key, private_key_envelope_id, active, created_at, \
                     retired_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(init.signing_key.kid.as_str())
                .bind(&init.signing_key.public_key)
                .bind(&init.signing_key.private_key.envelope_id)
                .bind(true)
                .bind(init.signing_key.created_at.unix_micros())
                .bind(init.signing_key.retired_at.map(|t| t.unix_micros()))
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                Self::insert_admin_token_tx(&mut tx, &init.owner_token).await?;
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok($crate::InitOutcome::Created)
            }

            async fn envelope_counts_by_kek(
                &self,
            ) -> Result<std::collections::BTreeMap<String, u64>, $crate::StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT kek_id, COUNT(*) AS n FROM envelopes WHERE destroyed_at IS NULL GROUP BY kek_id",
                )
                .fetch_all(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                let mut counts = std::collections::BTreeMap::new();
                for row in rows {
                    let kek_id: String = row.try_get("kek_id").map_err($crate::sql::corrupt)?;
                    let n: i64 = row.try_get("n").map_err($crate::sql::corrupt)?;
                    counts.insert(kek_id, u64::try_from(n).map_err($crate::sql::corrupt)?);
                }
                Ok(counts)
            }

            async fn list_envelopes(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::EnvelopeRecord>, $crate::StoreError> {
                // Every id sorts after the empty string, so "no cursor" needs no second query.
                let rows = sqlx::query(
                    "SELECT envelope_id, kek_id, aad, body FROM envelopes \
                     WHERE destroyed_at IS NULL AND envelope_id > $1 ORDER BY envelope_id LIMIT $2",
                )
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                rows.iter().map(|row| Self::envelope_from_row(row, "")).collect()
            }

            async fn replace_envelope(
                &self,
                envelope_id: &str,
                expected_kek_id: &str,
                new: &$crate::EnvelopeRecord,
            ) -> Result<bool, $crate::StoreError> {
                // The AAD is the envelope's identity and never changes on re-wrap.
                let done = sqlx::query(
                    "UPDATE envelopes SET kek_id = $1, body = $2 \
                     WHERE envelope_id = $3 AND kek_id = $4 AND destroyed_at IS NULL",
                )
                .bind(&new.kek_id)
                .bind(&new.body)
                .bind(envelope_id)
                .bind(expected_kek_id)
                .execute(self.writer())
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_admin_token(&self, token: &$crate::AdminTokenRecord) -> Result<(), $crate::StoreError> {
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                Self::insert_admin_token_tx(&mut tx, token).await?;
                tx.commit().await.map_err($crate::sql::map_sqlx)
            }

            async fn admin_token_by_hash(
                &self,
                token_hash: &[u8; 32],
            ) -> Result<Option<$crate::AdminTokenRecord>, $crate::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT token_id, name, role, tenant_ids, token_hash, created_at, expires_at, revoked_at \
                     FROM admin_tokens WHERE token_hash = $1",
                )
                .bind(&token_hash[..])
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                let Some(row) = row else { return Ok(None) };
                let token_id: String = row.try_get("token_id").map_err($crate::sql::corrupt)?;
                let role: String = row.try_get("role").map_err($crate::sql::corrupt)?;
                let tenant_ids: String = row.try_get("tenant_ids").map_err($crate::sql::corrupt)?;
                Ok(Some($crate::AdminTokenRecord {
                    token_id: steward_types::TokenId::parse(&token_id).map_err($crate::sql::corrupt)?,
                    name: row.try_get("name").map_err($crate::sql::corrupt)?,
                    role: $crate::AdminRole::parse(&role).ok_or_else(|| $crate::sql::corrupt(format!("unknown admin role {role:?}")))?,
                    tenant_ids: serde_json::from_str(&tenant_ids).map_err($crate::sql::corrupt)?,
                    token_hash: $crate::sql::hash32(row.try_get("token_hash").map_err($crate::sql::corrupt)?)?,
                    created_at: $crate::sql::timestamp(row.try_get("created_at").map_err($crate::sql::corrupt)?)?,
                    expires_at: $crate::sql::opt_timestamp(row.try_get("expires_at").map_err($crate::sql::corrupt)?)?,
                    revoked_at: $crate::sql::opt_timestamp(row.try_get("revoked_at").map_err($crate::sql::corrupt)?)?,
                }))
            }

            async fn append_audit_events(
                &self,
                events: &[$crate::audit::StoredEvent],
            ) -> Result<(), $crate::StoreError> {
                if events.is_empty() {
                    return Ok(());
                }
                // Each backend writes audit rows its own way (`append_audit_rows`): the embedded
                // store on a connection of its own, PostgreSQL in multi-row INSERTs.
                self.append_audit_rows(events).await
            }

            async fn audit_chain_heads(
                &self,
                tenant_id: Option<&str>,
            ) -> Result<Vec<$crate::audit::ChainHead>, $crate::StoreError> {
                let rows = match tenant_id {
                    // A tenant has a chain per writer that ever wrote for it: a handful, however many
                    // events. They are found by skipping from one chain id to the next on the
                    // (chain_tenant_id, chain_id, seq) index, and each head is one more look-up there,
                    // instead of grouping every event of the tenant.
                    Some(tenant_id) => {
                        sqlx::query(
                            "WITH RECURSIVE chains(chain_id) AS ( \
                               SELECT MIN(chain_id) FROM audit_events WHERE chain_tenant_id = $1 \
                               UNION ALL \
                               SELECT (SELECT MIN(a.chain_id) FROM audit_events a \
                                       WHERE a.chain_tenant_id = $1 AND a.chain_id > c.chain_id) \
                               FROM chains c WHERE c.chain_id IS NOT NULL) \
                             SELECT e.chain_id, e.chain_tenant_id AS tenant_id, e.writer_id, e.seq, e.hash, e.event_id \
                             FROM chains c JOIN audit_events e ON e.chain_tenant_id = $1 AND e.chain_id = c.chain_id \
                               AND e.seq = (SELECT MAX(m.seq) FROM audit_events m \
                                            WHERE m.chain_tenant_id = $1 AND m.chain_id = c.chain_id) \
                             ORDER BY e.chain_id",
                        )
                        .bind(tenant_id)
                        .fetch_all(self.reader())
                        .await
                    }
                    None => {
                        sqlx::query(
                            "SELECT e.chain_id, e.chain_tenant_id AS tenant_id, e.writer_id, e.seq, e.hash, e.event_id \
                             FROM audit_events e JOIN (SELECT chain_tenant_id, chain_id, MAX(seq) AS max_seq \
                               FROM audit_events GROUP BY chain_tenant_id, chain_id) m \
                             ON e.chain_tenant_id = m.chain_tenant_id AND e.chain_id = m.chain_id AND e.seq = m.max_seq \
                             ORDER BY e.chain_id",
                        )
                        .fetch_all(self.reader())
                        .await
                    }
                }
                .map_err($crate::sql::map_sqlx)?;
                rows.iter().map(Self::head_from_row).collect()
            }

            async fn audit_chain_rows(
                &self,
                chain_id: &str,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<$crate::audit::StoredRow>, $crate::StoreError> {
                use sqlx::Row as _;
                // A chain's events are found under its tenant, the first part of its id
                // (`<tenant>/<writer>`, `audit::chain_id_for`): the (chain_tenant_id, chain_id, seq) index.
                let tenant = chain_id.split_once('/').map_or(chain_id, |(tenant, _)| tenant);
                if $backend == "sqlite" {
                    // sqlx-sqlite hands every row from its worker thread to the caller separately (a
                    // thread wake-up each); verification reads millions. So the page comes back as
                    // one value: each row's seq, writer id and body, the texts prefixed by their
                    // length in bytes (`<seq>:<len>:<text><len>:<text>`), which no stored text can break.
                    // No `ORDER BY` inside `group_concat`: it copies every row into a temporary
                    // B-tree to sort what the subquery already delivers in order; the unpacking
                    // puts the rows in seq order should they ever come otherwise.
                    let packed: Option<String> = sqlx::query_scalar(
                        "SELECT group_concat(seq || ':' || length(CAST(writer_id AS BLOB)) || ':' || writer_id \
                           || length(CAST(body AS BLOB)) || ':' || body, '') \
                         FROM (SELECT seq, writer_id, body FROM audit_events \
                               WHERE chain_tenant_id = $1 AND chain_id = $2 AND seq > $3 ORDER BY seq LIMIT $4)",
                    )
                    .bind(tenant)
                    .bind(chain_id)
                    .bind(after_seq)
                    .bind(i64::from(limit))
                    .fetch_one(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                    return $crate::sql::unpack_chain_page(packed.as_deref().unwrap_or_default());
                }
                let rows = sqlx::query(
                    "SELECT seq, writer_id, body FROM audit_events \
                     WHERE chain_tenant_id = $1 AND chain_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
                )
                .bind(tenant)
                .bind(chain_id)
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::audit::StoredRow {
                            seq: row.try_get("seq").map_err($crate::sql::corrupt)?,
                            writer_id: row.try_get("writer_id").map_err($crate::sql::corrupt)?,
                            body: row.try_get("body").map_err($crate::sql::corrupt)?,
                        })
                    })
                    .collect()
            }

            async fn insert_checkpoint(
                &self,
                checkpoint: &$crate::audit::Checkpoint,
            ) -> Result<(), $crate::StoreError> {
                let heads = checkpoint.heads_column()?;
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                sqlx::query(
                    "INSERT INTO audit_checkpoints (checkpoint_id, writer_id, created_at, heads, kid, signature) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(checkpoint.checkpoint_id.as_str())
                .bind(&checkpoint.writer_id)
                .bind(checkpoint.created_at.unix_micros())
                .bind(heads)
                .bind(&checkpoint.kid)
                .bind(&checkpoint.signature)
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                for head in &checkpoint.heads {
                    sqlx::query(
                        "INSERT INTO audit_checkpoint_heads (checkpoint_id, chain_id, tenant_id, seq, hash, event_id) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(checkpoint.checkpoint_id.as_str())
                    .bind(&head.chain_id)
                    .bind(&head.tenant_id)
                    .bind(head.seq)
                    .bind(&head.hash)
                    .bind(&head.event_id)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                }
                tx.commit().await.map_err($crate::sql::map_sqlx)
            }

            async fn list_checkpoints(
                &self,
                tenant_id: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::audit::Checkpoint>, $crate::StoreError> {
                const SELECT: &str =
                    "SELECT c.checkpoint_id, c.writer_id, c.created_at, c.heads, c.kid, c.signature FROM audit_checkpoints c";
                const ORDER: &str = " ORDER BY c.created_at DESC, c.checkpoint_id DESC";
                let rows = match tenant_id {
                    Some(tenant_id) => {
                        sqlx::query(&format!(
                            "{SELECT} WHERE EXISTS (SELECT 1 FROM audit_checkpoint_heads h \
                             WHERE h.checkpoint_id = c.checkpoint_id AND h.tenant_id = $1){ORDER} LIMIT $2"
                        ))
                        .bind(tenant_id)
                        .bind(i64::from(limit))
                        .fetch_all(self.reader())
                        .await
                    }
                    None => {
                        sqlx::query(&format!("{SELECT}{ORDER} LIMIT $1"))
                            .bind(i64::from(limit))
                            .fetch_all(self.reader())
                            .await
                    }
                }
                .map_err($crate::sql::map_sqlx)?;
                rows.iter().map(Self::checkpoint_from_row).collect()
            }

            async fn latest_checkpointed_heads(
                &self,
                tenant_id: &str,
            ) -> Result<Vec<$crate::audit::ChainHead>, $crate::StoreError> {
                let rows = sqlx::query(
                    "SELECT DISTINCT h.chain_id, h.tenant_id, c.writer_id, h.seq, h.hash, h.event_id \
                     FROM audit_checkpoint_heads h \
                     JOIN audit_checkpoints c ON c.checkpoint_id = h.checkpoint_id \
                     JOIN (SELECT chain_id, MAX(seq) AS max_seq FROM audit_checkpoint_heads \
                           WHERE tenant_id = $1 GROUP BY chain_id) m \
                       ON h.chain_id = m.chain_id AND h.seq = m.max_seq \
                     WHERE h.tenant_id = $1 ORDER BY h.chain_id",
                )
                .bind(tenant_id)
                .fetch_all(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                rows.iter().map(Self::head_from_row).collect()
            }
        }
    };
}

pub(crate) use impl_store;
