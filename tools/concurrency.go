package tools

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Default caps on concurrent warehouse queries (Concurrency).
const (
	DefaultQueriesPerKey   = 2
	DefaultQueriesPerHuman = 3
	DefaultQueriesTotal    = 4
)

// Concurrency caps the warehouse queries the tools run at once: per API
// key, per human across their keys (store.Principal.Human) and in all. A
// zero field takes its default. Total should not exceed the warehouse's
// connection pool (the embedded warehouse has at least 4), so callers wait
// in the QueryQueue, in a fair order, rather than for a connection.
type Concurrency struct {
	PerKey   int
	PerHuman int
	Total    int
}

// withDefaults fills in the zero fields.
func (c Concurrency) withDefaults() Concurrency {
	if c.PerKey <= 0 {
		c.PerKey = DefaultQueriesPerKey
	}
	if c.PerHuman <= 0 {
		c.PerHuman = DefaultQueriesPerHuman
	}
	if c.Total <= 0 {
		c.Total = DefaultQueriesTotal
	}
	return c
}

// QueryQueue admits warehouse queries under Concurrency caps. A query
// that would pass a cap waits; when a query ends, the next to run is the
// waiting one whose human has the fewest queries running, the longest
// waiting first among equals, among those their key's and human's caps let
// run. So one human flooding the warehouse holds at most PerHuman
// connections, and another human's query runs at the next free slot
// instead of queueing behind the flood. It is safe for concurrent use.
type QueryQueue struct {
	caps Concurrency

	mu      sync.Mutex
	running int
	byKey   map[string]int
	byHuman map[string]int
	waiting []*queryWaiter
}

// queryWaiter is one query waiting for a slot; ready is closed when it
// has one.
type queryWaiter struct {
	key, human string
	ready      chan struct{}
}

// NewQueryQueue returns a queue with the caps c (zero fields: defaults).
func NewQueryQueue(c Concurrency) *QueryQueue {
	return &QueryQueue{caps: c.withDefaults(), byKey: map[string]int{}, byHuman: map[string]int{}}
}

// Stats returns how many queries run and how many wait.
func (q *QueryQueue) Stats() (running, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running, len(q.waiting)
}

// errBusy is what a query that waited longer than its timeout for a slot
// gets: the model can act on it.
var errBusy = Errorf("the warehouse is busy with other queries (yours or other people's) and this one could not start in time; " +
	"wait for your other calls to finish, then try again with fewer calls at once")

// acquire waits for a slot for a query of key and human, at most wait
// (none: until ctx ends), and returns the function that frees it. A query
// without a key or human is refused: it cannot be counted (fail closed).
func (q *QueryQueue) acquire(ctx context.Context, key, human string, wait time.Duration) (func(), error) {
	if key == "" || human == "" {
		return nil, errors.New("warehouse query without a key or human to count it against")
	}
	w := &queryWaiter{key: key, human: human, ready: make(chan struct{})}
	q.mu.Lock()
	q.waiting = append(q.waiting, w)
	q.admit()
	q.mu.Unlock()
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-w.ready:
		return func() { q.release(w) }, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = errBusy
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if i := slices.Index(q.waiting, w); i >= 0 {
		q.waiting = slices.Delete(q.waiting, i, i+1)
		return nil, err
	}
	// The slot came as the wait ended: hand it on.
	q.done(w)
	return nil, err
}

// release frees w's slot and admits whoever may run next.
func (q *QueryQueue) release(w *queryWaiter) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.done(w)
}

// done frees w's slot; q.mu is held.
func (q *QueryQueue) done(w *queryWaiter) {
	q.running--
	q.byKey[w.key]--
	q.byHuman[w.human]--
	if q.byKey[w.key] == 0 {
		delete(q.byKey, w.key)
	}
	if q.byHuman[w.human] == 0 {
		delete(q.byHuman, w.human)
	}
	q.admit()
}

// admit gives free slots to waiting queries in the fair order; q.mu is
// held.
func (q *QueryQueue) admit() {
	for q.running < q.caps.Total {
		best := -1
		for i, w := range q.waiting {
			if q.byKey[w.key] >= q.caps.PerKey || q.byHuman[w.human] >= q.caps.PerHuman {
				continue
			}
			if best < 0 || q.byHuman[w.human] < q.byHuman[q.waiting[best].human] {
				best = i
			}
		}
		if best < 0 {
			return
		}
		w := q.waiting[best]
		q.waiting = slices.Delete(q.waiting, best, best+1)
		q.running++
		q.byKey[w.key]++
		q.byHuman[w.human]++
		close(w.ready)
	}
}
