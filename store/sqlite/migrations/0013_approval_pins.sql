-- 0013: approvals pin the objects their call touches (DESIGN.md section 7).
--
-- models.version counts a model's changes: 1 when created, one more in the
-- transaction of every update, so an approval can tell that the model it
-- was reviewed with is not the one it would now act on. Models that exist
-- already start at 1.
--
-- approvals.pins is the JSON array of the objects (type, id, name,
-- version) the call touched when it was queued; approvals queued before
-- this migration have none, and fail at execution instead of running
-- against objects nobody pinned.
ALTER TABLE models ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);
ALTER TABLE approvals ADD COLUMN pins TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(pins) AND json_type(pins) = 'array');
