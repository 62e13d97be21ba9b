package destinations

import (
	"context"
	"errors"
	"fmt"

	"github.com/signalsmith/agent-server/store"
)

// Open returns the Sender of a destination with its decrypted secret
// (nil for a file destination), resolving a relative folder against the
// process's working directory. Registry.Sender is what a sync run uses; it
// resolves folders against the data directory.
func Open(d store.Destination, secret []byte) (store.Sender, error) {
	return open(d, secret, "")
}

func open(d store.Destination, secret []byte, dataDir string) (store.Sender, error) {
	switch d.Type {
	case store.DestinationWebhook:
		return newWebhook(d, secret)
	case store.DestinationFile:
		return newFile(d, dataDir)
	}
	return nil, invalid("destination type %q has no sender: only webhook and file", bounded(d.Type))
}

// Test checks that a destination takes deliveries without sending a
// member: a webhook gets an empty batch (sync "test", batch 0, no
// records) and must answer 2xx; a file destination's folder must be
// writable. Its error says what to fix, with no credential in it.
func Test(ctx context.Context, s store.Sender) error {
	t, ok := s.(interface{ Test(context.Context) error })
	if !ok {
		return errors.New("this destination cannot be tested")
	}
	return t.Test(ctx)
}

// Reader is what a Registry reads of the store: the destination and its
// sealed credential (store.Catalog and store.Destinations).
type Reader interface {
	GetDestination(ctx context.Context, workspaceID, id string) (store.Destination, error)
	DestinationCredential(ctx context.Context, workspaceID, id string) (store.Credential, error)
}

// Registry makes the Sender of a stored destination, decrypting its
// credential under the master key only in memory. It is safe for
// concurrent use; each Sender it returns is for one run at a time.
type Registry struct {
	store   Reader
	keys    func() (*Keyring, error)
	dataDir string
}

// NewRegistry returns a Registry over the store; keys returns the master
// key when a credential is to be opened (Keys loads it afresh each time,
// so a rotation by the command line applies to a running server), and
// dataDir is where relative file destination folders are.
func NewRegistry(s Reader, keys func() (*Keyring, error), dataDir string) *Registry {
	return &Registry{store: s, keys: keys, dataDir: dataDir}
}

// Keys returns a function that loads the master key (LoadKeyring, never
// creating it) at every call.
func Keys(getenv func(string) string, dataDir string) func() (*Keyring, error) {
	return func() (*Keyring, error) { return LoadKeyring(getenv, dataDir, false) }
}

// Sender returns the destination of the workspace with this id and its
// Sender. It returns an error wrapping store.ErrNotFound for a
// destination the workspace lacks, ErrInvalid for one whose settings or
// credential cannot be used (missing secret, no master key, a key that
// does not open it); its errors never carry the credential.
func (r *Registry) Sender(ctx context.Context, workspaceID, id string) (store.Sender, store.Destination, error) {
	d, err := r.store.GetDestination(ctx, workspaceID, id)
	if err != nil {
		return nil, store.Destination{}, err
	}
	var secret []byte
	if d.Type == store.DestinationWebhook {
		if !d.HasCredentials {
			return nil, d, invalid("destination %s has no signing secret: a person must set one (signalsmith destinations update %s --secret ...)", d.ID, d.ID)
		}
		if r.keys == nil {
			return nil, d, fmt.Errorf("destination %s: %w", d.ID, ErrNoMasterKey)
		}
		kr, err := r.keys()
		if err != nil {
			return nil, d, fmt.Errorf("destination %s: %w", d.ID, err)
		}
		c, err := r.store.DestinationCredential(ctx, workspaceID, id)
		if err != nil {
			return nil, d, err
		}
		if secret, err = kr.Open(workspaceID, id, c); err != nil {
			return nil, d, fmt.Errorf("destination %s: %w: %w", d.ID, err, ErrInvalid)
		}
	}
	s, err := open(d, secret, r.dataDir)
	clear(secret)
	if err != nil {
		return nil, d, err
	}
	return s, d, nil
}
