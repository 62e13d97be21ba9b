package store

import "context"

// Destination types (DESIGN.md section 3).
const (
	DestinationWebhook = "webhook"
	DestinationFile    = "file"
)

// Credential is a destination's credential as the store keeps it: sealed
// (AES-256-GCM, package destinations) under the master key named by KeyID.
// The store never sees it in clear.
type Credential struct {
	Sealed []byte
	KeyID  string
}

// Destinations is how people manage destinations and their sealed
// credentials (the command line and the JSON API), and how a sync run reads
// the credential it decrypts in memory. Agents only read destinations,
// through Catalog. Every write bumps the catalog version and records the
// call's pending audit event in its own transaction.
type Destinations interface {
	// CreateSealedDestination stores a new destination as
	// CreateDestination does (same errors), with its credential (a zero
	// Credential for none) in the same transaction.
	CreateSealedDestination(ctx context.Context, d Destination, c Credential) (Destination, error)
	// UpdateDestination replaces the name, category, environment and
	// config of the destination with id d.ID (its type never changes)
	// and, when c is not nil, its credential. It returns ErrNotFound for a
	// destination the workspace lacks, ErrInvalid for a bad field or a
	// changed type and ErrConflict for a name taken by another one.
	UpdateDestination(ctx context.Context, d Destination, c *Credential) (Destination, error)
	// DeleteDestination deletes a destination: ErrNotFound when the
	// workspace has none with that id, an *InUseError (ErrConflict) naming
	// the syncs that send to it.
	DeleteDestination(ctx context.Context, workspaceID, id string) error
	// DestinationCredential returns a destination's sealed credential;
	// ErrNotFound when the workspace has no such destination or it has no
	// credential.
	DestinationCredential(ctx context.Context, workspaceID, id string) (Credential, error)
	// ResealCredentials replaces every stored credential of every
	// workspace by reseal's answer, in one transaction (with the call's
	// pending audit event): all of them change or none does. reseal gets
	// the destination's workspace and id, which a seal binds. It returns
	// how many credentials it replaced.
	ResealCredentials(ctx context.Context, reseal func(workspaceID, id string, c Credential) (Credential, error)) (int, error)
}
