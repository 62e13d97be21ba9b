-- 0002: the audit trail's hash chain and its outbox to the warehouse
-- (DESIGN.md section 8).
--
-- seq is an event's place in the store's one chain, assigned with prev_hash
-- and hash (store.AuditHash) in the transaction that records the event, so
-- concurrent writers cannot fork the chain. Events recorded before this
-- migration are chained by it, in insertion order (a Go step that runs right
-- after this file, in the same transaction).
ALTER TABLE audit_events ADD COLUMN seq INTEGER;
CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq);

-- Chained events are append-only: the store never changes or deletes one,
-- and these triggers refuse it to anyone else short of dropping them (which
-- signalsmith audit verify would then show as a broken link).
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN OLD.hash IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

-- audit_outbox: the events not yet shipped to the warehouse, by seq. A row
-- is inserted in the transaction that records its event and deleted once
-- the warehouse has the event.
CREATE TABLE audit_outbox (
    seq INTEGER PRIMARY KEY
);

-- audit_shipping: one row, the shipping state: the last event shipped (in
-- chain order), how many were, and the last failure while the warehouse was
-- unavailable.
CREATE TABLE audit_shipping (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq      INTEGER NOT NULL DEFAULT 0,
    last_id       TEXT NOT NULL DEFAULT '',
    last_hash     TEXT NOT NULL DEFAULT '',
    last_at       TIMESTAMP,
    shipped_at    TIMESTAMP,
    shipped       INTEGER NOT NULL DEFAULT 0,
    failures      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    last_error_at TIMESTAMP
);
INSERT INTO audit_shipping (id) VALUES (1);
