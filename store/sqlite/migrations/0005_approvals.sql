-- approvals: actions an AI asked for that wait for a human (DESIGN.md
-- section 7). State changes are compare-and-set on state, so an approval
-- executes at most once.
CREATE TABLE approvals (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id),
    state              TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'executing', 'succeeded', 'failed', 'rejected', 'expired', 'cancelled')),
    tool               TEXT NOT NULL CHECK (length(tool) > 0),
    args               TEXT NOT NULL CHECK (json_valid(args)),
    args_hash          TEXT NOT NULL CHECK (length(args_hash) = 64),
    requester_id       TEXT NOT NULL,
    requester_name     TEXT NOT NULL,
    requester_kind     TEXT NOT NULL CHECK (requester_kind IN ('user', 'agent')),
    requester_owner_id TEXT NOT NULL DEFAULT '',
    key_prefix         TEXT NOT NULL,
    source             TEXT NOT NULL,
    policy_version     TEXT NOT NULL,
    rules              TEXT NOT NULL CHECK (json_valid(rules)),
    reason             TEXT NOT NULL,
    facts              TEXT NOT NULL CHECK (json_valid(facts)),
    created_at         TIMESTAMP NOT NULL,
    expires_at         TIMESTAMP NOT NULL,
    decider_id         TEXT NOT NULL DEFAULT '',
    decider_name       TEXT NOT NULL DEFAULT '',
    decided_at         TIMESTAMP,
    comment            TEXT NOT NULL DEFAULT '',
    outcome            TEXT NOT NULL DEFAULT '',
    updated_at         TIMESTAMP NOT NULL,
    done_at            TIMESTAMP
);
CREATE INDEX approvals_workspace_state ON approvals (workspace_id, state, created_at);
CREATE INDEX approvals_requester ON approvals (workspace_id, requester_id, created_at);
