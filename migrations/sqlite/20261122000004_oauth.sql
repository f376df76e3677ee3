-- The STS as an OpenID Provider: registered applications, authorization codes, refresh tokens, the
-- applications of each SSO session, revoked access tokens, and single-use client assertions. Portable SQL.

CREATE TABLE oauth_clients (
    client_id          TEXT PRIMARY KEY,
    settings           TEXT NOT NULL,                -- JSON (validated ClientSettings), no secret
    managed_by         TEXT NOT NULL CHECK (managed_by IN ('config', 'admin')),
    enabled            BIGINT NOT NULL,              -- 0 / 1
    secret_hash        TEXT,                         -- HMAC-SHA256 under a key derived from the master key
    secret_key_id      TEXT,                         -- which master key derived that HMAC key
    secret_created_at  BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- The public session id (`sid` claim) of an SSO session, and how the user authenticated.
ALTER TABLE sso_sessions ADD COLUMN sid TEXT;
ALTER TABLE sso_sessions ADD COLUMN acr TEXT;
ALTER TABLE sso_sessions ADD COLUMN amr TEXT;
ALTER TABLE sso_sessions ADD COLUMN auth_time BIGINT;            -- when the user authenticated upstream
CREATE UNIQUE INDEX sso_sessions_sid ON sso_sessions (sid);

-- An authorization request waiting for the user to log in (prompt=login, max_age, no session).
CREATE TABLE authorize_requests (
    id_hash       TEXT PRIMARY KEY,
    params        TEXT NOT NULL,                     -- JSON: the validated request
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX authorize_requests_expires ON authorize_requests (expires_at);

CREATE TABLE authorization_codes (
    code_hash       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    sid             TEXT NOT NULL,                   -- the SSO session it was issued in
    grant_data      TEXT NOT NULL,                   -- JSON: redirect_uri, scope, nonce, PKCE challenge, user
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,                          -- set at redemption; a second redemption is a reuse
    reused_at       BIGINT,                          -- set by a second redemption
    access_jti      TEXT,                            -- what the redemption produced, revoked on reuse
    access_exp      BIGINT,
    family_id       TEXT
);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);
CREATE INDEX authorization_codes_sid ON authorization_codes (sid);

CREATE TABLE refresh_tokens (
    token_hash      TEXT PRIMARY KEY,
    family_id       TEXT NOT NULL,                   -- all rotations of one grant
    client_id       TEXT NOT NULL,
    sid             TEXT NOT NULL,                   -- bound to the SSO session
    grant_data      TEXT NOT NULL,                   -- JSON: scope, user
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,                          -- rotated; presenting it again revokes the family
    revoked_at      BIGINT,
    access_jti      TEXT,                            -- the access token issued with it
    access_exp      BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_sid ON refresh_tokens (sid);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE session_clients (
    sid             TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    first_at        BIGINT NOT NULL,
    last_at         BIGINT NOT NULL,
    PRIMARY KEY (sid, client_id)
);

CREATE TABLE revoked_tokens (
    jti             TEXT PRIMARY KEY,
    expires_at      BIGINT NOT NULL
);

CREATE TABLE client_assertion_jtis (
    client_id       TEXT NOT NULL,
    jti             TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
