-- The six objects of the model and their links. Each object keeps the columns the
-- store queries by (ids, names, slugs, key digests) and the rest of its fields as a
-- JSON document in `spec`, so new optional fields need no migration.
CREATE TABLE gateways (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    domain      TEXT UNIQUE,
    spec        TEXT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE registries (
    id          TEXT PRIMARY KEY,
    gateway_id  TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (gateway_id, name)
);

CREATE TABLE consumers (
    id          TEXT PRIMARY KEY,
    gateway_id  TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (gateway_id, name),
    UNIQUE (gateway_id, slug)
);

CREATE TABLE auths (
    id          TEXT PRIMARY KEY,
    gateway_id  TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    key_hash    TEXT UNIQUE,
    key_prefix  TEXT,
    key_suffix  TEXT,
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (gateway_id, name)
);

CREATE TABLE policies (
    id          TEXT PRIMARY KEY,
    gateway_id  TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (gateway_id, name)
);

CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    gateway_id  TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (gateway_id, name)
);

-- Links. They cascade with either end; the admin API refuses to delete a registry that
-- is still linked unless told to force it, so the cascade only fires by intent.
CREATE TABLE consumer_registries (
    consumer_id TEXT NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    registry_id TEXT NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    weight      BIGINT NOT NULL DEFAULT 1,
    position    BIGINT NOT NULL,
    PRIMARY KEY (consumer_id, registry_id)
);
CREATE INDEX consumer_registries_registry ON consumer_registries(registry_id);

CREATE TABLE consumer_auths (
    consumer_id TEXT NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    auth_id     TEXT NOT NULL REFERENCES auths(id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    PRIMARY KEY (consumer_id, auth_id)
);
CREATE INDEX consumer_auths_auth ON consumer_auths(auth_id);

CREATE TABLE consumer_policies (
    consumer_id TEXT NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    policy_id   TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    PRIMARY KEY (consumer_id, policy_id)
);
CREATE INDEX consumer_policies_policy ON consumer_policies(policy_id);

CREATE TABLE consumer_roles (
    consumer_id TEXT NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    role_id     TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    PRIMARY KEY (consumer_id, role_id)
);
CREATE INDEX consumer_roles_role ON consumer_roles(role_id);

CREATE TABLE role_registries (
    role_id     TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    registry_id TEXT NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    PRIMARY KEY (role_id, registry_id)
);
CREATE INDEX role_registries_registry ON role_registries(registry_id);
