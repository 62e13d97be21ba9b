-- 0017: the version row guards every cache of the metadata store.
--
-- rbac_version's one row gets two more counters beside version, which
-- stays the auth counter (roles, members, groups, access filters, and now
-- key revocation and rotation):
--   catalog:  models, audiences, destinations, syncs and the PII
--             classification that decides models' effective levels;
--   settings: the kill switch and the active policy set.
-- Every change bumps its counter in its own transaction, and every call
-- reads the row once, so a change made by another process (the CLI)
-- applies on the next call while unchanged state is served from memory.
ALTER TABLE rbac_version ADD COLUMN catalog INTEGER NOT NULL DEFAULT 1;
ALTER TABLE rbac_version ADD COLUMN settings INTEGER NOT NULL DEFAULT 1;
