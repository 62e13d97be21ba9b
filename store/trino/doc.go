// Package trino holds what the rest of the server needs to know about the
// Trino engine (DESIGN.md section 9). For now that is its SQL dialect, so
// SQL built from typed definitions (audiences) can be compiled for Trino.
// The Trino warehouse itself, with github.com/trinodb/trino-go-client,
// will live here too.
//
// This package imports the store package and the standard library only.
package trino
