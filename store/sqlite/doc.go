// Package sqlite implements the server's storage on SQLite
// (modernc.org/sqlite, pure Go): the metadata store (store.Store, type DB,
// the file signalsmith.db in the data directory) and the embedded warehouse.
// The metadata store uses the store package, the SQLite driver,
// github.com/google/uuid and the standard library, nothing else.
//
// # Metadata store
//
// Open creates the data directory (mode 0700) and opens the database with
// one writer connection (WAL, immediate transactions, busy_timeout 5 s,
// foreign keys, synchronous=FULL) and a separate pool of read-only
// connections (mode=ro and query_only), so reads never wait for writes and
// concurrent writers queue instead of failing with SQLITE_BUSY. The schema
// comes from forward-only migrations embedded from migrations/*.sql, applied
// at startup in one transaction and recorded in schema_migrations; a
// database migrated by a newer binary is refused.
//
// Choices the Store interface leaves open:
//
//   - Ids are a type prefix and a UUIDv7 (ws_, mem_, grp_, key_, mdl_, aud_,
//     dst_, syn_), so they sort by creation time; audit events use a bare
//     UUIDv7. Every time is stored in UTC.
//   - One version row (rbac_version, migration 0017) holds three counters,
//     each bumped in the transaction of every change it covers: auth
//     (column version, the RBACVersion: roles, members, member owners,
//     groups, access filters, key revocation and rotation), catalog
//     (models, audiences, destinations, syncs, PII classification) and
//     settings (kill switch, policy set). Principal returns the auth
//     counter read in the same query as the key, member and groups.
//   - Caches (cache.go): principals and their access filters (under auth),
//     each workspace's models (decoded once, effective PII levels applied)
//     and audiences (under catalog), and each workspace's kill switch and
//     active policy set (under settings) are kept in memory. A read first
//     reads the version row, with a statement prepared at Open, once per
//     call scope (store.WithCallScope; a write in the scope forgets it),
//     and reads again what changed: a change committed by any process,
//     the command line included, applies to the next call, and an
//     unchanged get_model costs one point read. Readers get copies. The hot
//     reads (version row, Principal, KeyByPrefix, AccessFiltersFor) are
//     prepared once on the read pool.
//   - Members (migration 0011): every agent key names its owner, a user
//     member (CreateKey refuses one without, ErrInvalid); an agent member
//     from an older database without an owner is kept, and takes one when
//     a key is next created for it with an owner. A new user member needs
//     an email, stored lowercased and unique per workspace (a unique index
//     with NOCASE), so one person is one member.
//   - A key's last use is written at most once a minute per key, in the
//     background: authentication never waits on a write.
//   - Rotating a key (ReplaceKey) keeps the old key's expiry: rotation
//     replaces a secret, it does not extend a key's life. Revoked and expired
//     keys cannot be rotated (ErrConflict).
//   - EnsureWorkspace deletes a built-in role a release no longer has, unless
//     members still hold it: then it stays as a custom role, so nobody loses
//     access silently and an admin can reassign them.
//   - A model's version is 1 when created and one more after every update,
//     written in the update's transaction (migration 0013); an approval's
//     pins are a JSON array beside its arguments. ModelDependents and
//     AudienceDependents read, in one read-only transaction, what
//     DeleteModel and DeleteAudience would refuse over.
//   - Audit with an empty workspace returns the events of every workspace
//     (and of refused calls, which have none): for the operator's command
//     line only.
//
// # Audit trail
//
// Audit events form one hash chain per file (seq, prev_hash, hash; see
// store.AuditHash), assigned inside the writing transaction after reading
// the chain's head under SQLite's write lock, so no two writers, in this
// process or another, can fork it. Every recorded event also gets an
// audit_outbox row in the same transaction; AuditSink and the shipper in
// package server move the outbox to the warehouse (migration 0002).
// Chained rows are append-only (triggers), and VerifyAudit checks the chain.
//
//   - AppendAudit is a group commit: one writer goroutine takes every append
//     waiting when it begins a transaction (up to 512) and commits them
//     together, then answers each caller, so under load many calls share
//     one fsync while a lone call waits for nobody.
//
//   - A state change records its call's pending audit event
//     (store.WithPendingAudit) in its own transaction: inTx inserts it,
//     decision executed, after the change and before the commit, and marks
//     it written. Every store method that changes state uses inTx once and
//     names a created object with store.NoteAuditResource.
//
//   - Args and rules are stored as canonical JSON (store.CanonicalJSON) and
//     read back with numbers as json.Number, so events hash exactly as
//     recorded; migration 0002 chains the events recorded before it.
//
//   - AuditSink writes cdp_audit.db of the embedded warehouse through a
//     connection of its own, opened per batch (WAL, synchronous=FULL):
//     cdp_audit.audit_events and cdp_audit.ai_operations, INSERT OR IGNORE
//     by id.
//
//   - Destinations keep their credential sealed (AES-256-GCM, by package
//     destinations) with the id of the master key that sealed it
//     (store.Destinations: CreateSealedDestination, UpdateDestination,
//     DeleteDestination, DestinationCredential, ResealCredentials); the
//     store never decrypts it, and catalog reads only report whether there
//     is one.
//
//   - Sync runs and their lease (migration 0019): sync_runs holds each
//     run; sync_leases who runs a sync until when (Unix nanoseconds), taken
//     with one upsert that succeeds only for a free, expired or own lease.
//     A sync records its owner (owner_id), checked to be a member of the
//     workspace.
//
//   - Planner writes cdp_planner.db of the embedded warehouse through one
//     connection of its own (WAL, synchronous=NORMAL: an acknowledgement
//     lost to a power cut only makes a batch go again under the same
//     number): sync_runs, sync_snapshot, sync_stage, sync_plan and
//     sync_failures. Diffs and acknowledgements are set-based SQL.
//
//   - Destinations have columns for sealed (AES-256-GCM) credentials, which
//     no Store method sets yet; reads only report whether there are any.
//
//   - UpdateModel and DeleteModel refuse (store.InUseError) a change that
//     would leave something dangling: deleting a model audiences, their
//     syncs or other models' relationships depend on; renaming a model, or
//     dropping a column, that other models' relationships name; a new
//     source (table or SQL) for a model syncs send audiences of, checked
//     in the transaction of the change. Audience definitions are not
//     read: which columns they use is package audience's business (the
//     tools refuse changes that break them).
//
//   - Models, audiences and destinations may not be named like an id
//     (store.LooksLikeID: any id prefix, in any case), and GetModel looks
//     a reference in the id form up by id only, any other by name only.
//
//   - Access filters (access_filters, migration 0003) belong to a group by
//     id; PutAccessFilter creates a missing group as AddToGroup does.
//     AccessFiltersFor takes the union of the principal's groups and the
//     member's groups of now, so a filter never lapses mid-call, and for an
//     agent its human's groups too.
//
// # Embedded warehouse
//
// OpenWarehouse (type Warehouse, store.Warehouse) opens the warehouse
// directory (the data directory's warehouse folder): analytics.db,
// cdp_planner.db and cdp_audit.db, attached read-only (file: URIs with
// mode=ro) as the schemas analytics, cdp_planner and cdp_audit to every
// connection, whose own main database is private, in memory and empty.
// Callers' SQL runs under a SQLite authorizer installed after the
// attachments: an allow-list of SELECT, reads of analytics tables and common
// functions. Before a query runs it is prepared once more on the same
// connection through the C API (modernc.org/sqlite/lib): a second statement
// in the text is refused (the driver would run it), and so is a compiled
// program that opens a table outside analytics. Queries are interrupted at
// their timeout, also between rows (the driver alone interrupts only the
// first step); MaxRows caps the rows read. Tables and Describe read the
// catalog through a separate pool that runs fixed SQL only. Access filters
// (store.QueryLimits.Filters) become per-query TEMP views on the query's
// connection, with an authorizer and program check that refuse every read
// of a filtered table except through its view (filter.go has the design).
// CheckSQL checks a SQL model without running it to completion, and gives
// each result column its lineage from the engine (lineage.go), from which
// the store derives its PII level. The warehouse
// uses the store package, the SQLite driver with its C library
// (modernc.org/sqlite/lib, modernc.org/libc) and the standard library.
//
// The warehouse's files by job: warehouse.go is the API (Tables, Describe,
// Query) and the session a query runs in; conn.go opens connections and
// attaches the files; stmtcheck.go is the C-API statement and program
// check, the one place that reads the driver's unexported connection
// handle (reflection, unsafe), so a driver upgrade that moves it fails
// there, at open; authorizer.go holds the authorizer policies and the
// function allow-list.
//
// Warehouse errors never pass on SQLite's message, which can quote a row's
// value ("bad JSON path: '<the email>'"). warehouse_errors.go maps a
// statement that does not compile to a store.QueryError in a fixed
// vocabulary (compilePatterns): syntax errors, unknown tables, columns and
// functions, wrong argument counts, and a few messages of fixed words and
// numbers, naming a token or name only when it occurs in the submitted SQL
// text, and one fixed message for anything else. Everything that fails
// while the statement runs (binding, stepping, reading rows: JSON errors,
// integer overflow, values too big) is mapped by SQLite's code alone: one
// fixed runtime message for what the caller's SQL can cause, an internal
// error naming the code for the rest (I/O, corruption, memory), which is
// all a log line then shows.
//
// The demo's analytics.db is written by package store/demo, not here.
package sqlite
