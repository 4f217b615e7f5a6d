-- Public keys with which gateways sign the internal tokens they forward to upstreams. The
-- authority publishes them in its JWKS while they are registered; a gateway keeps its private
-- half in memory only and re-registers before `expires_at`.
CREATE TABLE gateway_keys (
    kid            TEXT PRIMARY KEY,
    public_key     TEXT NOT NULL,
    gateway        TEXT NOT NULL,
    registered_at  BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
