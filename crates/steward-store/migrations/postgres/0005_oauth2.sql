-- OAuth2 integrations (issue 6): the cached access token of each integration and the cross-instance
-- refresh lease. One row per integration; the token is an envelope, shredded when replaced, dropped
-- (upstream 401) or when the integration is deleted.
CREATE TABLE oauth2_tokens (
    integration_id       TEXT PRIMARY KEY REFERENCES integrations (integration_id),
    -- The secret version the token was obtained with; a token of an older version is never used.
    secret_version       BIGINT,
    token_envelope_id    TEXT REFERENCES envelopes (envelope_id),
    expires_at           BIGINT,
    obtained_at          BIGINT,
    -- Compare-and-set lease: one refresh per integration at a time across all instances.
    refresh_lease_holder TEXT,
    refresh_lease_until  BIGINT,
    -- The OAuth error code of the last failed refresh (never a token), for the lease's waiters.
    last_error           TEXT,
    last_error_at        BIGINT
);
