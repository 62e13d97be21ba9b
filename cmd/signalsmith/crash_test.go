package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// crashKills is how many times TestCrashKeepsEveryAcknowledgedCall kills
// the server; SIGNALSMITH_CRASH_KILLS asks for more (or fewer).
func crashKills(t *testing.T) int {
	n := 50
	if v := os.Getenv("SIGNALSMITH_CRASH_KILLS"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			t.Fatalf("SIGNALSMITH_CRASH_KILLS=%q is not a positive number", v)
		}
		n = k
	}
	return n
}

// crashServer is one run of the real binary.
type crashServer struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	exited chan error
}

// startServer starts the binary serving dir on *addr, with the extra
// serve flags. Should another process have taken the port since the last
// run, it moves to a free one.
func startServer(t *testing.T, bin, dir string, addr *string, extra ...string) *crashServer {
	t.Helper()
	for attempt := 0; ; attempt++ {
		s, err := tryStart(t, bin, dir, *addr, extra...)
		if err == nil {
			return s
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		*addr = freeAddr(t)
	}
}

// tryStart starts the binary serving dir on addr and waits until it is
// healthy.
func tryStart(t *testing.T, bin, dir, addr string, extra ...string) (*crashServer, error) {
	t.Helper()
	s := &crashServer{exited: make(chan error, 1)}
	args := append([]string{"--data-dir", dir, "serve", "--demo", "--scale", "200", "--http", addr}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-s.exited:
			return nil, fmt.Errorf("the server exited at startup: %v\n%s", err, s.stderr.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.kill(t, func() {})
			return nil, fmt.Errorf("the server did not become healthy:\n%s", s.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL, calls then, and waits for it to be
// gone.
func (s *crashServer) kill(t *testing.T, then func()) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	then()
	<-s.exited
}

// stop ends the server gracefully (SIGTERM) and checks it exited cleanly.
func (s *crashServer) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("the server did not stop cleanly: %v\n%s", err, s.stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not stop")
	}
}

// callNonce calls get_model for a model named nonce (which does not exist:
// a cheap call that is audited as failed) with a raw JSON-RPC POST, and
// reports whether the server acknowledged it: an HTTP 200 carrying the
// call's result, which names the nonce.
func callNonce(hc *http.Client, url, key, nonce string, id int64) bool {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get_model","arguments":{"model":%q},`+
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},`+
		`"io.modelcontextprotocol/clientInfo":{"name":"crash-test","version":"1"}}}}`, id, nonce)
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "get_model")
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return false
	}
	return bytes.Contains(data, []byte(`"result"`)) && bytes.Contains(data, []byte(nonce)) &&
		bytes.Contains(data, []byte(fmt.Sprintf(`"id":%d`, id)))
}

// cli runs the binary's command line against dir and returns its stdout.
func cli(t *testing.T, bin, dir string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, append([]string{"--data-dir", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%v: %s%s", err, errOut.String(), out.String())
	}
	return out.String(), err
}

// idSet reads the ids of table in a SQLite file, and how many rows it has.
func idSet(t *testing.T, path, table, where string) (map[string]bool, int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id FROM ` + table + ` ` + where)
	if err != nil {
		t.Fatalf("read %s of %s: %v", table, path, err)
	}
	defer rows.Close()
	ids := make(map[string]bool)
	n := 0
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids, n
}

// TestCrashKeepsEveryAcknowledgedCall is the audit trail's crash test: it
// builds the real binary, serves the demo, drives concurrent tool calls
// over HTTP and kills the server with SIGKILL at random moments, restarting
// it each time. Then every call the client saw acknowledged must have its
// audit event, the chain must verify, and once the outbox drained the
// warehouse must hold exactly the store's events.
func TestCrashKeepsEveryAcknowledgedCall(t *testing.T) {
	t.Parallel()
	began := time.Now()
	kills := crashKills(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "signalsmith")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(tmp, "data")
	addr := freeAddr(t)

	srv := startServer(t, bin, dir, &addr)
	keys := keyRE.FindAllString(srv.stdout.String(), -1)
	if len(keys) < 2 {
		t.Fatalf("the first start printed %d keys", len(keys))
	}
	agentKey := keys[1]

	const callers = 8
	var (
		mu     sync.Mutex
		acked  = make(map[string]bool)
		sent   atomic.Int64
		reqID  atomic.Int64
		loaded atomic.Int64 // acknowledged under concurrent load
	)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: callers}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	for round := 0; round < kills; round++ {
		if round > 0 {
			srv = startServer(t, bin, dir, &addr)
		}
		url := "http://" + addr + "/mcp"
		// One call first, so the key's bcrypt check (cached afterwards) is
		// not what the random moment of the kill falls on.
		warm := time.Now().Add(30 * time.Second)
		for n := 0; ; n++ {
			nonce := fmt.Sprintf("crash-%d-warm-%d", round, n)
			sent.Add(1)
			if callNonce(hc, url, agentKey, nonce, reqID.Add(1)) {
				acked[nonce] = true
				break
			}
			if time.Now().After(warm) {
				t.Fatalf("round %d: no call was acknowledged in 30s:\n%s", round, srv.stderr.String())
			}
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range callers {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					nonce := fmt.Sprintf("crash-%d-%d-%d", round, g, n)
					sent.Add(1)
					if callNonce(hc, url, agentKey, nonce, reqID.Add(1)) {
						mu.Lock()
						acked[nonce] = true
						mu.Unlock()
						loaded.Add(1)
					}
				}
			})
		}
		time.Sleep(time.Duration(50+rng.IntN(351)) * time.Millisecond)
		// Calls in flight at the kill fail; no new ones start after it.
		srv.kill(t, func() { close(stop) })
		wg.Wait()
		hc.CloseIdleConnections()
	}

	// A last, clean run ships what the outbox holds.
	srv = startServer(t, bin, dir, &addr)
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := cli(t, bin, dir, "audit", "status", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var st store.AuditShipping
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status %q: %v", out, err)
		}
		if st.Backlog == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox did not drain: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv.stop(t)

	if out, err := cli(t, bin, dir, "audit", "verify"); err != nil {
		t.Fatalf("audit verify after %d kills: %v", kills, err)
	} else if !strings.Contains(out, "not shipped yet") || strings.Contains(out, "BROKEN") {
		t.Fatalf("audit verify:\n%s", out)
	}

	// Every acknowledged call has its event.
	export, err := cli(t, bin, dir, "audit", "export", "--format", "jsonl")
	if err != nil {
		t.Fatal(err)
	}
	recorded := make(map[string]bool)
	events := readExport(t, []byte(export))
	for _, e := range events {
		if e.Tool == "get_model" {
			if m, ok := e.Args["model"].(string); ok {
				recorded[m] = true
			}
		}
	}
	var missing []string
	for nonce := range acked {
		if !recorded[nonce] {
			missing = append(missing, nonce)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d of %d acknowledged calls have no audit event, e.g. %v", len(missing), len(acked), missing[:min(5, len(missing))])
	}
	if loaded.Load() < int64(kills) {
		t.Errorf("only %d calls were acknowledged under load in %d rounds: the load did not reach the server", loaded.Load(), kills)
	}

	// The warehouse holds exactly the store's events, once each.
	storeIDs, storeN := idSet(t, filepath.Join(dir, "signalsmith.db"), "audit_events", "")
	whPath := filepath.Join(dir, "warehouse", "cdp_audit.db")
	whIDs, whN := idSet(t, whPath, "audit_events", "")
	if storeN != len(events) || whN != len(whIDs) || len(whIDs) != len(storeIDs) {
		t.Errorf("store %d events (%d exported), warehouse %d rows with %d ids", storeN, len(events), whN, len(whIDs))
	}
	for id := range storeIDs {
		if !whIDs[id] {
			t.Errorf("event %s is in the store but not in the warehouse", id)
			break
		}
	}
	for id := range whIDs {
		if !storeIDs[id] {
			t.Errorf("event %s is in the warehouse but not in the store", id)
			break
		}
	}
	aiStore, _ := idSet(t, filepath.Join(dir, "signalsmith.db"), "audit_events", "WHERE source = 'AI'")
	aiWH, aiN := idSet(t, whPath, "ai_operations", "")
	if len(aiWH) != len(aiStore) || aiN != len(aiWH) {
		t.Errorf("ai_operations holds %d rows (%d ids), the store %d AI events", aiN, len(aiWH), len(aiStore))
	}
	t.Logf("%d kills, %d calls sent, %d acknowledged (%d under concurrent load), %d audit events (all in the warehouse), %s",
		kills, sent.Load(), len(acked), loaded.Load(), storeN, time.Since(began).Round(time.Millisecond))
}
