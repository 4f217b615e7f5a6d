-- Lifecycle audit entries written in the transaction of their change, until the audit log
-- has them: the call that made the change appends its entry and removes the row; rows left
-- behind (the process died, the log was failing) are drained into the log later. `entry` is
-- the audit log's JSON for the entry; `due_at` (Unix seconds) is when a drainer may take the
-- row, presuming its call will not append it itself, and is moved on by the drainer that
-- takes it.
CREATE TABLE audit_outbox (
    id      TEXT PRIMARY KEY,
    entry   TEXT NOT NULL,
    due_at  BIGINT NOT NULL
);

CREATE INDEX audit_outbox_by_due ON audit_outbox (due_at, id);
