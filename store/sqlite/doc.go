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
//   - Every role, member or group change bumps one rbac_version counter in
//     the same transaction; Principal returns it read in the same query as
//     the key, member and groups.
//   - A key's last use is written at most once a minute per key, in the
//     background: authentication never waits on a write.
//   - Rotating a key (ReplaceKey) keeps the old key's expiry: rotation
//     replaces a secret, it does not extend a key's life. Revoked and expired
//     keys cannot be rotated (ErrConflict).
//   - EnsureWorkspace deletes a built-in role a release no longer has, unless
//     members still hold it: then it stays as a custom role, so nobody loses
//     access silently and an admin can reassign them.
//   - Audit with an empty workspace returns the events of every workspace
//     (and of refused calls, which have none): for the operator's command
//     line only.
//   - Destinations have columns for sealed (AES-256-GCM) credentials, which
//     no Store method sets yet; reads only report whether there are any.
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
// catalog through a separate pool that runs fixed SQL only. The warehouse
// uses the store package, the SQLite driver with its C library
// (modernc.org/sqlite/lib, modernc.org/libc) and the standard library.
//
// GenerateDemo writes the demo analytics.db (customers, orders, events)
// deterministically from a seed and a generation time, under a temporary
// name renamed into place only when complete; DemoExists says whether there
// is one.
package sqlite
