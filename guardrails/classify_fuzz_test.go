package guardrails

import (
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// FuzzParsePIIFile feeds classification files to the parser: it never
// panics, and what it accepts is only well-formed columns with levels, each
// once.
func FuzzParsePIIFile(f *testing.F) {
	for _, seed := range []string{
		"analytics.customers.email: redacted\n",
		"analytics.customers.email: redacted\nanalytics.customers.notes: blocked\n",
		"analytics.customers.email: public\n",
		"- a\n- b\n",
		"a.b.c: [none]\n",
		"",
		"analytics..email: none",
		"x: &a none\ny: *a\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		classes, err := ParsePIIFile("file.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "file.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, c := range classes {
			ref, nerr := store.NormalizeSourceColumn(c.Column)
			if nerr != nil || ref != c.Column || !ValidPII(c.Level) || seen[ref] {
				t.Errorf("accepted %+v (normalized %q, %v, twice %v)", c, ref, nerr, seen[ref])
			}
			seen[ref] = true
		}
		if len(classes) == 0 {
			t.Error("accepted a file with no columns")
		}
	})
}
