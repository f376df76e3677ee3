-- Readiness: /ready commits a one-row upsert here (at most once a second) to prove the database takes
-- writes (a full disk or a read-only file fails it). Portable SQL.

CREATE TABLE health_probe (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    at  BIGINT NOT NULL
);
