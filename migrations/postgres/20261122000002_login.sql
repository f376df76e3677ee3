-- Identity providers, login flows, SSO sessions, last login per provider. PostgreSQL copy of migrations/sqlite, kept in step (tests/tests/schema.rs).

CREATE TABLE identity_providers (
    id            TEXT PRIMARY KEY,                  -- slug
    kind          TEXT NOT NULL CHECK (kind IN ('oidc', 'oauth2', 'saml')),
    display_name  TEXT NOT NULL,
    enabled       BIGINT NOT NULL,                   -- 0 / 1
    settings      TEXT NOT NULL,                     -- JSON, without secrets
    managed_by    TEXT NOT NULL CHECK (managed_by IN ('config', 'admin')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- One row per login attempt in progress; consumed (deleted) by the callback, so `state` is single-use.
CREATE TABLE login_flows (
    state_hash    TEXT PRIMARY KEY,                  -- SHA-256 of the state value sent to the IdP
    browser_hash  TEXT NOT NULL,                     -- SHA-256 of the browser-binding cookie
    provider_id   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    secrets       TEXT NOT NULL,                     -- JSON: nonce, PKCE verifier
    return_to     TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX login_flows_expires ON login_flows (expires_at);

CREATE TABLE sso_sessions (
    id_hash          TEXT PRIMARY KEY,               -- SHA-256 of the session cookie value
    subject          TEXT NOT NULL,
    provider_id      TEXT NOT NULL,
    identity         TEXT NOT NULL,                  -- JSON: username, email, display name, groups
    roles            TEXT NOT NULL,                  -- JSON array
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    idle_expires_at  BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX sso_sessions_expires ON sso_sessions (expires_at);

-- Why did the last user of a provider get the roles they got (or get refused)?
CREATE TABLE provider_last_logins (
    provider_id      TEXT PRIMARY KEY,
    subject          TEXT,
    outcome          TEXT NOT NULL,                  -- 'ok' or a reason code
    at               BIGINT NOT NULL,
    claims           TEXT NOT NULL,                  -- raw claims received (JSON)
    external_values  TEXT NOT NULL,                  -- values at the role claim (JSON array)
    roles            TEXT NOT NULL                   -- resulting STS roles (JSON array)
);
