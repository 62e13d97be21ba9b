package activation_test

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/signalsmith/agent-server/store"
)

// receiver is a test double of a destination: it records every batch it
// is sent and answers as its hooks say. It dedups by batch identity (run
// id and number, the webhook's Idempotency-Key) the way a real receiver
// would, and counts repeats.
type receiver struct {
	mu sync.Mutex
	// refuse, when set, refuses a record with a reason.
	refuse func(r store.SyncRecord) (string, bool)
	// before runs before a batch is taken; an error is returned from
	// Send and the batch is not taken.
	before func(ctx context.Context, b store.SyncBatch) error
	// after runs once a batch is taken, before Send returns.
	after func(b store.SyncBatch)

	batches []store.SyncBatch // every batch taken, in order
	seen    map[string]int    // Idempotency-Key -> times taken
	state   map[string]store.SyncRecord
	closed  int
}

func newReceiver() *receiver {
	return &receiver{seen: map[string]int{}, state: map[string]store.SyncRecord{}}
}

func (r *receiver) Send(ctx context.Context, b store.SyncBatch) (store.BatchResult, error) {
	if r.before != nil {
		if err := r.before(ctx, b); err != nil {
			return store.BatchResult{}, err
		}
	}
	r.mu.Lock()
	res := store.BatchResult{}
	key := fmt.Sprintf("%s/%d", b.RunID, b.Number)
	r.seen[key]++
	cp := b
	cp.Records = append([]store.SyncRecord(nil), b.Records...)
	r.batches = append(r.batches, cp)
	for i, rec := range b.Records {
		if r.refuse != nil {
			if reason, ok := r.refuse(rec); ok {
				if res.Failed == nil {
					res.Failed = map[int]string{}
				}
				res.Failed[i] = reason
				continue
			}
		}
		if r.seen[key] > 1 {
			continue // a repeat: dropped by Idempotency-Key
		}
		switch rec.Op {
		case store.OpDelete:
			delete(r.state, rec.Key)
		default:
			rec.Fields = maps.Clone(rec.Fields)
			r.state[rec.Key] = rec
		}
	}
	r.mu.Unlock()
	if r.after != nil {
		r.after(b)
	}
	return res, nil
}

func (r *receiver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed++
	return nil
}

// take returns and forgets the batches received so far.
func (r *receiver) take() []store.SyncBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.batches
	r.batches = nil
	return b
}

// records flattens batches into their records by key; a key sent twice
// is reported by the returned count.
func records(batches []store.SyncBatch) (map[string]store.SyncRecord, int) {
	out := map[string]store.SyncRecord{}
	dups := 0
	for _, b := range batches {
		for _, r := range b.Records {
			if _, ok := out[r.Key]; ok {
				dups++
			}
			out[r.Key] = r
		}
	}
	return out, dups
}
