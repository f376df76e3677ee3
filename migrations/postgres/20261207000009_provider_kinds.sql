-- Provider kinds are the application's list (providers/kinds.rs), not the database's: the CHECK that named
-- oidc, oauth2 and saml would need a migration for every new kind (ldap first).

ALTER TABLE identity_providers DROP CONSTRAINT IF EXISTS identity_providers_kind_check;
ALTER TABLE identity_providers ADD CONSTRAINT identity_providers_kind_check
    CHECK (length(kind) BETWEEN 1 AND 32);
