-- When each principal last obtained a token and last used one, for access reviews. Kept
-- apart from `principals` so the hot paths that record activity never contend with lifecycle
-- writes; rows may name principals that no longer exist (reports join them away).
CREATE TABLE principal_activity (
    principal_id    TEXT PRIMARY KEY,
    last_issued_at  BIGINT,
    last_used_at    BIGINT
);
