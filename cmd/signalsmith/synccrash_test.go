package main

import (
	"bytes"
	"crypto/hmac"
	"database/sql"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
)

// hookSecret signs the deliveries to the tests' webhook receivers.
const hookSecret = "crash-test-signing-secret-0123456789"

// syncFlags make a restarted server resume an unfinished run within a
// second or so: a short lease (the dead server's runs out quickly) and a
// fast scheduler tick.
var syncFlags = []string{"--sync-tick", "100ms", "--sync-lease", "1s"}

// syncCrashKills is how many times TestSyncRunSurvivesKills kills the
// server; SIGNALSMITH_SYNC_CRASH_KILLS asks for more (or fewer).
func syncCrashKills(t *testing.T) int {
	t.Helper()
	n := 10
	if v := os.Getenv("SIGNALSMITH_SYNC_CRASH_KILLS"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			t.Fatalf("SIGNALSMITH_SYNC_CRASH_KILLS=%q is not a positive number", v)
		}
		n = k
	}
	return n
}

// crashSeed is the seed of the kills' random moments: SIGNALSMITH_CRASH_SEED,
// or the clock. It is logged, so a failure can be replayed.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SIGNALSMITH_CRASH_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SIGNALSMITH_CRASH_SEED=%q is not a number", v)
		}
		seed = s
	}
	t.Logf("seed %d (SIGNALSMITH_CRASH_SEED=%d replays it)", seed, seed)
	return seed
}

// buildServer builds the binary into dir.
func buildServer(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "signalsmith")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// hookReceiver is a webhook receiver on loopback that checks every
// delivery's signature and applies each Idempotency-Key once, as the
// README tells receivers to. It counts what a receiver would notice: how
// often each member was applied, repeats, and repeats whose records
// differ from the first delivery (which dedup would silently lose).
type hookReceiver struct {
	url string

	mu         sync.Mutex
	deliveries int
	bad        int
	applied    map[string][]byte // Idempotency-Key -> the records applied
	repeats    int
	differing  int
	members    map[string]int // member key -> times applied
	runs       map[string]bool
	syncs      map[string]bool
	// script answers the first deliveries with these statuses (a 429
	// with Retry-After: 1) before answering 200; answered records when.
	script   []int
	answered []answer
	// killAt, when set, calls kill when the delivery with that number
	// has been applied, before it is answered.
	killAt int
	kill   func()
}

// answer is one delivery's answer and when it was given.
type answer struct {
	status int
	at     time.Time
}

// String prints the status only, so a failure lists the answers readably.
func (a answer) String() string { return strconv.Itoa(a.status) }

func newHookReceiver(t *testing.T, script ...int) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{applied: map[string][]byte{}, members: map[string]int{}, runs: map[string]bool{},
		syncs: map[string]bool{}, script: script}
	hs := httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(hs.Close)
	rc.url = hs.URL + "/hook"
	return rc
}

func (rc *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ts := r.Header.Get(destinations.HeaderTimestamp)
	sec, _ := strconv.ParseInt(ts, 10, 64)
	want := destinations.Sign([]byte(hookSecret), ts, body)
	if !hmac.Equal([]byte(want), []byte(r.Header.Get(destinations.HeaderSignature))) ||
		time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		rc.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rc.deliveries++
	if n := len(rc.answered); n < len(rc.script) {
		rc.answered = append(rc.answered, answer{rc.script[n], time.Now()})
		if rc.script[n] == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(rc.script[n])
		return
	}
	rc.answered = append(rc.answered, answer{http.StatusOK, time.Now()})
	var b struct {
		SyncID  string          `json:"sync_id"`
		RunID   string          `json:"run_id"`
		Batch   int             `json:"batch"`
		Records json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		rc.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	key := r.Header.Get(destinations.HeaderIdempotency)
	if key != destinations.IdempotencyKey(store.SyncBatch{RunID: b.RunID, Number: b.Batch}) {
		rc.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if first, ok := rc.applied[key]; ok {
		rc.repeats++
		if !bytes.Equal(first, b.Records) {
			rc.differing++
		}
		return
	}
	var records []store.SyncRecord
	if err := json.Unmarshal(b.Records, &records); err != nil {
		rc.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.applied[key] = bytes.Clone(b.Records)
	rc.runs[b.RunID], rc.syncs[b.SyncID] = true, true
	for _, rec := range records {
		rc.members[rec.Key]++
	}
	if rc.killAt > 0 && rc.deliveries >= rc.killAt {
		// The batch is applied but the server never hears so: it must
		// send it again, under the same key.
		rc.killAt = 0
		rc.kill()
	}
}

// delivered returns how many deliveries the receiver has taken.
func (rc *hookReceiver) delivered() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.deliveries
}

// applyCount returns how many distinct members were applied.
func (rc *hookReceiver) applyCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.members)
}

// armKill makes the receiver call kill once delivery number n is applied.
func (rc *hookReceiver) armKill(n int, kill func()) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.killAt, rc.kill = n, kill
}

// checkExactlyOnce fails the test unless the receiver applied every
// member of want exactly once, nothing else, all from one run of one sync,
// with valid signatures and every repeat identical to its first delivery.
func (rc *hookReceiver) checkExactlyOnce(t *testing.T, want map[string]bool) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.bad != 0 {
		t.Errorf("%d deliveries had a bad signature, timestamp, key or body", rc.bad)
	}
	if rc.differing != 0 {
		t.Errorf("%d of %d repeated batches carried other records than their first delivery", rc.differing, rc.repeats)
	}
	if len(rc.runs) != 1 || len(rc.syncs) != 1 {
		t.Errorf("batches came from runs %v of syncs %v, want one run of one sync", rc.runs, rc.syncs)
	}
	var twice, lost, extra []string
	for k, n := range rc.members {
		if n > 1 {
			twice = append(twice, k)
		}
		if !want[k] {
			extra = append(extra, k)
		}
	}
	for k := range want {
		if rc.members[k] == 0 {
			lost = append(lost, k)
		}
	}
	if len(twice)+len(lost)+len(extra) > 0 {
		t.Errorf("of %d members, %d were applied more than once (e.g. %v), %d never arrived (e.g. %v), %d are not in the audience (e.g. %v)",
			len(want), len(twice), twice[:min(3, len(twice))], len(lost), lost[:min(3, len(lost))], len(extra), extra[:min(3, len(extra))])
	}
}

// createHook creates the webhook destination name with the CLI, the
// secret on stdin, and returns its id.
func createHook(t *testing.T, bin, dir, name, url string, batchSize int) string {
	t.Helper()
	cmd := exec.Command(bin, "--data-dir", dir, "destinations", "create", "--name", name, "--type", "webhook",
		"--category", "crm", "--environment", "sandbox", "--url", url, "--batch-size", strconv.Itoa(batchSize), "--json")
	cmd.Stdin = strings.NewReader(hookSecret + "\n")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("destinations create: %v: %s", err, errOut.String())
	}
	if strings.Contains(out.String()+errOut.String(), hookSecret) {
		t.Fatal("destinations create printed the secret")
	}
	var d store.Destination
	if err := json.Unmarshal(out.Bytes(), &d); err != nil || d.ID == "" {
		t.Fatalf("destinations create --json printed %q: %v", out.String(), err)
	}
	return d.ID
}

// startSync has the agent create an audience of every customer and a
// sync of it to the destination, and trigger the sync; it returns the
// started run's id.
func startSync(t *testing.T, c *client.Client, destination string) string {
	t.Helper()
	def := map[string]any{"model": "customers", "conditions": map[string]any{"all": []any{
		map[string]any{"column": "customer_id", "operator": "greater_than", "value": 0}}}}
	var aud struct {
		Audience struct {
			ID string `json:"id"`
		} `json:"audience"`
	}
	servertest.Structured(t, callTool(t, c, "create_audience", map[string]any{"name": "everyone", "definition": def}), &aud)
	var s store.Sync
	servertest.Structured(t, callTool(t, c, "create_sync", map[string]any{"audience": aud.Audience.ID, "destination": destination,
		"mode": "upsert", "mappings": []any{
			map[string]any{"from": "customer_id", "to": "external_id"},
			map[string]any{"from": "email", "to": "email"},
			map[string]any{"from": "plan", "to": "plan"},
		}}), &s)
	if s.ID == "" {
		t.Fatal("create_sync returned no sync")
	}
	var run store.SyncRun
	servertest.Structured(t, callTool(t, c, "trigger_sync", map[string]any{"sync": s.ID}), &run)
	if run.ID == "" || run.State != store.RunRunning {
		t.Fatalf("trigger_sync started %+v", run)
	}
	return run.ID
}

// waitRunEnd polls get_sync_run until the run is no longer running.
func waitRunEnd(t *testing.T, c *client.Client, runID string) store.SyncRun {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var run store.SyncRun
		servertest.Structured(t, callTool(t, c, "get_sync_run", map[string]any{"run": runID}), &run)
		if run.State != store.RunRunning {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is still running: %+v", runID, run)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// customerKeys reads the primary keys of every demo customer, the
// audience the tests sync.
func customerKeys(t *testing.T, dir string) map[string]bool {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "warehouse", "analytics.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT customer_id FROM customers WHERE customer_id > 0`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	keys := map[string]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		keys[strconv.FormatInt(id, 10)] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// killOnCleanup kills whatever server *cur is when the test ends, so a
// failed test leaves no process behind.
func killOnCleanup(t *testing.T, cur **crashServer) {
	t.Helper()
	t.Cleanup(func() {
		// A server that was stopped or killed and waited for is done.
		if s := *cur; s != nil && s.cmd.Process.Signal(syscall.SIGKILL) == nil {
			<-s.exited
		}
	})
}

// TestSyncRunSurvivesKills is the sync engine's crash test: it builds the
// real binary, serves a demo of 4,000 customers, has the agent sync all of
// them to a webhook receiver in this process in batches of 10, and kills
// the server with SIGKILL at random moments of the run (a random time
// after it resumed delivering, or right after the receiver applied a
// batch the server never heard back about), restarting it each time. The
// restarted server's scheduler resumes the run; in the end the one run
// succeeded and the receiver, which dedups by Idempotency-Key, applied
// every member exactly once.
func TestSyncRunSurvivesKills(t *testing.T) {
	t.Parallel()
	began := time.Now()
	kills := syncCrashKills(t)
	rng := rand.New(rand.NewPCG(crashSeed(t), 11))
	tmp := t.TempDir()
	bin := buildServer(t, tmp)
	dir := filepath.Join(tmp, "data")
	addr := freeAddr(t)
	rc := newHookReceiver(t)
	flags := append([]string{"--scale", "4000"}, syncFlags...)

	var srv *crashServer
	killOnCleanup(t, &srv)
	srv = startServer(t, bin, dir, &addr, flags...)
	keys := keyRE.FindAllString(srv.stdout.String(), -1)
	if len(keys) < 2 {
		t.Fatalf("the first start printed %d keys", len(keys))
	}
	dest := createHook(t, bin, dir, "crash-hook", rc.url, 10)
	want := customerKeys(t, dir)
	runID := startSync(t, mcpClient(t, "http://"+addr+"/mcp", keys[1]), dest)

	var inHandler, timed, midRun int
	for round := 0; round < kills; round++ {
		if round > 0 {
			srv = startServer(t, bin, dir, &addr, flags...)
			// The dead server's lease runs out, then this one resumes.
			base := rc.delivered()
			deadline := time.Now().Add(30 * time.Second)
			for rc.delivered() == base {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: the restarted server did not resume the run:\n%s", round, srv.stderr.String())
				}
				time.Sleep(time.Millisecond)
			}
		}
		s := srv
		if round > 0 && rng.IntN(2) == 0 {
			inHandler++
			rc.armKill(rc.delivered()+1+rng.IntN(8), func() { _ = s.cmd.Process.Signal(syscall.SIGKILL) })
			select {
			case <-s.exited:
			case <-time.After(60 * time.Second):
				t.Fatalf("round %d: the receiver was not reached again", round)
			}
		} else {
			// The first kill may fall on the extraction, before any batch.
			timed++
			time.Sleep(time.Duration(rng.IntN(100_000)) * time.Microsecond)
			s.kill(t, func() {})
		}
		if rc.applyCount() < len(want) {
			midRun++
		}
	}
	if midRun != kills {
		t.Fatalf("only %d of %d kills fell before the run delivered everything: the run is too short for the test", midRun, kills)
	}

	srv = startServer(t, bin, dir, &addr, flags...)
	c := mcpClient(t, "http://"+addr+"/mcp", keys[1])
	run := waitRunEnd(t, c, runID)
	srv.stop(t)
	if run.State != store.RunSucceeded || run.Added != int64(len(want)) || run.Failed != 0 {
		t.Errorf("after %d kills the run ended %+v; want succeeded with %d added", kills, run, len(want))
	}
	rc.checkExactlyOnce(t, want)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	batches := (len(want) + 9) / 10
	if len(rc.applied) != batches {
		t.Errorf("the receiver applied %d batches, want %d", len(rc.applied), batches)
	}
	t.Logf("%d kills (%d right after a batch was applied, %d at a random time), %d members in %d batches, %d deliveries, %d repeats dropped, %s",
		kills, inHandler, timed, len(want), batches, rc.deliveries, rc.repeats, time.Since(began).Round(time.Millisecond))
}

// TestSyncRunRetriesAFailingReceiver: a receiver that answers 500, then
// 429 with Retry-After, then 200 still gets every member once, and the
// run, not only the delivery, ends succeeded with every member added.
func TestSyncRunRetriesAFailingReceiver(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	bin := buildServer(t, tmp)
	dir := filepath.Join(tmp, "data")
	addr := freeAddr(t)
	rc := newHookReceiver(t, http.StatusInternalServerError, http.StatusTooManyRequests)

	var srv *crashServer
	killOnCleanup(t, &srv)
	srv = startServer(t, bin, dir, &addr, syncFlags...)
	keys := keyRE.FindAllString(srv.stdout.String(), -1)
	if len(keys) < 2 {
		t.Fatalf("the first start printed %d keys", len(keys))
	}
	dest := createHook(t, bin, dir, "flaky-hook", rc.url, 50)
	want := customerKeys(t, dir)
	c := mcpClient(t, "http://"+addr+"/mcp", keys[1])
	run := waitRunEnd(t, c, startSync(t, c, dest))
	srv.stop(t)

	if run.State != store.RunSucceeded || run.Added != int64(len(want)) || run.Failed != 0 || run.Error != "" {
		t.Errorf("the run ended %+v; want succeeded with %d added", run, len(want))
	}
	rc.checkExactlyOnce(t, want)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.answered) < 3 || rc.answered[0].status != http.StatusInternalServerError ||
		rc.answered[1].status != http.StatusTooManyRequests || rc.answered[2].status != http.StatusOK {
		t.Fatalf("the receiver answered %v, want 500, 429, then 200s", rc.answered)
	}
	if wait := rc.answered[2].at.Sub(rc.answered[1].at); wait < time.Second {
		t.Errorf("the batch came again %s after the 429, before its Retry-After of 1s", wait)
	}
	if batches := (len(want) + 49) / 50; len(rc.applied) != batches || rc.deliveries != batches+2 {
		t.Errorf("%d deliveries applied %d batches; want %d batches, the first sent three times", rc.deliveries, len(rc.applied), batches)
	}
}

// TestServeRefusesBadSyncFlags: a scheduler tick or lease that is not a
// positive duration stops serve before anything starts, saying which
// flags must be positive.
func TestServeRefusesBadSyncFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, flag, value string }{
		{"zero tick", "--sync-tick", "0s"},
		{"negative tick", "--sync-tick", "-1s"},
		{"zero lease", "--sync-lease", "0s"},
		{"negative lease", "--sync-lease", "-2m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			_, stderr, err := run(t, dir, "serve", "--demo", "--scale", "50", "--http", "127.0.0.1:0", tc.flag, tc.value)
			if err == nil || !strings.Contains(stderr, "--sync-tick and --sync-lease must be positive") {
				t.Errorf("serve %s %s: %v, %q", tc.flag, tc.value, err, stderr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("serve %s %s wrote %d entries to the data directory", tc.flag, tc.value, len(entries))
			}
		})
	}
}
