-- Admin tokens bound to one gateway with <resource>:read|write scopes. Only the SHA-256
-- digest of a token is stored; the token itself is shown once, when it is created.
CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    gateway_id  TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    scopes      TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
CREATE INDEX admin_tokens_gateway ON admin_tokens(gateway_id);
