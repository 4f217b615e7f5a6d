-- OAuth clients that people sign in through (web, native and browser apps), registered per
-- tenant. `redirect_uris` is a JSON array of URIs compared byte for byte; a confidential
-- client keeps the digest of its secret, a public one has none.
CREATE TABLE oauth_clients (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    name           TEXT NOT NULL,
    redirect_uris  TEXT NOT NULL,
    public         BOOLEAN NOT NULL,
    secret_hash    TEXT,
    created_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
