-- A gateway enrolled as a service principal registers its keys as that principal: the key is
-- published only while its owner is enabled and not revoked, and no other principal can take
-- over its `kid`. Keys registered with the break-glass credential have no owner.
ALTER TABLE gateway_keys ADD COLUMN principal_id TEXT;
