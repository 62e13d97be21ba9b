-- Guardrails state: the workspace kill switch and rate-limit counters.

-- ai_writes_frozen: when 1, every AI write in the workspace is denied.
ALTER TABLE workspaces ADD COLUMN ai_writes_frozen INTEGER NOT NULL DEFAULT 0 CHECK (ai_writes_frozen IN (0, 1));

-- rate_limit_uses: one row per counted use of a rate-limit bucket (a policy
-- and a key or workspace), kept while inside the longest window. Counting
-- in the store makes limits hold across restarts and processes.
CREATE TABLE rate_limit_uses (
    bucket TEXT NOT NULL,
    at     TIMESTAMP NOT NULL
);
CREATE INDEX rate_limit_uses_bucket_at ON rate_limit_uses (bucket, at);
