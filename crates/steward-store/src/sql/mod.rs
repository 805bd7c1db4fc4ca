//! What the SQLite and PostgreSQL stores share: error mapping, row conversions, and one
//! implementation of the [`crate::Store`] methods whose SQL is the same in both dialects (`$N`
//! placeholders work in sqlx-sqlite too). Each backend supplies only its pools and the few statements
//! that differ.

pub(crate) mod catalog;
pub(crate) mod governance;
mod idempotency;
pub(crate) mod identity;
mod oauth2;
mod shared;

pub(crate) use catalog::impl_catalog_store;
pub(crate) use governance::impl_governance_store;
pub(crate) use idempotency::impl_idempotency_store;
pub(crate) use identity::impl_identity_store;
pub(crate) use oauth2::impl_oauth2_store;
pub(crate) use shared::impl_store;

use steward_types::Timestamp;

use crate::StoreError;

/// The columns of `audit_events` an appended event fills, in the order of [`AuditRow`]'s fields.
pub(crate) const AUDIT_INSERT_COLUMNS: &str = "event_id, chain_id, seq, prev_hash, hash, writer_id, \
     chain_tenant_id, tenant_id, occurred_at, workload_id, integration_id, event_type, decision, \
     action_group, correlation_id, request_id, body";

/// A chained event as the `audit_events` row it is stored as: the values of
/// [`AUDIT_INSERT_COLUMNS`], in that order. Both backends' append paths bind these, so how an event
/// maps to its columns is written once.
pub(crate) struct AuditRow<'a> {
    pub event_id: &'a str,
    pub chain_id: &'a str,
    pub seq: i64,
    pub prev_hash: &'a str,
    pub hash: &'a str,
    pub writer_id: &'a str,
    pub chain_tenant_id: &'a str,
    pub tenant_id: Option<&'a str>,
    pub occurred_at: i64,
    pub workload_id: Option<&'a str>,
    pub integration_id: Option<&'a str>,
    pub event_type: &'static str,
    pub decision: Option<&'static str>,
    pub action_group: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub body: &'a str,
}

impl<'a> AuditRow<'a> {
    pub(crate) fn of(stored: &'a crate::audit::StoredEvent) -> Self {
        let event = stored.event();
        let chain = stored.chain();
        AuditRow {
            event_id: event.event_id.as_str(),
            chain_id: &chain.chain_id,
            seq: chain.seq,
            prev_hash: &chain.prev_hash,
            hash: &chain.hash,
            writer_id: stored.writer_id(),
            chain_tenant_id: event.chain_tenant(),
            tenant_id: event.tenant_id.as_deref(),
            occurred_at: event.timestamp.unix_micros(),
            workload_id: event.workload_id.as_deref(),
            integration_id: event.integration_id.as_deref(),
            event_type: event.event_type.as_str(),
            decision: event.decision.map(|d| d.as_str()),
            action_group: event.action_group.as_deref(),
            correlation_id: event.correlation_id.as_deref(),
            request_id: event.request_id.as_deref(),
            body: stored.body(),
        }
    }
}

/// Maps a driver error: anything that means "the database is not there right now" becomes
/// [`StoreError::Unavailable`] (503 `storage_unavailable`), a uniqueness violation [`StoreError::Conflict`].
pub(crate) fn map_sqlx(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_owned());
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL: class 08 (connection exception), 57P01..57P03 (admin/crash shutdown,
            // cannot connect now), 53300 (too many connections). SQLite: 5 (BUSY), 6 (LOCKED), 10 (IOERR).
            let unavailable = code.starts_with("08")
                || code.starts_with("57P")
                || code == "53300"
                || code == "5"
                || code == "6"
                || code.starts_with("10");
            if unavailable {
                StoreError::Unavailable(error.to_string())
            } else {
                StoreError::Database(error.to_string())
            }
        }
        _ => StoreError::Database(error.to_string()),
    }
}

pub(crate) fn map_migrate(error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::Execute(inner) => match map_sqlx(inner) {
            StoreError::Unavailable(message) => StoreError::Unavailable(message),
            other => StoreError::Migration(other.to_string()),
        },
        other => StoreError::Migration(other.to_string()),
    }
}

pub(crate) fn timestamp(micros: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_micros(micros).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn opt_timestamp(micros: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    micros.map(timestamp).transpose()
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| corrupt("a stored token hash is not 32 bytes"))
}

/// Splits a page of a chain packed by SQLite's `audit_chain_rows` — per row `<seq>:`, then
/// `<len>:<writer id>` and `<len>:<body>`, lengths in bytes — back into rows, in seq order.
pub(crate) fn unpack_chain_page(mut packed: &str) -> Result<Vec<crate::audit::StoredRow>, StoreError> {
    fn number<T: std::str::FromStr>(packed: &mut &str) -> Result<T, StoreError> {
        let (number, rest) =
            packed.split_once(':').ok_or_else(|| corrupt("a packed audit page is cut short"))?;
        *packed = rest;
        number.parse().map_err(|_| corrupt("a packed audit page has a bad number"))
    }
    fn text<'a>(packed: &mut &'a str) -> Result<&'a str, StoreError> {
        let len: usize = number(packed)?;
        let text = packed.get(..len).ok_or_else(|| corrupt("a packed audit page is cut short"))?;
        *packed = &packed[len..];
        Ok(text)
    }
    let mut rows = Vec::new();
    while !packed.is_empty() {
        let seq = number(&mut packed)?;
        let writer_id = text(&mut packed)?.to_owned();
        let body = text(&mut packed)?.to_owned();
        rows.push(crate::audit::StoredRow { seq, writer_id, body });
    }
    if !rows.is_sorted_by_key(|row| row.seq) {
        rows.sort_unstable_by_key(|row| row.seq);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::unpack_chain_page;

    #[test]
    fn packed_pages_split_by_length_whatever_the_text() {
        assert!(unpack_chain_page("").unwrap().is_empty());
        // A length that runs past the end, or text that is not a number, is refused.
        assert!(unpack_chain_page("1:5:wr_1").is_err());
        assert!(unpack_chain_page("1:x:wr_1").is_err());
        assert!(unpack_chain_page("x:4:wr_12:{}").is_err());
        assert!(unpack_chain_page("1:4:wr_1").is_err());
    }

    #[test]
    fn packed_pages_round_trip_multibyte_text_and_separators() {
        use crate::audit::{Actor, AuditEvent, ChainLink, EventType, GENESIS_HASH, StoredEvent};
        let at = steward_types::Timestamp::from_unix_micros(1_795_000_000_000_000).unwrap();
        let mut packed_rows = Vec::new();
        let mut expected = Vec::new();
        for n in 1..=3 {
            let mut event = AuditEvent::new(EventType::AdminAction, Actor::system("sys"), at)
                .with_metadata("note", serde_json::json!(format!("naïve 3:4 «{n}» 🎉\n")));
            event.chain = Some(ChainLink {
                chain_id: "global/wr_1".into(),
                seq: n,
                prev_hash: GENESIS_HASH.into(),
                hash: "00".into(),
            });
            let stored = StoredEvent::new(event, "wr_1".into()).unwrap();
            packed_rows.push(format!("{n}:{}:{}{}:{}", 4, "wr_1", stored.body().len(), stored.body()));
            expected.push(stored);
        }
        let rows = unpack_chain_page(&packed_rows.concat()).unwrap();
        // Rows packed out of order come back in seq order.
        packed_rows.rotate_left(1);
        assert_eq!(unpack_chain_page(&packed_rows.concat()).unwrap(), rows);
        assert_eq!(rows.iter().map(|row| row.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let events: Vec<StoredEvent> = rows.into_iter().map(|row| row.parse().unwrap()).collect();
        assert_eq!(events, expected);
    }
}
