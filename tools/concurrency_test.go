package tools

import (
	"context"
	"errors"
	"testing"
	"time"
)

// queueProbe drives a QueryQueue from a test: hold takes a slot at once,
// wait queues a query that reports on granted when it gets its slot and
// keeps it until end is closed.
type queueProbe struct {
	t       *testing.T
	q       *QueryQueue
	granted chan string
	end     chan struct{}
}

func newQueueProbe(t *testing.T, c Concurrency) *queueProbe {
	p := &queueProbe{t: t, q: NewQueryQueue(c), granted: make(chan string, 10), end: make(chan struct{})}
	t.Cleanup(func() { close(p.end) })
	return p
}

func (p *queueProbe) hold(key, human string) func() {
	p.t.Helper()
	release, err := p.q.acquire(context.Background(), key, human, 0)
	if err != nil {
		p.t.Fatalf("acquire %s/%s: %v", key, human, err)
	}
	return release
}

func (p *queueProbe) wait(key, human string, waiting int) {
	p.t.Helper()
	go func() {
		release, err := p.q.acquire(context.Background(), key, human, 0)
		if err != nil {
			p.t.Error(err)
			return
		}
		p.granted <- key
		<-p.end
		release()
	}()
	for range 2000 {
		if _, w := p.q.Stats(); w == waiting {
			return
		}
		time.Sleep(time.Millisecond)
	}
	p.t.Fatalf("never %d waiting", waiting)
}

func (p *queueProbe) next(want string) {
	p.t.Helper()
	if got := <-p.granted; got != want {
		p.t.Fatalf("the freed slot went to %s, want %s", got, want)
	}
}

func TestQueryQueueCaps(t *testing.T) {
	t.Parallel()
	p := newQueueProbe(t, Concurrency{PerKey: 1, PerHuman: 2, Total: 3})
	r1 := p.hold("a1", "hana")
	r2 := p.hold("a2", "hana")
	p.wait("a1", "hana", 1) // key a1 is at its cap
	p.wait("a3", "hana", 2) // hana is at her cap
	if r, _ := p.q.Stats(); r != 2 {
		t.Fatalf("%d running, want 2: a slot is free but only hana waits", r)
	}
	p.hold("b1", "ivo") // another human runs at once
	// a2 ends: a3 may run (hana is below her cap); a1's key is still at its.
	r2()
	p.next("a3")
	r1()
	p.next("a1")
}

func TestQueryQueueServesTheHumanWithFewestRunning(t *testing.T) {
	t.Parallel()
	p := newQueueProbe(t, Concurrency{PerKey: 2, PerHuman: 2, Total: 2})
	r1 := p.hold("a1", "hana")
	p.hold("a1", "hana")
	p.wait("a1", "hana", 1)
	p.wait("b1", "ivo", 2)
	// A slot frees: hana has one running, ivo none, so ivo's query runs
	// although hana's waited longer.
	r1()
	p.next("b1")
}

func TestQueryQueueTiesGoToTheLongestWaiting(t *testing.T) {
	t.Parallel()
	p := newQueueProbe(t, Concurrency{PerKey: 2, PerHuman: 2, Total: 3})
	p.hold("a1", "hana")
	p.hold("b1", "ivo")
	r := p.hold("c1", "cleo")
	p.wait("b1", "ivo", 1)
	p.wait("a1", "hana", 2)
	// cleo's query ends; hana and ivo have one running each: ivo's query
	// waited longer.
	r()
	p.next("b1")
}

func TestQueryQueueGivesUp(t *testing.T) {
	t.Parallel()
	q := NewQueryQueue(Concurrency{PerKey: 1, PerHuman: 1, Total: 1})
	release, err := q.acquire(context.Background(), "k", "h", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.acquire(ctx, "k2", "h2", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	if _, err := q.acquire(context.Background(), "k2", "h2", time.Millisecond); err != errBusy {
		t.Errorf("wait past its time: %v", err)
	}
	if _, w := q.Stats(); w != 0 {
		t.Errorf("%d left waiting after giving up", w)
	}
	if _, err := q.acquire(context.Background(), "", "h", 0); err == nil {
		t.Errorf("a query without a key was admitted")
	}
	release()
	if r, _ := q.Stats(); r != 0 {
		t.Errorf("%d running after release", r)
	}
	// The queue is usable again.
	release, err = q.acquire(context.Background(), "k2", "h2", 0)
	if err != nil {
		t.Fatal(err)
	}
	release()
}
