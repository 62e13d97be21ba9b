// Package store defines the domain types of the agent server, the metadata
// Store interface and the Warehouse interface. It holds no implementation and
// imports no database driver: store/sqlite and store/trino implement it.
//
// Every Store and Warehouse method reports failures with the sentinel errors
// declared here (ErrNotFound, ErrConflict, ErrInvalid, ErrQueryLimit,
// ErrQueryRefused), wrapped with context; callers test them with errors.Is.
package store
