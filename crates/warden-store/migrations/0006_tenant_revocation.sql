-- Revocations may end a whole tenant's tokens (`kind = 'tenant'`, `target` = the tenant id).
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt. Its AUTOINCREMENT counter
-- is carried over first: `seq` must never be reused, even for events already pruned.
CREATE TABLE revocations_next (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL CHECK (kind IN ('principal', 'token', 'grant', 'honeytoken', 'tenant')),
    target         TEXT NOT NULL,
    grant_user     TEXT,
    grant_agent    TEXT,
    issued_before  BIGINT NOT NULL,
    horizon        BIGINT NOT NULL,
    reason         TEXT,
    created_at     BIGINT NOT NULL
);

INSERT INTO revocations_next
    (seq, kind, target, grant_user, grant_agent, issued_before, horizon, reason, created_at)
SELECT seq, kind, target, grant_user, grant_agent, issued_before, horizon, reason, created_at
FROM revocations;

DELETE FROM sqlite_sequence WHERE name = 'revocations_next';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'revocations_next', seq FROM sqlite_sequence WHERE name = 'revocations';

DROP TABLE revocations;
ALTER TABLE revocations_next RENAME TO revocations;
CREATE INDEX revocations_by_horizon ON revocations (horizon);
