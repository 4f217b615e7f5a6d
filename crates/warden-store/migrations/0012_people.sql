-- People signing in. An invitation enrolls one user: kept by the SHA-256 of its token, used
-- once, before it expires; `totp_pending` is the sealed TOTP secret its enrollment page
-- showed, kept so that a reload shows the same one. A user's TOTP credential remembers the
-- last time step it accepted, so that a code is accepted once (RFC 6238 §5.2). A session is
-- kept by the SHA-256 of its cookie; `id` is the `sid` its tokens will carry.
CREATE TABLE invites (
    digest        TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES principals (id),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT,
    totp_pending  TEXT
);

CREATE TABLE user_totp (
    user_id     TEXT PRIMARY KEY REFERENCES principals (id),
    sealed      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    last_step   BIGINT NOT NULL
);

CREATE TABLE sessions (
    digest        TEXT PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL REFERENCES principals (id),
    csrf          TEXT NOT NULL,
    amr           TEXT NOT NULL,
    auth_time     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    user_agent    TEXT,
    revoked_at    BIGINT
);

CREATE INDEX sessions_by_user ON sessions (user_id, created_at);
