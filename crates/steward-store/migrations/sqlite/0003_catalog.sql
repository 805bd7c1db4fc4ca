-- Catalog (issue 3): the OAuth2 client secret of a secret version is its own envelope, write-only
-- like the secret itself, and crypto-shredded with it when the integration is deleted.
ALTER TABLE secret_versions ADD COLUMN client_secret_envelope_id TEXT REFERENCES envelopes (envelope_id);
