package destinations

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/signalsmith/agent-server/store"
)

// Categories, environments and file formats a destination may have
// (DESIGN.md section 3).
var (
	Categories   = []string{"advertising", "crm", "marketing", "analytics", "other"}
	Environments = []string{"production", "sandbox"}
	Formats      = []string{FormatJSONL, FormatCSV}
)

// File formats of a file destination.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// Defaults and bounds of the settings.
const (
	DefaultBatchSize = 500
	MaxBatchSize     = 10000
	DefaultTimeout   = 10 * time.Second
	MaxTimeout       = 5 * time.Minute
	// MinSecretLen is the shortest webhook signing secret accepted.
	MinSecretLen = 16
	// maxSecretLen bounds what a person can paste (or pipe) as a secret.
	maxSecretLen = 4096
)

// ErrInvalid wraps every refusal of a destination's settings; its message
// says which setting and what to give instead, and never the secret.
var ErrInvalid = store.ErrInvalid

// Spec is what a person gives to create a destination, or the settings of
// one being changed (Spec of an existing destination, then edited). The
// secret is not part of it: it goes straight to Keyring.Seal.
type Spec struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Category    string `json:"category"`
	Environment string `json:"environment"`
	// URL is a webhook's endpoint: https, or http on a loopback address.
	URL string `json:"url,omitempty"`
	// Dir is a file destination's folder: absolute, or relative to the
	// data directory. It must exist and be writable.
	Dir string `json:"dir,omitempty"`
	// Format is a file destination's format: jsonl (default) or csv.
	Format string `json:"format,omitempty"`
	// BatchSize is how many records one batch carries (the sync engine
	// sends batches of this size); DefaultBatchSize when zero.
	BatchSize int `json:"batch_size,omitempty"`
	// Timeout bounds one webhook request; DefaultTimeout when zero.
	Timeout time.Duration `json:"-"`
}

// SpecOf is the spec of a stored destination, for changing it.
func SpecOf(d store.Destination) Spec {
	s := Spec{Name: d.Name, Type: d.Type, Category: d.Category, Environment: d.Environment}
	s.URL, _ = d.Config["url"].(string)
	s.Dir, _ = d.Config["dir"].(string)
	s.Format, _ = d.Config["format"].(string)
	s.BatchSize = BatchSize(d)
	if d.Type == store.DestinationWebhook {
		s.Timeout = timeout(d)
	}
	return s
}

// NewID returns a new destination id, so a credential can be sealed to the
// destination before it is stored.
func NewID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new destination id: %w", err)
	}
	return "dst_" + u.String(), nil
}

// Build checks a spec and returns the destination it describes in
// workspaceID with id (settings in Config, no credential), or an error
// wrapping ErrInvalid that says what to fix. A file destination's folder is
// checked on disk (relative folders under dataDir): it must exist, be a
// folder and be writable.
func Build(workspaceID, id string, s Spec, dataDir string) (store.Destination, error) {
	d := store.Destination{ID: id, WorkspaceID: workspaceID, Name: strings.TrimSpace(s.Name), Type: s.Type,
		Category: s.Category, Environment: s.Environment}
	switch {
	case d.Name == "":
		return store.Destination{}, invalid("--name is required")
	case !slices.Contains(Categories, s.Category):
		return store.Destination{}, invalid("category %q is not one of %s", bounded(s.Category), strings.Join(Categories, ", "))
	case !slices.Contains(Environments, s.Environment):
		return store.Destination{}, invalid("environment %q is not production or sandbox", bounded(s.Environment))
	case s.BatchSize < 0 || s.BatchSize > MaxBatchSize:
		return store.Destination{}, invalid("batch size %d is not between 1 and %d", s.BatchSize, MaxBatchSize)
	}
	batch := s.BatchSize
	if batch == 0 {
		batch = DefaultBatchSize
	}
	switch s.Type {
	case store.DestinationWebhook:
		if s.Dir != "" || s.Format != "" {
			return store.Destination{}, invalid("a webhook takes --url and --secret, not --dir or --format")
		}
		if err := checkURL(s.URL); err != nil {
			return store.Destination{}, err
		}
		t := s.Timeout
		if t == 0 {
			t = DefaultTimeout
		}
		if t < time.Second || t > MaxTimeout {
			return store.Destination{}, invalid("timeout %v is not between 1s and %v", t, MaxTimeout)
		}
		d.Config = map[string]any{"url": s.URL, "batch_size": batch, "timeout_ms": t.Milliseconds()}
	case store.DestinationFile:
		if s.URL != "" {
			return store.Destination{}, invalid("a file destination takes --dir and --format, not --url")
		}
		format := s.Format
		if format == "" {
			format = FormatJSONL
		}
		if !slices.Contains(Formats, format) {
			return store.Destination{}, invalid("format %q is not jsonl or csv", bounded(format))
		}
		if s.Timeout != 0 {
			return store.Destination{}, invalid("a file destination has no timeout")
		}
		if err := checkDir(s.Dir, dataDir); err != nil {
			return store.Destination{}, err
		}
		d.Config = map[string]any{"dir": s.Dir, "format": format, "batch_size": batch}
	default:
		return store.Destination{}, invalid("type %q is not webhook or file", bounded(s.Type))
	}
	return d, nil
}

// CheckSecret checks a webhook's signing secret: MinSecretLen to 4096
// bytes, no line breaks (a secret read from stdin loses its final newline
// before this).
func CheckSecret(secret []byte) error {
	switch {
	case len(secret) == 0:
		return invalid("a webhook needs a signing secret: give --secret or pipe it on stdin")
	case len(secret) < MinSecretLen:
		return invalid("the signing secret is too short: give at least %d characters (openssl rand -hex 32)", MinSecretLen)
	case len(secret) > maxSecretLen:
		return invalid("the signing secret is longer than %d bytes", maxSecretLen)
	case strings.ContainsAny(string(secret), "\r\n\x00"):
		return invalid("the signing secret has a line break or NUL in it")
	}
	return nil
}

// BatchSize is the number of records per batch a destination takes: what
// the sync engine sends it.
func BatchSize(d store.Destination) int {
	if n := intSetting(d.Config["batch_size"]); n > 0 && n <= MaxBatchSize {
		return n
	}
	return DefaultBatchSize
}

// timeout is a webhook's request timeout.
func timeout(d store.Destination) time.Duration {
	if ms := intSetting(d.Config["timeout_ms"]); ms > 0 {
		return min(time.Duration(ms)*time.Millisecond, MaxTimeout)
	}
	return DefaultTimeout
}

// intSetting reads a number of a decoded JSON config.
func intSetting(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		if n == float64(int(n)) {
			return int(n)
		}
	}
	return 0
}

// checkURL accepts https URLs, and http ones on a loopback address only.
// Credentials go in the secret, never in the URL.
func checkURL(raw string) error {
	if raw == "" {
		return invalid("a webhook needs --url https://...")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return invalid("--url is not an absolute URL: give https://host/path")
	}
	if u.User != nil {
		return invalid("--url must not carry a user or password: give the signing secret with --secret")
	}
	if u.Fragment != "" {
		return invalid("--url must not have a #fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if loopback(u.Hostname()) {
			return nil
		}
		return invalid("--url must use https: plain http is allowed only on a loopback address (127.0.0.1, ::1, localhost)")
	}
	return invalid("--url must be an https URL")
}

// loopback reports whether host is localhost or a loopback IP.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dirPath is a file destination's folder as a path: relative ones are
// inside dataDir.
func dirPath(dir, dataDir string) string {
	if filepath.IsAbs(dir) {
		return filepath.Clean(dir)
	}
	return filepath.Join(dataDir, dir)
}

// checkDir checks that a file destination's folder exists, is a folder
// and can be written, by creating and removing a file in it.
func checkDir(dir, dataDir string) error {
	if dir == "" {
		return invalid("a file destination needs --dir: an existing folder")
	}
	path := dirPath(dir, dataDir)
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return invalid("folder %s does not exist: create it first", bounded(dir))
	case err != nil:
		return invalid("folder %s cannot be read", bounded(dir))
	case !info.IsDir():
		return invalid("%s is not a folder", bounded(dir))
	}
	f, err := os.CreateTemp(path, ".signalsmith-check-*")
	if err != nil {
		return invalid("folder %s is not writable by the server", bounded(dir))
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return invalid("folder %s does not let the server remove its files", bounded(dir))
	}
	return nil
}

// invalid is a refused setting.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalid)
}

// bounded cuts what a person typed to a length an error can carry.
func bounded(s string) string {
	const n = 200
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
