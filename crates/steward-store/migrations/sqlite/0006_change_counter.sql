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
CREATE TABLE change_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO change_counter (id, value) VALUES (1, 0);

CREATE TRIGGER tenants_changed_update AFTER UPDATE ON tenants
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER tenants_changed_delete AFTER DELETE ON tenants
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER workloads_changed_update AFTER UPDATE ON workloads
WHEN OLD.tenant_id IS NOT NEW.tenant_id OR OLD.name IS NOT NEW.name OR OLD.san_uri IS NOT NEW.san_uri
  OR OLD.enabled IS NOT NEW.enabled OR OLD.ip_allowlist IS NOT NEW.ip_allowlist
  OR OLD.dpop_required IS NOT NEW.dpop_required OR OLD.created_at IS NOT NEW.created_at
  OR OLD.updated_at IS NOT NEW.updated_at OR OLD.deleted_at IS NOT NEW.deleted_at
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER workloads_changed_delete AFTER DELETE ON workloads
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER issued_certificates_changed_update AFTER UPDATE ON issued_certificates
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER issued_certificates_changed_delete AFTER DELETE ON issued_certificates
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER sessions_changed_update AFTER UPDATE ON sessions
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER sessions_changed_delete AFTER DELETE ON sessions
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;

-- A new version changes what "latest" means.
CREATE TRIGGER template_versions_changed_insert AFTER INSERT ON template_versions
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER template_versions_changed_update AFTER UPDATE ON template_versions
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER template_versions_changed_delete AFTER DELETE ON template_versions
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER integrations_changed_update AFTER UPDATE ON integrations
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER integrations_changed_delete AFTER DELETE ON integrations
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;

-- A new version is the new current secret.
CREATE TRIGGER secret_versions_changed_insert AFTER INSERT ON secret_versions
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER secret_versions_changed_update AFTER UPDATE ON secret_versions
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER secret_versions_changed_delete AFTER DELETE ON secret_versions
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;

-- Secrets are cached with their envelope: a KEK rotation rewraps it, deletion shreds it.
CREATE TRIGGER envelopes_changed_update AFTER UPDATE ON envelopes
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER envelopes_changed_delete AFTER DELETE ON envelopes
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;

-- A new rule is in force at once.
CREATE TRIGGER policies_changed_insert AFTER INSERT ON policies
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER policies_changed_update AFTER UPDATE ON policies
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER policies_changed_delete AFTER DELETE ON policies
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;

-- Decisions and consumption change which `once` approvals are usable (a new one is pending).
CREATE TRIGGER approvals_changed_update AFTER UPDATE ON approvals
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER approvals_changed_delete AFTER DELETE ON approvals
BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
