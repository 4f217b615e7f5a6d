-- A user's consent that an agent may act for them. At most one live grant per pair.
CREATE TABLE delegation_grants (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    user_id     TEXT NOT NULL REFERENCES principals (id),
    agent_id    TEXT NOT NULL REFERENCES principals (id),
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE UNIQUE INDEX delegation_grants_live ON delegation_grants (user_id, agent_id)
    WHERE revoked_at IS NULL;
CREATE INDEX delegation_grants_by_tenant ON delegation_grants (tenant_id, created_at);

-- The revocation log that gateways follow with a cursor. `seq` must never be reused, even
-- after pruning, or a reconnecting gateway would skip events.
CREATE TABLE revocations (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL CHECK (kind IN ('principal', 'token', 'grant', 'honeytoken')),
    target         TEXT NOT NULL,
    grant_user     TEXT,
    grant_agent    TEXT,
    issued_before  BIGINT NOT NULL,
    horizon        BIGINT NOT NULL,
    reason         TEXT,
    created_at     BIGINT NOT NULL
);

CREATE INDEX revocations_by_horizon ON revocations (horizon);
