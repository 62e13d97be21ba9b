-- 0019: sync runs, the lease that keeps runs of one sync from
-- overlapping, and the owner of a sync.
--
-- owner_id is the member who created the sync: runs read the audience
-- with that member's access filters. Syncs created before it have none
-- and do not run until an owner is recorded.
ALTER TABLE syncs ADD COLUMN owner_id TEXT NOT NULL DEFAULT '';

-- sync_runs: one row per run (DESIGN.md section 3). The warehouse keeps
-- its own copy in cdp_planner.sync_runs with the plan's phase.
CREATE TABLE sync_runs (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    sync_id      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    trigger      TEXT NOT NULL DEFAULT '',
    source       TEXT NOT NULL DEFAULT '',
    added        INTEGER NOT NULL DEFAULT 0,
    changed      INTEGER NOT NULL DEFAULT 0,
    removed      INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    last_batch   INTEGER NOT NULL DEFAULT 0,
    error        TEXT NOT NULL DEFAULT '',
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    FOREIGN KEY (workspace_id, sync_id) REFERENCES syncs (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX sync_runs_sync ON sync_runs (workspace_id, sync_id, started_at);

-- sync_leases: who runs a sync now, until when (Unix nanoseconds). A
-- holder that crashed loses the lease when it runs out.
CREATE TABLE sync_leases (
    workspace_id TEXT NOT NULL,
    sync_id      TEXT NOT NULL,
    holder       TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, sync_id),
    FOREIGN KEY (workspace_id, sync_id) REFERENCES syncs (workspace_id, id) ON DELETE CASCADE
);
