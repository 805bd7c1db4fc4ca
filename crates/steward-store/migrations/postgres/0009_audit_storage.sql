-- Audit storage at scale (decision 0022): the indexes of `audit_events` are the ones audit search and
-- verification use.
-- - (chain_tenant_id, chain_id, seq), unique, replaces both (chain_id, seq) and (chain_tenant_id,
--   chain_id): one index serves the chain walk of verification and finding a tenant's chains.
-- - (X, occurred_at) for every search filter X, `action_group` included (it had none), and
--   (occurred_at) for searches by time alone (since/until, or no filter).
-- The `event_id` primary key stays.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_chain_id_seq_key;
DROP INDEX audit_events_chain_tenant;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_chain UNIQUE (chain_tenant_id, chain_id, seq);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_action_group ON audit_events (action_group, occurred_at);
-- Like every other filter, correlation id with time: the index gives "newest first" directly, so the
-- planner has no reason to walk the time index instead (it did, with no statistics yet).
DROP INDEX audit_events_correlation;
CREATE INDEX audit_events_correlation ON audit_events (correlation_id, occurred_at);
