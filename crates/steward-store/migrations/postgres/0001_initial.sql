-- Steward's whole data model (PostgreSQL). Conventions shared with the SQLite schema: timestamps are
-- BIGINT unix microseconds, JSON is TEXT (the application owns its shape), ids are TEXT, bytes BYTEA.
-- Every secret lives in `envelopes`; other tables only reference an envelope by id.

CREATE TABLE envelopes (
    envelope_id  TEXT PRIMARY KEY,
    kek_id       TEXT NOT NULL,
    aad          TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    -- Set when the ciphertext was crypto-shredded; the row stays so references keep resolving.
    destroyed_at BIGINT
);
CREATE INDEX envelopes_kek ON envelopes (kek_id) WHERE destroyed_at IS NULL;

-- The deployment singleton: exactly one row, id 1, written by `steward init`.
CREATE TABLE deployment (
    id                     INTEGER PRIMARY KEY CHECK (id = 1),
    ca_cert_pem            TEXT NOT NULL,
    ca_key_envelope_id     TEXT NOT NULL REFERENCES envelopes (envelope_id),
    audit_key_envelope_id  TEXT NOT NULL REFERENCES envelopes (envelope_id),
    created_at             BIGINT NOT NULL
);

CREATE TABLE manifest_signing_keys (
    kid                     TEXT PRIMARY KEY,
    public_key              BYTEA NOT NULL,
    private_key_envelope_id TEXT NOT NULL REFERENCES envelopes (envelope_id),
    active                  BOOLEAN NOT NULL,
    created_at              BIGINT NOT NULL,
    retired_at              BIGINT
);
-- At most one active key, enforced by the database so two instances rotating at once cannot both win.
CREATE UNIQUE INDEX manifest_signing_keys_one_active ON manifest_signing_keys (active) WHERE active;

CREATE TABLE admin_tokens (
    token_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    tenant_ids  TEXT NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE tenants (
    tenant_id            TEXT PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    dpop_required        BOOLEAN NOT NULL DEFAULT FALSE,
    approval_webhook_url TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE workloads (
    workload_id   TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (tenant_id),
    name          TEXT NOT NULL,
    san_uri       TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    ip_allowlist  TEXT NOT NULL DEFAULT '[]',
    dpop_required BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    deleted_at    BIGINT,
    UNIQUE (tenant_id, name)
);

CREATE TABLE enrollment_tokens (
    token_id      TEXT PRIMARY KEY,
    workload_id   TEXT NOT NULL REFERENCES workloads (workload_id),
    token_hash    BYTEA NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT,
    -- Set when a newer token was issued for the workload: earlier unused tokens stop working.
    superseded_at BIGINT
);
CREATE INDEX enrollment_tokens_workload ON enrollment_tokens (workload_id);

CREATE TABLE issued_certificates (
    serial              TEXT PRIMARY KEY,
    workload_id         TEXT NOT NULL REFERENCES workloads (workload_id),
    not_before          BIGINT NOT NULL,
    not_after           BIGINT NOT NULL,
    thumbprint          TEXT NOT NULL UNIQUE,
    -- The original enrollment time, carried over by renewals, bounding the identity's lifetime.
    identity_started_at BIGINT NOT NULL,
    issued_at           BIGINT NOT NULL,
    revoked_at          BIGINT
);
CREATE INDEX issued_certificates_workload ON issued_certificates (workload_id);

CREATE TABLE sessions (
    session_id      TEXT PRIMARY KEY,
    workload_id     TEXT NOT NULL REFERENCES workloads (workload_id),
    token_hash      BYTEA NOT NULL UNIQUE,
    scopes          TEXT NOT NULL,
    cert_thumbprint TEXT NOT NULL,
    dpop_jkt        TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX sessions_workload_created ON sessions (workload_id, created_at);

CREATE TABLE template_versions (
    -- A tenant id or 'global' (no foreign key: 'global' is not a tenant row).
    owner_tenant_id TEXT NOT NULL,
    template_id     TEXT NOT NULL,
    version         BIGINT NOT NULL,
    provider        TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (owner_tenant_id, template_id, version)
);

CREATE TABLE integrations (
    integration_id   TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (tenant_id),
    name             TEXT NOT NULL,
    provider         TEXT NOT NULL,
    template_owner   TEXT NOT NULL,
    template_id      TEXT NOT NULL,
    -- NULL: follow the owner's latest version.
    template_version BIGINT,
    injection        TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL DEFAULT TRUE,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    deleted_at       BIGINT,
    UNIQUE (tenant_id, name)
);

CREATE TABLE secret_versions (
    integration_id      TEXT NOT NULL REFERENCES integrations (integration_id),
    version             BIGINT NOT NULL,
    envelope_id         TEXT NOT NULL REFERENCES envelopes (envelope_id),
    secret_type         TEXT NOT NULL,
    -- The hosts this secret was entered for; it is never sent anywhere else.
    bound_hosts         TEXT NOT NULL,
    oauth2_config       TEXT,
    -- The cached OAuth2 access token, sealed.
    token_envelope_id   TEXT REFERENCES envelopes (envelope_id),
    created_at          BIGINT NOT NULL,
    PRIMARY KEY (integration_id, version)
);

CREATE TABLE policies (
    policy_id        TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (tenant_id),
    integration_id   TEXT NOT NULL REFERENCES integrations (integration_id),
    action_group     TEXT NOT NULL,
    method           TEXT NOT NULL,
    host             TEXT NOT NULL,
    workload_id      TEXT,
    rule_type        TEXT NOT NULL,
    rule             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    disabled_at      BIGINT
);
CREATE INDEX policies_match ON policies (tenant_id, integration_id, action_group) WHERE disabled_at IS NULL;

CREATE TABLE approvals (
    approval_id         TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (tenant_id),
    workload_id         TEXT NOT NULL REFERENCES workloads (workload_id),
    integration_id      TEXT NOT NULL REFERENCES integrations (integration_id),
    digest              TEXT NOT NULL,
    descriptor          TEXT NOT NULL,
    status              TEXT NOT NULL,
    mode                TEXT,
    preview_envelope_id TEXT REFERENCES envelopes (envelope_id),
    proposed_rule       TEXT,
    policy_id           TEXT,
    reason              TEXT,
    decided_by          TEXT,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    decided_at          BIGINT,
    consumed_at         BIGINT
);
CREATE INDEX approvals_lookup ON approvals (tenant_id, workload_id, integration_id, digest);
CREATE INDEX approvals_status ON approvals (tenant_id, status);

CREATE TABLE idempotency_records (
    tenant_id            TEXT NOT NULL,
    workload_id          TEXT NOT NULL,
    integration_id       TEXT NOT NULL,
    idempotency_key      TEXT NOT NULL,
    request_digest       TEXT NOT NULL,
    status               TEXT NOT NULL,
    response_envelope_id TEXT REFERENCES envelopes (envelope_id),
    created_at           BIGINT NOT NULL,
    completed_at         BIGINT,
    expires_at           BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, workload_id, integration_id, idempotency_key)
);
CREATE INDEX idempotency_records_expiry ON idempotency_records (expires_at);

-- Audit: append-only. `body` is the full event JSON; the other columns are derived from it for search.
CREATE TABLE audit_events (
    event_id        TEXT PRIMARY KEY,
    chain_id        TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL,
    writer_id       TEXT NOT NULL,
    -- The chain's tenant: the event's tenant, or 'global' for events without one.
    chain_tenant_id TEXT NOT NULL,
    tenant_id       TEXT,
    occurred_at     BIGINT NOT NULL,
    workload_id     TEXT,
    integration_id  TEXT,
    event_type      TEXT NOT NULL,
    decision        TEXT,
    action_group    TEXT,
    correlation_id  TEXT,
    request_id      TEXT,
    body            TEXT NOT NULL,
    UNIQUE (chain_id, seq)
);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at);
CREATE INDEX audit_events_chain_tenant ON audit_events (chain_tenant_id, chain_id);
CREATE INDEX audit_events_workload ON audit_events (workload_id, occurred_at);
CREATE INDEX audit_events_integration ON audit_events (integration_id, occurred_at);
CREATE INDEX audit_events_event_type ON audit_events (event_type, occurred_at);
CREATE INDEX audit_events_decision ON audit_events (decision, occurred_at);
CREATE INDEX audit_events_correlation ON audit_events (correlation_id);

CREATE TABLE audit_checkpoints (
    checkpoint_id TEXT PRIMARY KEY,
    writer_id     TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    heads         TEXT NOT NULL,
    kid           TEXT NOT NULL,
    signature     TEXT NOT NULL
);
CREATE INDEX audit_checkpoints_created ON audit_checkpoints (created_at);

-- One row per chain head of a checkpoint, so checkpoints can be found by tenant and chain.
CREATE TABLE audit_checkpoint_heads (
    checkpoint_id TEXT NOT NULL REFERENCES audit_checkpoints (checkpoint_id),
    chain_id      TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    hash          TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    PRIMARY KEY (checkpoint_id, chain_id)
);
CREATE INDEX audit_checkpoint_heads_tenant ON audit_checkpoint_heads (tenant_id, chain_id, seq);
CREATE INDEX audit_checkpoint_heads_chain ON audit_checkpoint_heads (chain_id, seq);

CREATE FUNCTION steward_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION steward_audit_append_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION steward_audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION steward_audit_append_only();
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION steward_audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION steward_audit_append_only();
CREATE TRIGGER audit_checkpoint_heads_no_change BEFORE UPDATE OR DELETE ON audit_checkpoint_heads
    FOR EACH ROW EXECUTE FUNCTION steward_audit_append_only();
CREATE TRIGGER audit_checkpoint_heads_no_truncate BEFORE TRUNCATE ON audit_checkpoint_heads
    FOR EACH STATEMENT EXECUTE FUNCTION steward_audit_append_only();
