package audience

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports holds the package's dependency rule (doc.go): the store
// package and the standard library, never mcp-go, the server, the tools or
// a database driver.
func TestImports(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const self = "github.com/signalsmith/agent-server/"
	allowed := map[string]bool{self + "audience": true, self + "store": true}
	for _, dep := range strings.Fields(string(out)) {
		if !allowed[dep] {
			t.Errorf("audience depends on %s; it may import only the store package and the standard library", dep)
		}
	}
}
