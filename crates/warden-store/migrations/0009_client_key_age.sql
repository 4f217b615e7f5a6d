-- A client's registered key ages out: when it was registered, and how old a tenant lets one
-- get before it is refused (NULL: the authority's default). Keys registered before this
-- migration count from the principal's last change.
ALTER TABLE principals ADD COLUMN key_registered_at BIGINT;
UPDATE principals SET key_registered_at = updated_at WHERE public_jwk IS NOT NULL;
ALTER TABLE tenants ADD COLUMN max_client_key_age_secs BIGINT;
