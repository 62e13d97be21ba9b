package guardrails

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports holds the dependency line of doc.go: guardrails decides and
// never reaches into the layers that call it, nor into a database.
func TestImports(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	forbidden := []string{
		"github.com/signalsmith/agent-server/tools",
		"github.com/signalsmith/agent-server/server",
		"github.com/signalsmith/agent-server/approvals",
		"github.com/signalsmith/agent-server/store/", // the implementations
		"github.com/mark3labs/mcp-go",
		// Database drivers; database/sql/driver (interfaces only) comes in
		// through google/uuid and is not one.
		"modernc.org/sqlite",
		"github.com/mattn/go-sqlite3",
		"github.com/trinodb/trino-go-client",
	}
	for dep := range strings.FieldsSeq(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/") {
				t.Errorf("guardrails depends on %s", dep)
			}
		}
	}
}
