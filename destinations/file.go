package destinations

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/signalsmith/agent-server/store"
)

// File writes each batch as one JSONL or CSV file in a folder (see
// doc.go).
type File struct {
	dir    string
	format string
}

var _ store.Sender = (*File)(nil)

// safeID is what a sync or run id must look like to become part of a file
// name: no separator, no dot-dot.
var safeID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

func newFile(d store.Destination, dataDir string) (*File, error) {
	dir, _ := d.Config["dir"].(string)
	format, _ := d.Config["format"].(string)
	if format == "" {
		format = FormatJSONL
	}
	if !slices.Contains(Formats, format) {
		return nil, invalid("format %q is not jsonl or csv", bounded(format))
	}
	if dir == "" {
		return nil, invalid("the file destination has no folder")
	}
	return &File{dir: dirPath(dir, dataDir), format: format}, nil
}

// Name is the file a batch is written to, in the destination's folder:
// SYNC-RUN-NNNNNN.jsonl (or .csv), the same for the same run and batch, so
// a batch written again replaces its file.
func (f *File) Name(b store.SyncBatch) (string, error) {
	if !safeID.MatchString(b.SyncID) || !safeID.MatchString(b.RunID) || b.Number < 0 {
		return "", fmt.Errorf("%w: batch %d: the sync and run ids cannot name a file", store.ErrDeliveryFailed, b.Number)
	}
	return fmt.Sprintf("%s-%s-%06d.%s", b.SyncID, b.RunID, b.Number, f.format), nil
}

// Send writes the batch atomically: a temporary file in the same folder,
// flushed to disk, then renamed over the batch's file. Every record is
// accepted.
func (f *File) Send(ctx context.Context, b store.SyncBatch) (store.BatchResult, error) {
	if err := ctx.Err(); err != nil {
		return store.BatchResult{}, fmt.Errorf("%w: batch %d: %v", store.ErrDeliveryFailed, b.Number, err)
	}
	name, err := f.Name(b)
	if err != nil {
		return store.BatchResult{}, err
	}
	var buf bytes.Buffer
	if f.format == FormatCSV {
		err = writeCSV(&buf, b.Records)
	} else {
		err = writeJSONL(&buf, b.Records)
	}
	if err != nil {
		return store.BatchResult{}, fmt.Errorf("%w: batch %d: the records cannot be encoded", store.ErrDeliveryFailed, b.Number)
	}
	if err := writeAtomic(filepath.Join(f.dir, name), buf.Bytes(), 0o640); err != nil {
		// The OS error names paths of the server's machine: say only what
		// to check.
		return store.BatchResult{}, fmt.Errorf("%w: batch %d: the folder cannot be written (check that it exists and the server may write it)",
			store.ErrDeliveryFailed, b.Number)
	}
	return store.BatchResult{}, nil
}

// writeJSONL writes one record per line as {"op","key","fields"}.
func writeJSONL(buf *bytes.Buffer, records []store.SyncRecord) error {
	enc := json.NewEncoder(buf)
	for _, r := range records {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// writeCSV writes a header (op, key, then every field name of the batch,
// sorted) and one row per record; a field a record lacks is empty.
func writeCSV(buf *bytes.Buffer, records []store.SyncRecord) error {
	var fields []string
	seen := map[string]bool{}
	for _, r := range records {
		for k := range r.Fields {
			if !seen[k] {
				seen[k] = true
				fields = append(fields, k)
			}
		}
	}
	slices.Sort(fields)
	w := csv.NewWriter(buf)
	if err := w.Write(append([]string{"op", "key"}, fields...)); err != nil {
		return err
	}
	row := make([]string, 2+len(fields))
	for _, r := range records {
		row[0], row[1] = r.Op, r.Key
		for i, k := range fields {
			v, err := csvValue(r.Fields[k])
			if err != nil {
				return err
			}
			row[2+i] = v
		}
		if err := w.Write(row); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

// csvValue writes a field's value as CSV text: strings as they are, null
// as empty, anything else as its JSON.
func csvValue(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// Test checks that the folder exists and is writable.
func (f *File) Test(context.Context) error {
	return checkDir(f.dir, "")
}

// Close does nothing: a File holds nothing open between batches.
func (f *File) Close() error { return nil }

// writeAtomic writes data to path through a temporary file in the same
// folder, synced, then renamed over path, then the folder synced: a reader
// sees the old file or the new one, never part of one.
func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriter(tmp)
	if _, err = w.Write(data); err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
