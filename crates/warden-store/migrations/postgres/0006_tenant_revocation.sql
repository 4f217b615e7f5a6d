-- PostgreSQL form of ../0006_tenant_revocation.sql: the CHECK constraint is replaced in place
-- (the identity column keeps its sequence).
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('principal', 'token', 'grant', 'honeytoken', 'tenant'));
