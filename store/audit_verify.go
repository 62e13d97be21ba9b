package store

import (
	"context"
	"errors"
	"fmt"
)

// ReadAuditFunc reads audit events of one chain: Store.Audit or a sink's
// ReadAuditEvents for one table. Verification uses it with f.Oldest,
// f.AfterSeq and f.Limit (pages in chain order) and with f.Hash (one event).
type ReadAuditFunc func(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

// verifyPage is how many events verification reads at a time.
const verifyPage = 1000

// ChainReport is the outcome of verifying one chain or copy.
type ChainReport struct {
	// Events is how many events verified before the first break (all of
	// them when Break is nil).
	Events int64 `json:"events"`
	// HeadSeq and HeadHash identify the last verified event.
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash,omitempty"`
	// Behind is, for a copy, how many of the store's events it does not
	// have yet (not shipped).
	Behind int64 `json:"behind,omitempty"`
	// Break is the first broken link, nil when the chain is intact.
	Break *ChainBreak `json:"break,omitempty"`
}

// VerifyChain reads a whole chain in order through read and checks every
// link (see ChainVerifier). A broken link is reported in the report, not as
// an error; the error is for failed reads.
func VerifyChain(ctx context.Context, read ReadAuditFunc) (ChainReport, error) {
	v := &ChainVerifier{Lookup: lookupFunc(read)}
	var rep ChainReport
	s := &auditStream{read: read}
	for {
		e, ok, err := s.next(ctx)
		if err != nil {
			return rep, err
		}
		if !ok {
			break
		}
		if err := v.Add(ctx, e); err != nil {
			var b *ChainBreak
			if errors.As(err, &b) {
				rep.Break = b
				break
			}
			return rep, err
		}
	}
	rep.Events = v.Count()
	rep.HeadSeq, rep.HeadHash = v.Head()
	return rep, nil
}

// VerifyCopy checks a copy of the store's chain (the warehouse's
// audit_events): it must be an intact chain itself, and each of its events
// must be the store's event with the same seq, id and hash. With subset set
// (the warehouse's ai_operations, which holds only some events) the links
// between consecutive events are not checked, only each event's own hash and
// its match with the store. Behind counts the store's events after the
// copy's last one.
func VerifyCopy(ctx context.Context, storeRead, copyRead ReadAuditFunc, subset bool) (ChainReport, error) {
	v := &ChainVerifier{Lookup: lookupFunc(copyRead)}
	var rep ChainReport
	src := &auditStream{read: storeRead}
	cp := &auditStream{read: copyRead}
	var orig AuditEvent
	var have bool
	for {
		e, ok, err := cp.next(ctx)
		if err != nil {
			return rep, err
		}
		if !ok {
			break
		}
		if subset {
			err = checkOwnHash(e)
		} else {
			err = v.Add(ctx, e)
		}
		if err != nil {
			var b *ChainBreak
			if !errors.As(err, &b) {
				return rep, err
			}
			rep.Break = b
			return rep, nil
		}
		for !have || orig.Seq < e.Seq {
			if orig, have, err = src.next(ctx); err != nil {
				return rep, err
			}
			if !have {
				break
			}
		}
		if !have || orig.Seq != e.Seq {
			rep.Break = &ChainBreak{Kind: ChainMismatch, EventID: e.ID, Seq: e.Seq, Detail: "the store has no event with this seq"}
			return rep, nil
		}
		if orig.ID != e.ID || orig.Hash != e.Hash {
			rep.Break = &ChainBreak{Kind: ChainMismatch, EventID: e.ID, Seq: e.Seq,
				Detail: fmt.Sprintf("the store's event with this seq is %s with hash %s, the copy's hash is %s", orig.ID, short(orig.Hash), short(e.Hash))}
			return rep, nil
		}
		rep.Events++
		rep.HeadSeq, rep.HeadHash = e.Seq, e.Hash
		have = false
	}
	if subset {
		return rep, nil
	}
	// What the store has beyond the copy's head was not shipped yet.
	for {
		e, ok, err := src.next(ctx)
		if err != nil {
			return rep, err
		}
		if !ok {
			return rep, nil
		}
		if e.Seq > rep.HeadSeq {
			rep.Behind++
		}
	}
}

// checkOwnHash checks that an event's fields hash to its recorded hash.
func checkOwnHash(e AuditEvent) error {
	if e.Seq <= 0 || e.Hash == "" {
		return &ChainBreak{Kind: ChainUnchained, EventID: e.ID, Seq: e.Seq, Detail: "the event has no seq or hash"}
	}
	h, err := AuditHash(e)
	if err != nil || h != e.Hash {
		return &ChainBreak{Kind: ChainChanged, EventID: e.ID, Seq: e.Seq, Detail: "its fields do not hash to its recorded hash: the event was changed"}
	}
	return nil
}

// lookupFunc finds an event by hash through read.
func lookupFunc(read ReadAuditFunc) func(ctx context.Context, hash string) (AuditEvent, bool, error) {
	return func(ctx context.Context, hash string) (AuditEvent, bool, error) {
		evs, err := read(ctx, AuditFilter{Hash: hash, Limit: 1})
		if err != nil || len(evs) == 0 {
			return AuditEvent{}, false, err
		}
		return evs[0], true, nil
	}
}

// auditStream reads a chain page by page in seq order.
type auditStream struct {
	read  ReadAuditFunc
	buf   []AuditEvent
	after int64
	done  bool
}

func (s *auditStream) next(ctx context.Context) (AuditEvent, bool, error) {
	if len(s.buf) == 0 && !s.done {
		evs, err := s.read(ctx, AuditFilter{Oldest: true, AfterSeq: s.after, Limit: verifyPage})
		if err != nil {
			return AuditEvent{}, false, err
		}
		s.buf = evs
		if len(evs) < verifyPage {
			s.done = true
		}
		if len(evs) > 0 {
			s.after = evs[len(evs)-1].Seq
		}
	}
	if len(s.buf) == 0 {
		return AuditEvent{}, false, nil
	}
	e := s.buf[0]
	s.buf = s.buf[1:]
	return e, true, nil
}
