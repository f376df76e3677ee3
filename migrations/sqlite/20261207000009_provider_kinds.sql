-- Provider kinds are the application's list (providers/kinds.rs), not the database's: the CHECK that named
-- oidc, oauth2 and saml would need a migration for every new kind (ldap first). SQLite cannot change a
-- CHECK in place, so the table is rebuilt with the same columns and the rows copied as they are.

CREATE TABLE identity_providers_new (
    id            TEXT PRIMARY KEY,                  -- slug
    kind          TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 32),
    display_name  TEXT NOT NULL,
    enabled       BIGINT NOT NULL,                   -- 0 / 1
    settings      TEXT NOT NULL,                     -- JSON, without secrets
    managed_by    TEXT NOT NULL CHECK (managed_by IN ('config', 'admin')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    source        TEXT,
    secret_sealed TEXT
);
INSERT INTO identity_providers_new (id, kind, display_name, enabled, settings, managed_by, created_at,
                                    updated_at, source, secret_sealed)
    SELECT id, kind, display_name, enabled, settings, managed_by, created_at, updated_at, source,
           secret_sealed FROM identity_providers;
DROP TABLE identity_providers;
ALTER TABLE identity_providers_new RENAME TO identity_providers;
