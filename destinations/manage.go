package destinations

import (
	"context"
	"fmt"

	"github.com/signalsmith/agent-server/store"
)

// Writer is what a Manager writes to (store.Destinations).
type Writer interface {
	CreateSealedDestination(ctx context.Context, d store.Destination, c store.Credential) (store.Destination, error)
	UpdateDestination(ctx context.Context, d store.Destination, c *store.Credential) (store.Destination, error)
}

// Manager applies a person's change to a destination, the same way from
// the command line and the JSON API: check the settings and the secret,
// seal the secret, store both in one transaction (which records the call's
// pending audit event).
type Manager struct {
	Store Writer
	// KeysFunc returns the master key, called only when a secret is to be
	// sealed (the command line creates the key file then).
	KeysFunc func() (*Keyring, error)
	// DataDir is where relative file destination folders are.
	DataDir string
}

// Create checks and stores a new destination of the workspace with its
// secret (a webhook needs one; a file destination takes none). Errors wrap
// ErrInvalid for bad settings, store.ErrConflict for a name taken, or
// ErrNoMasterKey; none carries the secret.
func (m *Manager) Create(ctx context.Context, workspaceID string, s Spec, secret []byte) (store.Destination, error) {
	id, err := NewID()
	if err != nil {
		return store.Destination{}, err
	}
	d, err := Build(workspaceID, id, s, m.DataDir)
	if err != nil {
		return store.Destination{}, err
	}
	var c store.Credential
	switch {
	case d.Type == store.DestinationWebhook:
		if c, err = m.seal(d, secret); err != nil {
			return store.Destination{}, err
		}
	case secret != nil:
		return store.Destination{}, invalid("a %s destination takes no secret", d.Type)
	}
	return m.Store.CreateSealedDestination(ctx, d, c)
}

// Update stores the destination cur with the settings s and, when secret
// is not nil, a new secret; a webhook keeps its sealed secret otherwise
// (one without any must be given one). Errors as Create's, and
// store.ErrNotFound for a destination gone since it was read.
func (m *Manager) Update(ctx context.Context, cur store.Destination, s Spec, secret []byte) (store.Destination, error) {
	if s.Type != cur.Type {
		return store.Destination{}, invalid("the type of a destination cannot change: create a new destination")
	}
	d, err := Build(cur.WorkspaceID, cur.ID, s, m.DataDir)
	if err != nil {
		return store.Destination{}, err
	}
	var c *store.Credential
	switch {
	case secret != nil && d.Type != store.DestinationWebhook:
		return store.Destination{}, invalid("a %s destination takes no secret", d.Type)
	case secret != nil:
		sealed, err := m.seal(d, secret)
		if err != nil {
			return store.Destination{}, err
		}
		c = &sealed
	case d.Type == store.DestinationWebhook && !cur.HasCredentials:
		return store.Destination{}, CheckSecret(nil)
	}
	return m.Store.UpdateDestination(ctx, d, c)
}

func (m *Manager) seal(d store.Destination, secret []byte) (store.Credential, error) {
	if err := CheckSecret(secret); err != nil {
		return store.Credential{}, err
	}
	if m.KeysFunc == nil {
		return store.Credential{}, ErrNoMasterKey
	}
	kr, err := m.KeysFunc()
	if err != nil {
		return store.Credential{}, err
	}
	c, err := kr.Seal(d.WorkspaceID, d.ID, secret)
	if err != nil {
		return store.Credential{}, fmt.Errorf("seal the secret of %s: %w", d.ID, err)
	}
	return c, nil
}
