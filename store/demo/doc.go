// Package demo is the demo of serve --demo (DESIGN.md section 9): the
// customer data it generates into the embedded warehouse (Generate writes
// analytics.db: customers, orders and events, deterministic from a seed and
// a generation time, under a temporary name renamed into place only when
// complete; Exists says whether there is one) and the metadata it seeds
// through any Seeder, a store.Catalog with its store.PIIClassification
// (SeedMetadata: the PII classification, models, audiences, destinations
// and sync, idempotent).
//
// It is demo content, not storage, so it lives outside store/sqlite. It
// imports the store package, the standard library and the SQLite driver
// (modernc.org/sqlite), which only Generate uses, to write the file; being
// under store/, it is one of the packages a driver may be imported by.
package demo
