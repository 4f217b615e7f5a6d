-- A principal revoked (by `warden revoke --principal` or a quarantine) is refused new tokens
-- and exchanges until it is reinstated: when it was revoked, and why.
ALTER TABLE principals ADD COLUMN revoked_at BIGINT;
ALTER TABLE principals ADD COLUMN revoked_reason TEXT;
