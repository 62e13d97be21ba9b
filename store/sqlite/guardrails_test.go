package sqlite_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

func TestRateLimitSlidingWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		ok, _, err := b.db.Take(b.ctx, "k", 3, time.Hour, now.Add(time.Duration(i)*time.Minute), true)
		if err != nil || !ok {
			t.Fatalf("use %d: %v %v", i+1, ok, err)
		}
	}
	ok, retry, err := b.db.Take(b.ctx, "k", 3, time.Hour, now.Add(10*time.Minute), true)
	if err != nil || ok || retry != 50*time.Minute {
		t.Fatalf("4th use: ok %v retry %v err %v, want refused with 50m to wait", ok, retry, err)
	}
	// Peeking never counts, and another bucket is independent.
	for range 5 {
		if ok, _, _ := b.db.Take(b.ctx, "other", 3, time.Hour, now, false); !ok {
			t.Fatal("peek refused")
		}
	}
	if ok, _, _ := b.db.Take(b.ctx, "other", 3, time.Hour, now, true); !ok {
		t.Fatal("peeks were counted")
	}
	// Uses leave the window as time passes.
	if ok, _, _ := b.db.Take(b.ctx, "k", 3, time.Hour, now.Add(61*time.Minute), true); !ok {
		t.Fatal("the window did not slide")
	}
	// Counts survive a restart.
	if err := b.db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(b.ctx, b.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// In the window ending at 62m: the use at 61m, counted before the
	// restart, plus two more fill it.
	for i := range 2 {
		if ok, _, _ := db.Take(b.ctx, "k", 3, time.Hour, now.Add(62*time.Minute), true); !ok {
			t.Fatalf("use %d after restart refused", i+1)
		}
	}
	if ok, _, _ := db.Take(b.ctx, "k", 3, time.Hour, now.Add(62*time.Minute), true); ok {
		t.Fatal("counts were lost across a restart")
	}
	if _, _, err := db.Take(b.ctx, "k", 0, time.Hour, now, true); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("zero limit: %v", err)
	}
}

func TestRateLimitConcurrentTakesNeverExceedLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	var granted atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			ok, _, err := b.db.Take(b.ctx, "shared", 10, time.Hour, now, true)
			if err != nil {
				t.Error(err)
			}
			if ok {
				granted.Add(1)
			}
		})
	}
	wg.Wait()
	if granted.Load() != 10 {
		t.Errorf("%d uses granted, want exactly 10", granted.Load())
	}
}

func TestKillSwitch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if frozen, err := b.db.WritesFrozen(b.ctx, b.ws.ID); err != nil || frozen {
		t.Fatalf("new workspace frozen=%v err=%v", frozen, err)
	}
	if err := b.db.SetWritesFrozen(b.ctx, b.ws.ID, true); err != nil {
		t.Fatal(err)
	}
	if frozen, _ := b.db.WritesFrozen(b.ctx, b.ws.ID); !frozen {
		t.Fatal("kill switch did not stick")
	}
	if frozen, _ := b.db.WritesFrozen(b.ctx, b.other.ID); frozen {
		t.Fatal("kill switch leaked into another workspace")
	}
	if err := b.db.SetWritesFrozen(b.ctx, "ws_nope", true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown workspace: %v", err)
	}
	if _, err := b.db.WritesFrozen(b.ctx, "ws_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown workspace: %v", err)
	}
}

func TestPolicySets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.db.ActivePolicySet(b.ctx, b.ws.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("new workspace has a stored policy set: %v", err)
	}
	for _, v := range []string{"v1", "v2"} {
		if err := b.db.ApplyPolicySet(b.ctx, b.ws.ID, store.PolicySet{Version: v, Source: "policies: [] # " + v, AppliedBy: "ops"}); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := b.db.ActivePolicySet(b.ctx, b.ws.ID)
	if err != nil || ps.Version != "v2" || ps.AppliedBy != "ops" || ps.AppliedAt.IsZero() {
		t.Fatalf("active = %+v %v", ps, err)
	}
	if _, err := b.db.ActivePolicySet(b.ctx, b.other.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the policy set leaked into another workspace: %v", err)
	}
	var n int
	if err := b.raw.QueryRow(`SELECT count(*) FROM policy_sets WHERE workspace_id = ?`, b.ws.ID).Scan(&n); err != nil || n != 2 {
		t.Errorf("history: %d sets (%v), want both kept", n, err)
	}
	if err := b.db.ApplyPolicySet(b.ctx, b.ws.ID, store.PolicySet{AppliedBy: "ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ActivePolicySet(b.ctx, b.ws.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after reset: %v", err)
	}
	for _, bad := range []store.PolicySet{{Source: "x", AppliedBy: "ops"}, {Version: "v", Source: "x"}} {
		if err := b.db.ApplyPolicySet(b.ctx, b.ws.ID, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ApplyPolicySet(%+v) = %v", bad, err)
		}
	}
	if err := b.db.ApplyPolicySet(b.ctx, "ws_nope", store.PolicySet{Version: "v", Source: "x", AppliedBy: "ops"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown workspace: %v", err)
	}
}

func TestRateLimitReleaseGivesBackOneUse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC)
	// Two uses at the same instant, as two calls decided together.
	for i := range 2 {
		if ok, _, err := b.db.Take(b.ctx, "k", 2, time.Hour, now, true); err != nil || !ok {
			t.Fatalf("use %d: %v %v", i+1, ok, err)
		}
	}
	if err := b.db.Release(b.ctx, "k", now.In(time.FixedZone("CET", 3600))); err != nil {
		t.Fatal(err)
	}
	// One use came back, not both.
	if ok, _, _ := b.db.Take(b.ctx, "k", 2, time.Hour, now.Add(time.Second), true); !ok {
		t.Fatal("the released use was not given back")
	}
	if ok, _, _ := b.db.Take(b.ctx, "k", 2, time.Hour, now.Add(2*time.Second), true); ok {
		t.Fatal("release gave back more than one use")
	}
	// Releasing a use that is not there, or of another bucket, changes nothing.
	if err := b.db.Release(b.ctx, "k", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := b.db.Release(b.ctx, "other", now); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := b.db.Take(b.ctx, "k", 2, time.Hour, now.Add(3*time.Second), false); ok {
		t.Fatal("a release of nothing freed a use")
	}
}
