-- Decision 0008 (docs/decisions/0008-binding-approvals-idempotency.md).

-- One pending approval per descriptor (pipeline.md "Approvals": while one is pending, the same
-- descriptor digest gets the same approval), enforced by the database, so concurrent requests on any
-- number of instances cannot create two. A pending approval keeps its stored status after it expires
-- (status is computed at read time); when a new approval of the same digest takes its place it is
-- marked `superseded_at` instead, which takes it out of the index and changes nothing a reader sees.
ALTER TABLE approvals ADD COLUMN superseded_at INTEGER;

-- Rows written before this migration may hold several 'pending' approvals of one digest (expired
-- ones, and live duplicates of concurrent requests): all but the newest are superseded now.
UPDATE approvals SET superseded_at = CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
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
