-- The code flow's short-lived state. Authorization codes are kept by the SHA-256 of the code
-- (never the code), with what each was issued for; a redeemed code stays until it expires,
-- so that a second presentation is known for a replay and can revoke the refresh family its
-- redemption started. A refresh family is one sign-in's chain of rotating refresh tokens:
-- its live generation and when that became live, never a token.
CREATE TABLE authorization_codes (
    digest          TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES principals (id),
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    nonce           TEXT,
    issued_at       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,
    family_id       TEXT
);

CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);

CREATE TABLE refresh_families (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES principals (id),
    scopes      TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    rotated_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
