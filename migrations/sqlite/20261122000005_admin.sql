-- Admin console and admin API: administrators, their sessions, API tokens, and the audit log. Portable SQL.

CREATE TABLE admin_users (
    username       TEXT PRIMARY KEY,                 -- lowercase
    password_hash  TEXT,                             -- argon2id (PHC string); NULL: SSO only
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE admin_sessions (
    id_hash          TEXT PRIMARY KEY,               -- SHA-256 of the cookie value
    username         TEXT NOT NULL,
    via              TEXT NOT NULL,                  -- 'password' or 'sso'
    csrf             TEXT NOT NULL,                  -- the session's CSRF token
    sso_sid          TEXT,                           -- via 'sso': the SSO session it depends on
    created_at       BIGINT NOT NULL,
    idle_expires_at  BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

CREATE TABLE admin_api_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,              -- SHA-256 of the token (256-bit random)
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);

CREATE TABLE audit_log (
    id       TEXT PRIMARY KEY,                       -- random; order by (at, seq)
    seq      BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,                          -- 'admin:<name>', 'api:<token name>', 'cli', 'server'
    action   TEXT NOT NULL,
    target   TEXT,
    details  TEXT NOT NULL                           -- JSON, secrets redacted
);
CREATE INDEX audit_log_at ON audit_log (at, seq);

-- Identity providers added in the admin console: the settings as entered (TOML, without secrets) and the
-- client secret sealed under the master key (AES-256-GCM, AAD "provider-secret:<id>").
ALTER TABLE identity_providers ADD COLUMN source TEXT;
ALTER TABLE identity_providers ADD COLUMN secret_sealed TEXT;

-- Recent sign-ins through the identity providers, successes and failures with their reason code (the
-- dashboard); kept 7 days.
CREATE TABLE login_events (
    id           TEXT PRIMARY KEY,
    at           BIGINT NOT NULL,
    provider_id  TEXT,
    subject      TEXT,
    outcome      TEXT NOT NULL                       -- 'ok' or a reason code
);
CREATE INDEX login_events_at ON login_events (at);
