-- Decision 0008 (docs/decisions/0008-binding-approvals-idempotency.md).

-- The change-counter triggers are deferred constraint triggers; PostgreSQL cannot build an index on
-- a table with trigger events still pending, so they fire right after each statement here.
SET CONSTRAINTS ALL IMMEDIATE;

-- One pending approval per descriptor (pipeline.md "Approvals": while one is pending, the same
-- descriptor digest gets the same approval), enforced by the database, so concurrent requests on any
-- number of instances cannot create two. A pending approval keeps its stored status after it expires
-- (status is computed at read time); when a new approval of the same digest takes its place it is
-- marked `superseded_at` instead, which takes it out of the index and changes nothing a reader sees.
ALTER TABLE approvals ADD COLUMN superseded_at BIGINT;

-- Rows written before this migration may hold several 'pending' approvals of one digest (expired
-- ones, and live duplicates of concurrent requests): all but the newest are superseded now.
UPDATE approvals SET superseded_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT
WHERE status = 'pending' AND EXISTS (
    SELECT 1 FROM approvals newer
    WHERE newer.tenant_id = approvals.tenant_id AND newer.workload_id = approvals.workload_id
      AND newer.integration_id = approvals.integration_id AND newer.digest = approvals.digest
      AND newer.status = 'pending'
      AND (newer.created_at > approvals.created_at
           OR (newer.created_at = approvals.created_at AND newer.approval_id > approvals.approval_id))
);

CREATE UNIQUE INDEX approvals_one_pending ON approvals (tenant_id, workload_id, integration_id, digest)
    WHERE status = 'pending' AND superseded_at IS NULL;

-- Host binding covers the injection (pipeline.md "Forwarding": a PATCH that changes the template or
-- injection can never send an existing secret somewhere new): each secret version records, as JSON,
-- the injection it was written for — the integration's own, else its template's default, else
-- bearer; bearer for OAuth2 secrets, which always go out as `Authorization: Bearer`. A version
-- whose injection differs from the effective one at execute time is never sent (403
-- `integration_hosts_changed`) until the secret is written again.
ALTER TABLE secret_versions ADD COLUMN bound_injection TEXT;

-- Existing versions are bound to the injection in effect now (the template version the integration
-- is pinned to, else its owner's latest).
UPDATE secret_versions s SET bound_injection = CASE
        WHEN s.secret_type <> 'api_key'
            THEN '{"format":"Bearer {secret}","name":"authorization","type":"header"}'
        WHEN i.injection <> 'null' THEN i.injection
        ELSE COALESCE(
            (SELECT NULLIF((t.body::jsonb -> 'default_injection')::text, 'null') FROM template_versions t
             WHERE t.owner_tenant_id = i.template_owner AND t.template_id = i.template_id
               AND t.version = COALESCE(i.template_version,
                   (SELECT MAX(v.version) FROM template_versions v
                    WHERE v.owner_tenant_id = i.template_owner AND v.template_id = i.template_id))),
            '{"format":"Bearer {secret}","name":"authorization","type":"header"}')
    END
FROM integrations i WHERE i.integration_id = s.integration_id;
