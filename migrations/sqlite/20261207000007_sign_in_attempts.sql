-- Admin sign-in attempts, counted in the database so the limits hold across replicas: one row per attempt
-- and limit key ('u:<account>', 'ip:<address>', '*' for the total). Rows older than the longest window
-- are deleted at each attempt. Portable SQL (the same in migrations/sqlite and migrations/postgres).

CREATE TABLE sign_in_attempts (
    id         TEXT PRIMARY KEY,
    limit_key  TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX sign_in_attempts_key ON sign_in_attempts (limit_key, at);
CREATE INDEX sign_in_attempts_at ON sign_in_attempts (at);
