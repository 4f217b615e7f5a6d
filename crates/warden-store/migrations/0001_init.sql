-- Portable SQL: runs unchanged on SQLite and PostgreSQL. Times are Unix seconds (BIGINT),
-- binary values base64url TEXT, lists JSON TEXT.

CREATE TABLE tenants (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    max_token_ttl_secs  BIGINT NOT NULL,
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          BIGINT NOT NULL
);

CREATE TABLE principals (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'agent', 'service')),
    name         TEXT NOT NULL,
    owner_id     TEXT REFERENCES principals (id),
    scopes       TEXT NOT NULL,
    audiences    TEXT NOT NULL,
    public_jwk   TEXT,
    secret_hash  TEXT,
    disabled     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE INDEX principals_by_tenant ON principals (tenant_id, created_at);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    public_key      TEXT NOT NULL,
    sealed_private  TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    created_at      BIGINT NOT NULL,
    activated_at    BIGINT,
    publish_until   BIGINT
);

CREATE TABLE client_assertion_jtis (
    client_id   TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE INDEX client_assertion_jtis_by_expiry ON client_assertion_jtis (expires_at);

CREATE TABLE idempotency_keys (
    key           TEXT PRIMARY KEY,
    request_hash  TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    status        INTEGER,
    response      TEXT,
    created_at    BIGINT NOT NULL
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
