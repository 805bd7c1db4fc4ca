-- Audit storage at scale (decision 0022). `audit_events` is rebuilt with an INTEGER key in append
-- order (the rowid, made explicit) and the indexes audit search and verification use:
-- - `event_id` stays unique (the writer's UUIDv7s: a duplicate is refused with its whole batch);
-- - (chain_tenant_id, chain_id, seq), unique, replaces both (chain_id, seq) and (chain_tenant_id,
--   chain_id): one index serves the chain walk of verification and finding a tenant's chains;
-- - (X, occurred_at) for every search filter X, the `action_group` filter included (it had none)
--   and correlation id (which had (correlation_id) alone);
-- - (occurred_at) for searches by time alone (since/until, or no filter).
-- Existing events are copied in their order of time, so the new key keeps append order.
CREATE TABLE audit_events_v2 (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    chain_id        TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL,
    writer_id       TEXT NOT NULL,
    -- The chain's tenant: the event's tenant, or 'global' for events without one.
    chain_tenant_id TEXT NOT NULL,
    tenant_id       TEXT,
    occurred_at     INTEGER NOT NULL,
    workload_id     TEXT,
    integration_id  TEXT,
    event_type      TEXT NOT NULL,
    decision        TEXT,
    action_group    TEXT,
    correlation_id  TEXT,
    request_id      TEXT,
    body            TEXT NOT NULL,
    UNIQUE (chain_tenant_id, chain_id, seq)
);
INSERT INTO audit_events_v2 (event_id, chain_id, seq, prev_hash, hash, writer_id, chain_tenant_id, tenant_id,
    occurred_at, workload_id, integration_id, event_type, decision, action_group, correlation_id, request_id, body)
SELECT event_id, chain_id, seq, prev_hash, hash, writer_id, chain_tenant_id, tenant_id,
    occurred_at, workload_id, integration_id, event_type, decision, action_group, correlation_id, request_id, body
FROM audit_events ORDER BY occurred_at, event_id;
DROP TRIGGER audit_events_no_update;
DROP TRIGGER audit_events_no_delete;
DROP TABLE audit_events;
ALTER TABLE audit_events_v2 RENAME TO audit_events;

CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at);
CREATE INDEX audit_events_workload ON audit_events (workload_id, occurred_at);
CREATE INDEX audit_events_integration ON audit_events (integration_id, occurred_at);
CREATE INDEX audit_events_event_type ON audit_events (event_type, occurred_at);
CREATE INDEX audit_events_decision ON audit_events (decision, occurred_at);
CREATE INDEX audit_events_action_group ON audit_events (action_group, occurred_at);
CREATE INDEX audit_events_correlation ON audit_events (correlation_id, occurred_at);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
