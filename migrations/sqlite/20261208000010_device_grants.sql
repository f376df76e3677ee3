-- Device authorization grant (RFC 8628): one row per device_authorization request. The device code and
-- the user code are stored as SHA-256 hashes only. status: 'pending' until the user approves or denies at
-- /sso/device, then 'approved' (grant_data set) or 'denied'; 'used' once the tokens were handed out.
-- Polling is paced by interval_seconds (raised by 5 at each slow_down) and last_poll_at. Portable SQL (the
-- same in migrations/sqlite and migrations/postgres).

CREATE TABLE device_grants (
    device_code_hash  TEXT PRIMARY KEY,
    user_code_hash    TEXT NOT NULL UNIQUE,
    client_id         TEXT NOT NULL,
    request           TEXT NOT NULL,               -- JSON: scope, audience
    status            TEXT NOT NULL,
    sid               TEXT,                        -- the SSO session that approved
    grant_data        TEXT,                        -- JSON GrantData, once approved
    interval_seconds  BIGINT NOT NULL,
    last_poll_at      BIGINT,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL
);
CREATE INDEX device_grants_expires ON device_grants (expires_at);
