-- A policy can apply to every consumer of its gateway (global) besides the consumers it
-- is attached to.
ALTER TABLE policies ADD COLUMN global_scope BIGINT NOT NULL DEFAULT 0;

-- Consumers are listed by whether they are active.
ALTER TABLE consumers ADD COLUMN active BIGINT NOT NULL DEFAULT 1;
