-- SAML service provider: its own key pair and certificate (kept apart from token-signing keys), and the
-- replay cache of consumed assertion IDs. PostgreSQL copy of migrations/sqlite, kept in step (tests/tests/schema.rs).

CREATE TABLE saml_sp_credentials (
    id                  TEXT PRIMARY KEY,            -- 'default'
    certificate_der     TEXT NOT NULL,               -- base64 (standard) DER of the self-signed certificate
    private_key_sealed  TEXT NOT NULL,               -- base64url(nonce || AES-256-GCM(PKCS#8 DER))
    master_key_id       TEXT NOT NULL,
    created_at          BIGINT NOT NULL
);

-- An assertion ID is accepted once; kept until the assertion could no longer be valid anyway.
CREATE TABLE saml_assertion_ids (
    assertion_id  TEXT PRIMARY KEY,
    provider_id   TEXT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX saml_assertion_ids_expires ON saml_assertion_ids (expires_at);
