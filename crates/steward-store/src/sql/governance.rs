//! `impl_governance_store!`: the SQL of [`crate::governance::GovernanceStore`] for both backends.
//!
//! Searches with optional filters build their SQL from fixed fragments and `$N` placeholders only;
//! every value is bound, never spliced into the text.

/// A value bound to a dynamically built statement.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// Collects `$N` placeholders and their values while a statement is built.
#[derive(Debug, Default)]
pub(crate) struct Binds(pub(crate) Vec<Bind>);

impl Binds {
    /// Adds a value and returns its placeholder.
    pub(crate) fn push(&mut self, bind: Bind) -> String {
        self.0.push(bind);
        format!("${}", self.0.len())
    }

    pub(crate) fn text(&mut self, value: &str) -> String {
        self.push(Bind::Text(value.to_owned()))
    }

    pub(crate) fn int(&mut self, value: i64) -> String {
        self.push(Bind::Int(value))
    }

    /// `column IN ($a, $b, …)`; an empty list matches nothing.
    pub(crate) fn in_list<V: AsRef<str>>(&mut self, column: &str, values: &[V]) -> String {
        if values.is_empty() {
            return "1 = 0".to_owned();
        }
        let placeholders: Vec<String> = values.iter().map(|v| self.text(v.as_ref())).collect();
        format!("{column} IN ({})", placeholders.join(", "))
    }
}

/// The WHERE fragment selecting approvals whose computed status is `status` at `$now`.
pub(crate) fn approval_status_sql(status: crate::governance::ApprovalStatus, now: &str) -> String {
    use crate::governance::ApprovalStatus as S;
    match status {
        S::Pending => format!("(a.status = 'pending' AND a.expires_at > {now})"),
        S::Approved => {
            format!("(a.status = 'approved' AND (a.mode = 'rule' OR a.expires_at > {now}))")
        }
        S::Expired => format!(
            "((a.status = 'pending' AND a.expires_at <= {now}) OR \
             (a.status = 'approved' AND a.mode = 'once' AND a.expires_at <= {now}))"
        ),
        S::Denied => "(a.status = 'denied')".to_owned(),
        S::Canceled => "(a.status = 'canceled')".to_owned(),
        S::Executed => "(a.status = 'executed')".to_owned(),
    }
}

pub(crate) const APPROVAL_SELECT: &str = "SELECT a.approval_id, a.tenant_id, a.workload_id, a.integration_id, \
     a.digest, a.descriptor, a.status, a.mode, a.proposed_rule, a.policy_id, a.reason, a.decided_by, \
     a.created_at, a.expires_at, a.decided_at, a.consumed_at, \
     p.envelope_id AS p_envelope_id, p.kek_id AS p_kek_id, p.aad AS p_aad, p.body AS p_body \
     FROM approvals a LEFT JOIN envelopes p ON p.envelope_id = a.preview_envelope_id";

macro_rules! impl_governance_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The first approval of (tenant, workload, integration, digest) unexpired at `now` that
            /// also meets `condition` (on alias `a`), in `order`: the two per-digest lookups.
            #[allow(clippy::too_many_arguments)]
            async fn approval_for_digest(
                &self,
                condition: &str,
                order: &str,
                tenant_id: &steward_types::TenantId,
                workload_id: &steward_types::WorkloadId,
                integration_id: &steward_types::IntegrationId,
                digest: &str,
                now: steward_types::Timestamp,
            ) -> Result<Option<$crate::governance::ApprovalRecord>, $crate::StoreError> {
                let sql = format!(
                    "{} WHERE a.tenant_id = $1 AND a.workload_id = $2 AND a.integration_id = $3 AND a.digest = $4 \
                     AND a.expires_at > $5 AND {condition} ORDER BY {order} LIMIT 1",
                    $crate::sql::governance::APPROVAL_SELECT
                );
                let row = sqlx::query(&sql)
                    .bind(tenant_id)
                    .bind(workload_id)
                    .bind(integration_id)
                    .bind(digest)
                    .bind(now.unix_micros())
                    .fetch_optional(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map(Self::approval_from_row).transpose()
            }

            fn approval_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::governance::ApprovalRecord, $crate::StoreError> {
                use sqlx::Row as _;
                use $crate::sql::corrupt;
                let get_text = |column: &str| -> Result<String, $crate::StoreError> {
                    row.try_get::<String, _>(column).map_err(corrupt)
                };
                let get_opt = |column: &str| -> Result<Option<String>, $crate::StoreError> {
                    row.try_get::<Option<String>, _>(column).map_err(corrupt)
                };
                let get_int = |column: &str| -> Result<i64, $crate::StoreError> {
                    row.try_get::<i64, _>(column).map_err(corrupt)
                };
                let get_opt_int = |column: &str| -> Result<Option<i64>, $crate::StoreError> {
                    row.try_get::<Option<i64>, _>(column).map_err(corrupt)
                };
                let state = get_text("status")?;
                let preview = match get_opt("p_envelope_id")? {
                    Some(envelope_id) => Some($crate::EnvelopeRecord {
                        envelope_id,
                        kek_id: get_text("p_kek_id")?,
                        aad: get_text("p_aad")?,
                        body: get_text("p_body")?,
                    }),
                    None => None,
                };
                let proposed_rule = match get_opt("proposed_rule")? {
                    Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
                    None => serde_json::Value::Null,
                };
                Ok($crate::governance::ApprovalRecord {
                    approval_id: row.try_get("approval_id").map_err(corrupt)?,
                    tenant_id: row.try_get("tenant_id").map_err(corrupt)?,
                    workload_id: row.try_get("workload_id").map_err(corrupt)?,
                    integration_id: row.try_get("integration_id").map_err(corrupt)?,
                    digest: get_text("digest")?,
                    descriptor: serde_json::from_str(&get_text("descriptor")?).map_err(corrupt)?,
                    preview,
                    proposed_rule,
                    state: $crate::governance::StoredApprovalState::parse(&state)
                        .ok_or_else(|| corrupt(format!("unknown approval state {state:?}")))?,
                    mode: match get_opt("mode")? {
                        Some(mode) => Some(
                            $crate::governance::ApprovalMode::parse(&mode)
                                .ok_or_else(|| corrupt(format!("unknown approval mode {mode:?}")))?,
                        ),
                        None => None,
                    },
                    policy_id: row.try_get("policy_id").map_err(corrupt)?,
                    reason: get_opt("reason")?,
                    decided_by: row.try_get("decided_by").map_err(corrupt)?,
                    created_at: $crate::sql::timestamp(get_int("created_at")?)?,
                    expires_at: $crate::sql::timestamp(get_int("expires_at")?)?,
                    decided_at: $crate::sql::opt_timestamp(get_opt_int("decided_at")?)?,
                    consumed_at: $crate::sql::opt_timestamp(get_opt_int("consumed_at")?)?,
                })
            }

            fn bind_all<'q>(
                mut query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
                binds: &'q [$crate::sql::governance::Bind],
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                for bind in binds {
                    query = match bind {
                        $crate::sql::governance::Bind::Text(value) => query.bind(value.as_str()),
                        $crate::sql::governance::Bind::Int(value) => query.bind(*value),
                    };
                }
                query
            }

            fn signing_key_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::SigningKeyRecord, $crate::StoreError> {
                use sqlx::Row as _;
                use $crate::sql::corrupt;
                Ok($crate::SigningKeyRecord {
                    kid: row.try_get("kid").map_err(corrupt)?,
                    public_key: row.try_get("public_key").map_err(corrupt)?,
                    private_key: Self::envelope_from_row(row, "pk_")?,
                    created_at: $crate::sql::timestamp(row.try_get("created_at").map_err(corrupt)?)?,
                    retired_at: $crate::sql::opt_timestamp(row.try_get("retired_at").map_err(corrupt)?)?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::governance::GovernanceStore for $store {
            async fn insert_approval(
                &self,
                approval: &$crate::governance::NewApproval,
            ) -> Result<(), $crate::StoreError> {
                let descriptor = serde_json::to_string(&approval.descriptor).map_err($crate::sql::corrupt)?;
                let proposed_rule =
                    serde_json::to_string(&approval.proposed_rule).map_err($crate::sql::corrupt)?;
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                if let Some(preview) = &approval.preview {
                    Self::insert_envelope_tx(&mut tx, preview, approval.created_at).await?;
                }
                sqlx::query(
                    "INSERT INTO approvals (approval_id, tenant_id, workload_id, integration_id, digest, descriptor, \
                     status, preview_envelope_id, proposed_rule, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10)",
                )
                .bind(approval.approval_id.as_str())
                .bind(&approval.tenant_id)
                .bind(&approval.workload_id)
                .bind(&approval.integration_id)
                .bind(&approval.digest)
                .bind(descriptor)
                .bind(approval.preview.as_ref().map(|p| p.envelope_id.as_str()))
                .bind(proposed_rule)
                .bind(approval.created_at.unix_micros())
                .bind(approval.expires_at.unix_micros())
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                tx.commit().await.map_err($crate::sql::map_sqlx)
            }

            async fn create_pending_approval(
                &self,
                approval: &$crate::governance::NewApproval,
            ) -> Result<$crate::governance::PendingApproval, $crate::StoreError> {
                use $crate::governance::PendingApproval;
                use $crate::sql::map_sqlx;
                let descriptor = serde_json::to_string(&approval.descriptor).map_err($crate::sql::corrupt)?;
                let proposed_rule =
                    serde_json::to_string(&approval.proposed_rule).map_err($crate::sql::corrupt)?;
                let now = approval.created_at.unix_micros();
                let pending_sql = format!(
                    "{} WHERE a.tenant_id = $1 AND a.workload_id = $2 AND a.integration_id = $3 AND a.digest = $4 \
                     AND a.status = 'pending' AND a.superseded_at IS NULL",
                    $crate::sql::governance::APPROVAL_SELECT
                );
                // A lost race ends with the winner's row; only if that row was decided between our
                // insert and our read is there nothing to return — then the insert is tried again.
                for _ in 0..3 {
                    let mut tx = self.writer().begin().await.map_err(map_sqlx)?;
                    // An expired pending approval of this digest leaves the unique index.
                    sqlx::query(
                        "UPDATE approvals SET superseded_at = $5 WHERE tenant_id = $1 AND workload_id = $2 \
                         AND integration_id = $3 AND digest = $4 AND status = 'pending' \
                         AND superseded_at IS NULL AND expires_at <= $5",
                    )
                    .bind(&approval.tenant_id)
                    .bind(&approval.workload_id)
                    .bind(&approval.integration_id)
                    .bind(&approval.digest)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                    if let Some(preview) = &approval.preview {
                        Self::insert_envelope_tx(&mut tx, preview, approval.created_at).await?;
                    }
                    // On PostgreSQL a concurrent uncommitted insert of the same digest makes this
                    // wait for it, then do nothing; on SQLite the single writer serializes them.
                    let inserted = sqlx::query(
                        "INSERT INTO approvals (approval_id, tenant_id, workload_id, integration_id, digest, \
                         descriptor, status, preview_envelope_id, proposed_rule, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                    )
                    .bind(approval.approval_id.as_str())
                    .bind(&approval.tenant_id)
                    .bind(&approval.workload_id)
                    .bind(&approval.integration_id)
                    .bind(&approval.digest)
                    .bind(&descriptor)
                    .bind(approval.preview.as_ref().map(|p| p.envelope_id.as_str()))
                    .bind(&proposed_rule)
                    .bind(now)
                    .bind(approval.expires_at.unix_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                    if inserted.rows_affected() == 1 {
                        let sql = format!("{} WHERE a.approval_id = $1", $crate::sql::governance::APPROVAL_SELECT);
                        let row = sqlx::query(&sql)
                            .bind(approval.approval_id.as_str())
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(map_sqlx)?;
                        let record = Self::approval_from_row(&row)?;
                        tx.commit().await.map_err(map_sqlx)?;
                        return Ok(PendingApproval::Created(record));
                    }
                    // Another request's approval is pending: ours (and its preview) is not written.
                    tx.rollback().await.map_err(map_sqlx)?;
                    let existing = sqlx::query(&pending_sql)
                        .bind(&approval.tenant_id)
                        .bind(&approval.workload_id)
                        .bind(&approval.integration_id)
                        .bind(&approval.digest)
                        .fetch_optional(self.writer())
                        .await
                        .map_err(map_sqlx)?;
                    if let Some(row) = existing {
                        return Ok(PendingApproval::Existing(Self::approval_from_row(&row)?));
                    }
                }
                Err($crate::StoreError::Conflict(format!(
                    "the pending approval for digest {} kept changing; retry",
                    approval.digest
                )))
            }

            async fn get_approval(
                &self,
                approval_id: &steward_types::ApprovalId,
            ) -> Result<Option<$crate::governance::ApprovalRecord>, $crate::StoreError> {
                let sql = format!("{} WHERE a.approval_id = $1", $crate::sql::governance::APPROVAL_SELECT);
                let row = sqlx::query(&sql)
                    .bind(approval_id.as_str())
                    .fetch_optional(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map(Self::approval_from_row).transpose()
            }

            async fn pending_approval_for_digest(
                &self,
                tenant_id: &steward_types::TenantId,
                workload_id: &steward_types::WorkloadId,
                integration_id: &steward_types::IntegrationId,
                digest: &str,
                now: steward_types::Timestamp,
            ) -> Result<Option<$crate::governance::ApprovalRecord>, $crate::StoreError> {
                let (condition, order) = ("a.status = 'pending'", "a.created_at DESC");
                self.approval_for_digest(condition, order, tenant_id, workload_id, integration_id, digest, now)
                    .await
            }

            async fn approved_once_for_digest(
                &self,
                tenant_id: &steward_types::TenantId,
                workload_id: &steward_types::WorkloadId,
                integration_id: &steward_types::IntegrationId,
                digest: &str,
                now: steward_types::Timestamp,
            ) -> Result<Option<$crate::governance::ApprovalRecord>, $crate::StoreError> {
                let condition = "a.status = 'approved' AND a.mode = 'once' AND a.consumed_at IS NULL";
                self.approval_for_digest(condition, "a.created_at ASC", tenant_id, workload_id, integration_id, digest, now)
                    .await
            }

            async fn has_approved_once(
                &self,
                tenant_id: &steward_types::TenantId,
                workload_id: &steward_types::WorkloadId,
                integration_id: &steward_types::IntegrationId,
                now: steward_types::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let row = sqlx::query(
                    "SELECT 1 FROM approvals WHERE tenant_id = $1 AND workload_id = $2 AND integration_id = $3 \
                     AND status = 'approved' AND mode = 'once' AND consumed_at IS NULL AND expires_at > $4 LIMIT 1",
                )
                .bind(tenant_id)
                .bind(workload_id)
                .bind(integration_id)
                .bind(now.unix_micros())
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(row.is_some())
            }

            async fn list_approvals(
                &self,
                filter: &$crate::governance::ApprovalFilter,
                limit: u32,
            ) -> Result<Vec<$crate::governance::ApprovalRecord>, $crate::StoreError> {
                let mut binds = $crate::sql::governance::Binds::default();
                let mut clauses: Vec<String> = Vec::new();
                if let Some(tenant_ids) = &filter.tenant_ids {
                    clauses.push(binds.in_list("a.tenant_id", tenant_ids));
                }
                if let Some(status) = filter.status {
                    let now = binds.int(filter.now.unix_micros());
                    clauses.push($crate::sql::governance::approval_status_sql(status, &now));
                }
                let limit = binds.int(i64::from(limit));
                let condition =
                    if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
                let sql = format!(
                    "{}{condition} ORDER BY a.created_at DESC, a.approval_id DESC LIMIT {limit}",
                    $crate::sql::governance::APPROVAL_SELECT
                );
                let rows = Self::bind_all(sqlx::query(&sql), &binds.0)
                    .fetch_all(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                rows.iter().map(Self::approval_from_row).collect()
            }

            async fn decide_approval(
                &self,
                decision: &$crate::governance::ApprovalDecision,
            ) -> Result<bool, $crate::StoreError> {
                let (status, mode) = match decision.outcome {
                    $crate::governance::DecisionOutcome::Approved(mode) => ("approved", Some(mode.as_str())),
                    $crate::governance::DecisionOutcome::Denied => ("denied", None),
                };
                let now = decision.decided_at.unix_micros();
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                let updated = sqlx::query(
                    "UPDATE approvals SET status = $1, mode = $2, policy_id = $3, reason = $4, decided_by = $5, \
                     decided_at = $6, expires_at = COALESCE($7, expires_at) \
                     WHERE approval_id = $8 AND status = 'pending' AND expires_at > $6",
                )
                .bind(status)
                .bind(mode)
                .bind(decision.policy.as_ref().map(|p| p.policy_id.as_str()))
                .bind(decision.reason.as_deref())
                .bind(&decision.decided_by)
                .bind(now)
                .bind(decision.expires_at.map(|t| t.unix_micros()))
                .bind(decision.approval_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                if updated.rows_affected() != 1 {
                    tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                    return Ok(false);
                }
                if let Some(policy) = &decision.policy {
                    let rule = serde_json::to_string(&policy.rule).map_err($crate::sql::corrupt)?;
                    sqlx::query(
                        "INSERT INTO policies (policy_id, tenant_id, integration_id, action_group, method, host, \
                         workload_id, rule_type, rule, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(&policy.policy_id)
                    .bind(&policy.tenant_id)
                    .bind(&policy.integration_id)
                    .bind(&policy.action_group)
                    .bind(&policy.method)
                    .bind(&policy.host)
                    .bind(policy.workload_id.as_ref())
                    .bind(&policy.rule_type)
                    .bind(rule)
                    .bind(policy.created_at.unix_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                }
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok(true)
            }

            async fn cancel_approval(
                &self,
                approval_id: &steward_types::ApprovalId,
                decided_by: &steward_types::TokenId,
                reason: Option<&str>,
                now: steward_types::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE approvals SET status = 'canceled', decided_by = $1, reason = $2, decided_at = $3 \
                     WHERE approval_id = $4 AND expires_at > $3 AND (status = 'pending' OR \
                       (status = 'approved' AND mode = 'once' AND consumed_at IS NULL))",
                )
                .bind(decided_by)
                .bind(reason)
                .bind(now.unix_micros())
                .bind(approval_id.as_str())
                .execute(self.writer())
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn consume_approval(
                &self,
                approval_id: &steward_types::ApprovalId,
                now: steward_types::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE approvals SET status = 'executed', consumed_at = $1 \
                     WHERE approval_id = $2 AND status = 'approved' AND mode = 'once' AND consumed_at IS NULL \
                       AND expires_at > $1",
                )
                .bind(now.unix_micros())
                .bind(approval_id.as_str())
                .execute(self.writer())
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn approval_webhook_url(&self, tenant_id: &steward_types::TenantId) -> Result<Option<String>, $crate::StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT approval_webhook_url FROM tenants WHERE tenant_id = $1")
                    .bind(tenant_id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                match row {
                    Some(row) => {
                        let url: Option<String> =
                            row.try_get("approval_webhook_url").map_err($crate::sql::corrupt)?;
                        Ok(url.filter(|u| !u.is_empty()))
                    }
                    None => Ok(None),
                }
            }

            async fn search_audit_events(
                &self,
                filter: &$crate::governance::AuditFilter,
                cursor: Option<&$crate::governance::AuditCursor>,
                order: $crate::governance::AuditOrder,
                limit: u32,
            ) -> Result<Vec<$crate::audit::AuditEvent>, $crate::StoreError> {
                use sqlx::Row as _;
                let mut binds = $crate::sql::governance::Binds::default();
                let mut clauses: Vec<String> = Vec::new();
                if let Some(tenant_ids) = &filter.tenant_ids {
                    clauses.push(binds.in_list("tenant_id", tenant_ids));
                }
                let equal = [
                    ("tenant_id", &filter.tenant_id),
                    ("workload_id", &filter.workload_id),
                    ("integration_id", &filter.integration_id),
                    ("event_type", &filter.event_type),
                    ("decision", &filter.decision),
                    ("action_group", &filter.action_group),
                    ("correlation_id", &filter.correlation_id),
                ];
                for (column, value) in equal {
                    if let Some(value) = value {
                        let placeholder = binds.text(value);
                        clauses.push(format!("{column} = {placeholder}"));
                    }
                }
                if let Some(since) = filter.since {
                    let placeholder = binds.int(since.unix_micros());
                    clauses.push(format!("occurred_at >= {placeholder}"));
                }
                if let Some(until) = filter.until {
                    let placeholder = binds.int(until.unix_micros());
                    clauses.push(format!("occurred_at < {placeholder}"));
                }
                let (comparison, direction) = match order {
                    $crate::governance::AuditOrder::NewestFirst => ("<", "DESC"),
                    $crate::governance::AuditOrder::OldestFirst => (">", "ASC"),
                };
                if let Some(cursor) = cursor {
                    let at = binds.int(cursor.timestamp.unix_micros());
                    let at_again = binds.int(cursor.timestamp.unix_micros());
                    let id = binds.text(&cursor.event_id);
                    // `occurred_at <=` (or `>=`) first, so the index scan starts at the cursor instead
                    // of walking past every event before it.
                    clauses.push(format!(
                        "occurred_at {comparison}= {at} AND (occurred_at {comparison} {at_again} OR event_id {comparison} {id})"
                    ));
                }
                let limit = binds.int(i64::from(limit));
                let condition =
                    if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
                let sql = format!(
                    "SELECT body FROM audit_events{condition} \
                     ORDER BY occurred_at {direction}, event_id {direction} LIMIT {limit}"
                );
                let rows = Self::bind_all(sqlx::query(&sql), &binds.0)
                    .fetch_all(self.reader())
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                rows.iter()
                    .map(|row| {
                        let body: String = row.try_get("body").map_err($crate::sql::corrupt)?;
                        serde_json::from_str(&body).map_err($crate::sql::corrupt)
                    })
                    .collect()
            }

            async fn rotate_signing_key(
                &self,
                new: &$crate::SigningKeyRecord,
                now: steward_types::Timestamp,
            ) -> Result<Option<steward_types::SigningKeyId>, $crate::StoreError> {
                use sqlx::Row as _;
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                // The same lock as the automatic rotation, so a manual and an automatic rotation on two
                // instances never race for the single active slot.
                Self::lock_key_rotation(&mut tx).await?;
                let old = sqlx::query("SELECT kid FROM manifest_signing_keys WHERE active")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                let old_kid: Option<steward_types::SigningKeyId> = match old {
                    Some(row) => Some(row.try_get("kid").map_err($crate::sql::corrupt)?),
                    None => None,
                };
                Self::activate_signing_key_tx(&mut tx, new, now).await?;
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok(old_kid)
            }

            async fn published_signing_keys(
                &self,
                retired_after: steward_types::Timestamp,
            ) -> Result<Vec<$crate::SigningKeyRecord>, $crate::StoreError> {
                let rows = sqlx::query(
                    "SELECT k.kid, k.public_key, k.created_at, k.retired_at, \
                       pk.envelope_id AS pk_envelope_id, pk.kek_id AS pk_kek_id, pk.aad AS pk_aad, pk.body AS pk_body \
                     FROM manifest_signing_keys k JOIN envelopes pk ON pk.envelope_id = k.private_key_envelope_id \
                     WHERE k.active OR k.retired_at > $1 ORDER BY k.created_at DESC, k.kid DESC",
                )
                .bind(retired_after.unix_micros())
                .fetch_all(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                rows.iter().map(Self::signing_key_from_row).collect()
            }
        }
    };
}

pub(crate) use impl_governance_store;
