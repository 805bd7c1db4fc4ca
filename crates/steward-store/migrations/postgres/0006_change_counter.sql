-- Change counter (issue 8): one number that every change to a record the data plane caches moves
-- forward, in the same transaction as the change. Each instance polls it (at least every second)
-- and drops its read cache when it moved, which is what lets the data plane cache sessions,
-- certificates, workloads, tenants, integrations, template versions, secrets and policies and still
-- see a revocation or a policy change within the spec's 1 s.
--
-- What does not move it, on purpose: new sessions, certificates, workloads, tenants, integrations
-- and pending approvals (the cache only holds records it found, so a new row is never hidden by
-- it), audit events, idempotency records and OAuth2 access tokens (never cached). Updates of a
-- workload that change nothing (the row lock taken by session creation and enrollment) do not move
-- it either, so creating a session does not empty every instance's cache.
--
-- The triggers are deferred constraint triggers: they run at commit, after every other statement
-- of the transaction, so the counter row is always the last lock a transaction takes and cannot be
-- part of a deadlock cycle. The counter moves once per transaction (a transaction-local setting
-- remembers that it did), however many rows changed.
CREATE TABLE change_counter (
    id    SMALLINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO change_counter (id, value) VALUES (1, 0);

CREATE FUNCTION steward_bump_change_counter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('steward.change_counted', true), '') <> 'yes' THEN
        UPDATE change_counter SET value = value + 1 WHERE id = 1;
        PERFORM set_config('steward.change_counted', 'yes', true);
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER tenants_changed AFTER UPDATE OR DELETE ON tenants
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION steward_bump_change_counter();

CREATE CONSTRAINT TRIGGER workloads_changed_update AFTER UPDATE ON workloads
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION steward_bump_change_counter();
CREATE CONSTRAINT TRIGGER workloads_changed_delete AFTER DELETE ON workloads
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION steward_bump_change_counter();

CREATE CONSTRAINT TRIGGER issued_certificates_changed AFTER UPDATE OR DELETE ON issued_certificates
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION steward_bump_change_counter();

CREATE CONSTRAINT TRIGGER sessions_changed AFTER UPDATE OR DELETE ON sessions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION steward_bump_change_counter();

-- A new version changes what "latest" means.
CREATE CONSTRAINT TRIGGER template_versions_changed AFTER INSERT OR UPDATE OR DELETE ON template_versions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION steward_bump_change_counter();

CREATE CONSTRAINT TRIGGER integrations_changed AFTER UPDATE OR DELETE ON integrations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION steward_bump_change_counter();

-- A new version is the new current secret.
CREATE CONSTRAINT TRIGGER secret_versions_changed AFTER INSERT OR UPDATE OR DELETE ON secret_versions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION steward_bump_change_counter();

-- Secrets are cached with their envelope: a KEK rotation rewraps it, deletion shreds it.
CREATE CONSTRAINT TRIGGER envelopes_changed AFTER UPDATE OR DELETE ON envelopes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION steward_bump_change_counter();

-- A new rule is in force at once.
CREATE CONSTRAINT TRIGGER policies_changed AFTER INSERT OR UPDATE OR DELETE ON policies
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION steward_bump_change_counter();

-- Decisions and consumption change which `once` approvals are usable (a new one is pending).
CREATE CONSTRAINT TRIGGER approvals_changed AFTER UPDATE OR DELETE ON approvals
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION steward_bump_change_counter();
