package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Audit tables of the warehouse's cdp_audit schema (DESIGN.md section 8):
// every event goes to AuditTableEvents, events with source AI also to
// AuditTableAI.
const (
	AuditTableEvents = "audit_events"
	AuditTableAI     = "ai_operations"
)

// AuditHashVersion names the canonical encoding AuditHash hashes. It is the
// first item of the encoding, so a future encoding can never collide with it.
const AuditHashVersion = "signalsmith-audit-v1"

// AuditHash returns the hash of e that the chain records: the lowercase hex
// SHA-256 of the canonical encoding of e's fields and e.PrevHash (Hash
// itself is left out). The encoding is a sequence of netstrings, one per
// item, each the item's byte length in decimal, ':', the bytes, ',':
//
//	AuditHashVersion, seq, id, at, workspace, actor_type, actor_id,
//	actor_name, key_prefix, source, action, tool, resource_type,
//	resource_id, decision, rules, reason, approval_id, args, result,
//	latency_ms, client, session_id, request_id, prev_hash
//
// seq is decimal; at is RFC 3339 in UTC with the fraction of a second
// trimmed of trailing zeros (Go's time.RFC3339Nano); rules and args are
// CanonicalJSON of the values, or empty when there are none; latency_ms is
// the shortest decimal that reads back as the same float64, without an
// exponent (strconv.FormatFloat(x, 'f', -1, 64)); prev_hash is empty for
// the first event of a chain. Text fields are UTF-8 (a store replaces
// invalid bytes with U+FFFD before hashing). It returns an error only for
// args or rules that cannot be encoded.
func AuditHash(e AuditEvent) (string, error) {
	var rules, args []byte
	var err error
	if len(e.Rules) > 0 {
		if rules, err = CanonicalJSON(e.Rules); err != nil {
			return "", fmt.Errorf("audit hash: rules: %w", err)
		}
	}
	if e.Args != nil {
		if args, err = CanonicalJSON(e.Args); err != nil {
			return "", fmt.Errorf("audit hash: args: %w", err)
		}
	}
	var b bytes.Buffer
	item := func(s []byte) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.Write(s)
		b.WriteByte(',')
	}
	text := func(s string) { item([]byte(s)) }
	text(AuditHashVersion)
	text(strconv.FormatInt(e.Seq, 10))
	text(e.ID)
	text(e.At.UTC().Format(time.RFC3339Nano))
	for _, s := range []string{e.WorkspaceID, e.ActorType, e.ActorID, e.ActorName, e.KeyPrefix, e.Source, e.Action,
		e.Tool, e.ResourceType, e.ResourceID, e.Decision} {
		text(s)
	}
	item(rules)
	text(e.Reason)
	text(e.ApprovalID)
	item(args)
	text(e.Result)
	text(strconv.FormatFloat(e.LatencyMS, 'f', -1, 64))
	text(e.Client)
	text(e.SessionID)
	text(e.RequestID)
	text(e.PrevHash)
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// AuditFactsArg is the member of an audit event's args that holds the
// guardrail facts its decision used (guardrails.AllFacts declares them):
// sizes, counts, flags and names of objects, never a row value, so the
// record stays free of personal data. With the event's actor, source,
// tool, resource type and the other args, a decision can be made again on
// the facts it was made on. The gate records them (WithAuditFacts) on the
// event of every call whose tool computed facts: allowed, denied, queued
// for approval, and run once approved. Facts are part of args, so they
// are hashed into the chain as args are (AuditHash) and bounded with them
// (BoundAudit); the encoding is unchanged.
const AuditFactsArg = "$facts"

// WithAuditFacts returns args, a call's recorded arguments, with facts
// under AuditFactsArg; a member of that name the caller sent is not kept
// (no tool accepts one, and only the gate records facts). Facts come first
// in the 16 KiB budget of args: when the arguments leave them no room,
// the arguments give way to the truncation member ("_truncated": true) and
// the facts are kept whole. With nil facts it only drops the caller's
// member.
func WithAuditFacts(args, facts map[string]any) map[string]any {
	if _, sent := args[AuditFactsArg]; !sent && facts == nil {
		return args
	}
	out := make(map[string]any, len(args)+1)
	for k, v := range args {
		if k != AuditFactsArg {
			out[k] = v
		}
	}
	if facts == nil {
		return out
	}
	out[AuditFactsArg] = facts
	alone := boundArgs(map[string]any{AuditFactsArg: facts})[AuditFactsArg]
	both := boundArgs(out)
	a, errA := CanonicalJSON(alone)
	b, errB := CanonicalJSON(both[AuditFactsArg])
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		return map[string]any{AuditFactsArg: alone, truncatedField: true}
	}
	return both
}

// CanonicalJSON is the one JSON text of an audit value (args or rules) that
// stores write and AuditHash hashes: encoding/json's output with object keys
// sorted, no insignificant white space, no HTML escaping, numbers kept as
// first written, and invalid UTF-8 replaced by U+FFFD. It is a fixed point:
// decoding the text (with json.Decoder.UseNumber) and encoding the result
// again gives the same text, so a copy read back from any store hashes the
// same.
func CanonicalJSON(v any) ([]byte, error) {
	first, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var generic any
	if err := DecodeJSON(first, &generic); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(generic); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// DecodeJSON decodes an audit value's JSON text with numbers as
// json.Number, which is how audit args and rules are read back so that
// CanonicalJSON reproduces the stored text exactly.
func DecodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after JSON value")
	}
	return nil
}

// ValidText returns s with invalid UTF-8 replaced by U+FFFD: the form every
// text field of an audit event is recorded and hashed in.
func ValidText(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// PendingAudit is the audit event of a call whose state change has not been
// committed yet. The gate attaches it to the call's context
// (WithPendingAudit); the store method that commits the change records the
// event, with decision executed, in the same transaction, and marks it
// written, so the gate does not write it again. A PendingAudit is safe for
// concurrent use.
type PendingAudit struct {
	mu       sync.Mutex
	ev       *AuditEvent
	prepare  func(*AuditEvent)
	resource string
	written  bool
}

type pendingAuditKey struct{}

// WithPendingAudit returns a context that carries ev as the pending audit
// event of the call, and the PendingAudit that says whether a store wrote
// it. prepare, when not nil, completes a copy of the event just before a
// store records it (latency, resource, result summary); it runs inside the
// store's transaction and must not touch the store. Once written, *ev is
// updated to the event as recorded (id, time, decision, chain fields).
func WithPendingAudit(ctx context.Context, ev *AuditEvent, prepare func(*AuditEvent)) (context.Context, *PendingAudit) {
	p := &PendingAudit{ev: ev, prepare: prepare}
	return context.WithValue(ctx, pendingAuditKey{}, p), p
}

// PendingAuditFrom returns the pending audit event of ctx, nil when none.
func PendingAuditFrom(ctx context.Context) *PendingAudit {
	p, _ := ctx.Value(pendingAuditKey{}).(*PendingAudit)
	return p
}

// NoteAuditResource tells the pending audit event of ctx, if any, the id of
// the object a store method is creating, so the event names it when the
// call itself had no resource id yet. Store implementations call it inside
// the transaction that creates the object.
func NoteAuditResource(ctx context.Context, id string) {
	if p := PendingAuditFrom(ctx); p != nil {
		p.mu.Lock()
		p.resource = id
		p.mu.Unlock()
	}
}

// Event returns the event a store should record in the transaction it is
// about to commit, and false when there is none to record (already
// written). The event has decision executed and is prepared by the
// caller's prepare function; the store assigns what is still missing.
func (p *PendingAudit) Event() (AuditEvent, bool) {
	if p == nil {
		return AuditEvent{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.written {
		return AuditEvent{}, false
	}
	e := *p.ev
	e.Decision = DecisionExecuted
	if e.ResourceID == "" {
		e.ResourceID = p.resource
	}
	if p.prepare != nil {
		p.prepare(&e)
	}
	return e, true
}

// MarkWritten records that e, as returned by Event and completed by the
// store, was committed.
func (p *PendingAudit) MarkWritten(e AuditEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.written = true
	*p.ev = e
}

// Written reports whether a store committed the event (false for nil).
func (p *PendingAudit) Written() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written
}

// AuditSink is where audit events are shipped: the warehouse's cdp_audit
// schema, as tables a customer can query with SQL. The embedded SQLite
// warehouse implements it now and the Trino warehouse will (with INSERT).
// Implementations are safe for concurrent use.
type AuditSink interface {
	// EnsureAuditTables creates the tables AuditTableEvents and
	// AuditTableAI when missing, with a column per event field.
	EnsureAuditTables(ctx context.Context) error
	// WriteAuditEvents writes events to AuditTableEvents, and those with
	// source AI also to AuditTableAI, all or none. It is idempotent by
	// event id: an event already there is left as it is, so shipping a
	// batch again after a crash duplicates nothing. An error means the
	// warehouse is unavailable or refused the batch; retry later.
	WriteAuditEvents(ctx context.Context, events []AuditEvent) error
	// ReadAuditEvents reads back events of table (AuditTableEvents or
	// AuditTableAI), for verification: f.AfterSeq, f.Hash, f.Limit and
	// f.Oldest apply. A table that does not exist yet holds no events.
	ReadAuditEvents(ctx context.Context, table string, f AuditFilter) ([]AuditEvent, error)
}

// AuditOutbox is the store's side of shipping: the events not yet shipped,
// in chain order, and the shipping state. The metadata store implements it.
type AuditOutbox interface {
	// UnshippedAudit returns up to limit events waiting to be shipped,
	// oldest first.
	UnshippedAudit(ctx context.Context, limit int) ([]AuditEvent, error)
	// MarkAuditShipped removes events (a batch UnshippedAudit returned,
	// now in the sink) from the outbox and records the last one as
	// shipped at at.
	MarkAuditShipped(ctx context.Context, events []AuditEvent, at time.Time) error
	// NoteAuditShipFailure records a failed attempt to ship, for status.
	NoteAuditShipFailure(ctx context.Context, reason string, at time.Time) error
	// AuditShipping returns the backlog and the last shipped event.
	AuditShipping(ctx context.Context) (AuditShipping, error)
	// AuditAppended is signalled (without blocking, coalesced) after this
	// process commits audit events, so a shipper need not poll quickly.
	AuditAppended() <-chan struct{}
}

// AuditShipping is the state of shipping audit events to the warehouse.
type AuditShipping struct {
	// Backlog is the number of events not yet shipped.
	Backlog int64 `json:"backlog"`
	// LastSeq, LastID and LastHash identify the last event shipped (chain
	// order); zero when none was.
	LastSeq  int64  `json:"last_seq"`
	LastID   string `json:"last_id,omitempty"`
	LastHash string `json:"last_hash,omitempty"`
	// LastAt is the last shipped event's own time; ShippedAt when it was
	// shipped.
	LastAt    *time.Time `json:"last_at,omitempty"`
	ShippedAt *time.Time `json:"shipped_at,omitempty"`
	// Shipped counts events shipped so far.
	Shipped int64 `json:"shipped"`
	// Failures counts failed attempts since the last success, with the last
	// reason and when it happened.
	Failures    int64      `json:"failures"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// Kinds of a broken link in an audit chain.
const (
	// ChainChanged: an event's fields no longer hash to its recorded hash.
	ChainChanged = "changed"
	// ChainDeleted: events are missing before this one (or at the end).
	ChainDeleted = "deleted"
	// ChainReordered: the event is chained after an event that is not the
	// one before it in the chain's order.
	ChainReordered = "reordered"
	// ChainUnchained: the event has no place in the chain (no seq or hash),
	// as when a row was inserted behind the store's back.
	ChainUnchained = "unchained"
	// ChainMismatch: a copy's event differs from the store's.
	ChainMismatch = "mismatch"
)

// ChainBreak names the first broken link of an audit chain.
type ChainBreak struct {
	Kind    string `json:"kind"`
	EventID string `json:"event_id"`
	Seq     int64  `json:"seq"`
	Detail  string `json:"detail"`
}

func (b *ChainBreak) Error() string {
	return fmt.Sprintf("audit chain broken at event %s (seq %d): %s: %s", b.EventID, b.Seq, b.Kind, b.Detail)
}

// ChainVerifier checks the events of one chain, fed in seq order, and names
// the first broken link. Lookup, when set, finds the event with a given hash
// anywhere in the chain, so a link that points elsewhere can be told apart
// as reordered (the event exists) or deleted (it does not).
type ChainVerifier struct {
	Lookup func(ctx context.Context, hash string) (AuditEvent, bool, error)

	prev    *AuditEvent
	n       int64
	headSeq int64
	head    string
}

// Add checks the next event. It returns a *ChainBreak for a broken link, or
// another error when Lookup fails.
func (v *ChainVerifier) Add(ctx context.Context, e AuditEvent) error {
	if e.Seq <= 0 || e.Hash == "" {
		return &ChainBreak{Kind: ChainUnchained, EventID: e.ID, Seq: e.Seq, Detail: "the event has no seq or hash: it was inserted outside the chain"}
	}
	wantPrev, wantSeq := "", int64(1)
	if v.prev != nil {
		wantPrev, wantSeq = v.prev.Hash, v.prev.Seq+1
	}
	if e.PrevHash != wantPrev {
		return v.brokenLink(ctx, e, wantSeq)
	}
	if e.Seq != wantSeq {
		// Linked correctly but numbered wrong: the seq was edited.
		return &ChainBreak{Kind: ChainChanged, EventID: e.ID, Seq: e.Seq,
			Detail: fmt.Sprintf("seq %d follows seq %d: the seq was changed", e.Seq, wantSeq-1)}
	}
	h, err := AuditHash(e)
	if err != nil {
		return &ChainBreak{Kind: ChainChanged, EventID: e.ID, Seq: e.Seq, Detail: err.Error()}
	}
	if h != e.Hash {
		return &ChainBreak{Kind: ChainChanged, EventID: e.ID, Seq: e.Seq,
			Detail: fmt.Sprintf("its fields hash to %s, not to the recorded %s: the event was changed", short(h), short(e.Hash))}
	}
	v.prev = &e
	v.n++
	v.headSeq, v.head = e.Seq, e.Hash
	return nil
}

// brokenLink explains an event whose prev_hash is not the hash of the event
// before it.
func (v *ChainVerifier) brokenLink(ctx context.Context, e AuditEvent, wantSeq int64) error {
	before := "the start of the chain"
	if v.prev != nil {
		before = fmt.Sprintf("event %s (seq %d)", v.prev.ID, v.prev.Seq)
	}
	if e.PrevHash != "" && v.Lookup != nil {
		target, ok, err := v.Lookup(ctx, e.PrevHash)
		if err != nil {
			return err
		}
		if ok {
			return &ChainBreak{Kind: ChainReordered, EventID: e.ID, Seq: e.Seq,
				Detail: fmt.Sprintf("it is chained after event %s (seq %d) but follows %s", target.ID, target.Seq, before)}
		}
	}
	if e.PrevHash == "" {
		return &ChainBreak{Kind: ChainChanged, EventID: e.ID, Seq: e.Seq,
			Detail: fmt.Sprintf("it claims to start the chain but follows %s", before)}
	}
	missing := "one or more events"
	if e.Seq > wantSeq {
		missing = fmt.Sprintf("%d event(s) (seq %d to %d)", e.Seq-wantSeq, wantSeq, e.Seq-1)
	}
	return &ChainBreak{Kind: ChainDeleted, EventID: e.ID, Seq: e.Seq,
		Detail: fmt.Sprintf("%s between %s and this event are missing: its prev_hash %s matches no event", missing, before, short(e.PrevHash))}
}

// Count returns how many events verified so far.
func (v *ChainVerifier) Count() int64 { return v.n }

// Head returns the seq and hash of the last verified event.
func (v *ChainVerifier) Head() (int64, string) { return v.headSeq, v.head }

// short abbreviates a hash for messages.
func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// AuditAppender is the writing side of AuditLog: what Audited, and every
// consumer that only records events, needs of a Store.
type AuditAppender interface {
	// AppendAudit durably records one event, chained (Seq, PrevHash, Hash)
	// and queued for shipping, before returning. Concurrent appends may
	// share one commit. It returns ErrInvalid for an event that lacks a
	// source, decision or action or cannot be encoded, and ErrConflict for
	// an id already recorded. A call's state change records its event in
	// its own transaction instead: see WithPendingAudit.
	AppendAudit(ctx context.Context, e AuditEvent) error
}

// Audited runs change, a store change made by a person (the command line,
// the JSON API), with ev as its pending audit event, so the store records
// ev (decision executed) in the change's own transaction. If the change
// fails, ev is recorded as failed with reason(err), which must say nothing
// secret; if it succeeded without recording ev (it wrote nothing), ev is
// recorded as executed. It returns change's error, or the audit write's
// when the change was made but its record could not be written.
func Audited(ctx context.Context, s AuditAppender, ev AuditEvent, reason func(error) string, change func(context.Context) error) error {
	start := time.Now()
	pctx, p := WithPendingAudit(ctx, &ev, func(e *AuditEvent) {
		e.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	})
	err := change(pctx)
	if p.Written() {
		return err
	}
	ev.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		ev.Decision, ev.Reason, ev.Result = DecisionFailed, reason(err), ""
	} else {
		ev.Decision = DecisionExecuted
	}
	if aerr := s.AppendAudit(context.WithoutCancel(ctx), ev); aerr != nil {
		if err != nil {
			return err
		}
		return fmt.Errorf("the change was made but its audit record failed: %w", aerr)
	}
	return err
}

// Patterns of secrets that never enter an audit record, an approval, a log
// line or an error, wherever they appear in a text. keyPattern matches a
// SignalSmith API key (ss_, a 12-character prefix, an underscore, the
// secret), whose prefix is kept; headerPattern an Authorization,
// Proxy-Authorization, Cookie or Set-Cookie header written out in text
// ("Cookie: a=b") up to the end of the line; bearerPattern a bearer
// credential.
var (
	keyPattern    = regexp.MustCompile(`(ss_[a-z2-7]{12})_[a-z2-7]{20,}`)
	headerPattern = regexp.MustCompile(`(?i)\b((?:proxy-)?authorization|set-cookie|cookie)(\s*[:=]\s*)[^\r\n]*`)
	bearerPattern = regexp.MustCompile(`(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+`)
)

// RedactSecrets cuts every API key in s to its public prefix
// ("ss_abcdefghijkl_[redacted]") and removes the values of Authorization,
// Cookie and Set-Cookie headers and bearer credentials written in it. It
// does not shorten s otherwise.
func RedactSecrets(s string) string {
	// Every event's every field passes here: look for what each pattern
	// needs before running it. A text that is not ASCII runs them all, as
	// (?i) also folds letters such as the Kelvin sign into k.
	ascii := isASCII(s)
	if strings.Contains(s, "ss_") {
		s = keyPattern.ReplaceAllString(s, "${1}_[redacted]")
	}
	if !ascii || containsFold(s, "authorization") || containsFold(s, "cookie") {
		s = headerPattern.ReplaceAllString(s, "${1}${2}[redacted]")
	}
	if !ascii || containsFold(s, "bearer") {
		s = bearerPattern.ReplaceAllString(s, "${1} [redacted]")
	}
	return s
}

// isASCII reports whether s has only ASCII bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// containsFold reports whether the ASCII text s contains word (lowercase
// ASCII) in any letter case.
func containsFold(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		if s[i]|0x20 == word[0] && strings.EqualFold(s[i:i+len(word)], word) {
			return true
		}
	}
	return false
}

// HasAPIKey reports whether s contains something shaped like a SignalSmith
// API key.
func HasAPIKey(s string) bool { return keyPattern.MatchString(s) }

// TruncationMark ends a text BoundAudit cut.
const TruncationMark = "…[truncated]"

// Limits of audit event fields, in bytes (BoundAudit). They are far above
// what a real call writes, and small enough that a caller cannot grow the
// trail by sending huge names.
const (
	maxAuditID     = 128 // workspace, actor, approval, session and request ids
	maxAuditShort  = 128 // tool, action, source, decision, types, key prefix, one rule
	maxAuditName   = 256 // actor name, resource id, client
	maxAuditText   = 2 << 10
	maxAuditRules  = 32
	maxAuditArgs   = 16 << 10 // the args' canonical JSON
	maxArgsText    = 1 << 10  // one name or string value inside args
	maxArgsDepth   = 8
	truncatedField = "_truncated"
)

// BoundAudit returns e fit to be recorded: every text field valid UTF-8,
// with secrets redacted (RedactSecrets) and cut to its limit with
// TruncationMark; at most 32 rules; args redacted the same way in every
// name and string value at any depth, nested at most 8 deep, and cut
// (marked with a "_truncated": true member or a "[truncated]" item) so
// that their canonical JSON is at most 16 KiB. The limits: ids 128 bytes;
// tool, action, source, decision, resource type, key prefix and each rule
// 128; actor name, resource id and client 256; reason and result 2 KiB.
// Every store applies it to every event it records, so no writer can
// forget it; it is idempotent. Args that cannot be encoded as JSON are
// left as they are, for the store to refuse.
func BoundAudit(e AuditEvent) AuditEvent {
	for _, f := range []struct {
		s     *string
		limit int
	}{
		{&e.ID, maxAuditID}, {&e.WorkspaceID, maxAuditID}, {&e.ActorType, maxAuditShort}, {&e.ActorID, maxAuditID},
		{&e.ActorName, maxAuditName}, {&e.KeyPrefix, maxAuditShort}, {&e.Source, maxAuditShort}, {&e.Action, maxAuditShort},
		{&e.Tool, maxAuditShort}, {&e.ResourceType, maxAuditShort}, {&e.ResourceID, maxAuditName}, {&e.Decision, maxAuditShort},
		{&e.Reason, maxAuditText}, {&e.ApprovalID, maxAuditID}, {&e.Result, maxAuditText}, {&e.Client, maxAuditName},
		{&e.SessionID, maxAuditID}, {&e.RequestID, maxAuditID},
	} {
		*f.s = BoundText(RedactSecrets(ValidText(*f.s)), f.limit)
	}
	if len(e.Rules) > 0 {
		rules := make([]string, 0, min(len(e.Rules), maxAuditRules))
		for i, r := range e.Rules {
			if i == maxAuditRules {
				rules = append(rules, TruncationMark)
				break
			}
			rules = append(rules, BoundText(RedactSecrets(ValidText(r)), maxAuditShort))
		}
		e.Rules = rules
	}
	if e.Args != nil {
		e.Args = boundArgs(e.Args)
	}
	return e
}

// boundText cuts s to at most limit bytes, ending with TruncationMark when
// it cut, and never inside a UTF-8 sequence.
func BoundText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := max(limit-len(TruncationMark), 0)
	return strings.ToValidUTF8(s[:cut], "") + TruncationMark
}

// boundArgs returns args redacted and cut to maxAuditArgs (see BoundAudit).
func boundArgs(args map[string]any) map[string]any {
	// Work on the generic form, as the stored JSON will read back, so that
	// typed values (structs, typed maps) are bounded like any other. Args
	// decoded from JSON are generic already, but for their numbers, which
	// boundValue writes as JSON does.
	generic := args
	if !isGeneric(args, 0) {
		b, err := json.Marshal(args)
		if err != nil {
			return args
		}
		if DecodeJSON(b, &generic) != nil {
			return args
		}
	}
	budget := maxAuditArgs
	out, _ := boundValue(generic, 0, &budget).(map[string]any)
	// The budget counts the canonical JSON's bytes closely, but not
	// exactly: well under the limit, it is under; near it, measure.
	if budget > maxAuditArgs/4 {
		return out
	}
	if c, err := CanonicalJSON(out); err != nil || len(c) > maxAuditArgs {
		// Escapes and marks are counted only roughly above: never store
		// more than the limit.
		return map[string]any{truncatedField: true}
	}
	return out
}

// boundValue redacts v and cuts it to what is left of budget, which it
// spends by (about) the bytes of canonical JSON it keeps.
func boundValue(v any, depth int, budget *int) any {
	if depth > maxArgsDepth {
		*budget -= 12
		return "[too deep]"
	}
	switch x := v.(type) {
	case map[string]any:
		*budget -= 2
		names := make([]string, 0, len(x))
		for k := range x {
			names = append(names, k)
		}
		sort.Strings(names)
		out := make(map[string]any, len(names))
		for _, k := range names {
			name := BoundText(RedactSecrets(ValidText(k)), maxArgsText)
			cost := jsonLen(name) + 2
			if _, dup := out[name]; dup {
				continue // two names redacted to the same text: keep the first
			}
			if *budget-cost < 32 {
				out[truncatedField] = true
				*budget -= 20
				break
			}
			*budget -= cost
			out[name] = boundValue(x[k], depth+1, budget)
		}
		return out
	case []any:
		*budget -= 2
		out := make([]any, 0, len(x))
		for _, item := range x {
			if *budget < 32 {
				out = append(out, "[truncated]")
				*budget -= 14
				break
			}
			*budget--
			out = append(out, boundValue(item, depth+1, budget))
		}
		return out
	case string:
		s := BoundText(RedactSecrets(ValidText(x)), max(min(maxArgsText, *budget-2), len(TruncationMark)))
		*budget -= jsonLen(s)
		return s
	case json.Number:
		*budget -= len(x)
		return x
	case bool:
		*budget -= 5
		return x
	case nil:
		*budget -= 4
		return nil
	default:
		// Other numbers, written as JSON writes them, as they will read
		// back.
		b, err := json.Marshal(x)
		if err != nil {
			*budget -= 4
			return nil
		}
		*budget -= len(b)
		return json.Number(b)
	}
}

// isGeneric reports whether v holds only what boundValue takes as it is:
// JSON's objects, arrays, strings, numbers, booleans and null.
func isGeneric(v any, depth int) bool {
	if depth > maxArgsDepth+1 {
		return true // boundValue cuts it here anyway
	}
	switch x := v.(type) {
	case map[string]any:
		for _, item := range x {
			if !isGeneric(item, depth+1) {
				return false
			}
		}
	case []any:
		for _, item := range x {
			if !isGeneric(item, depth+1) {
				return false
			}
		}
	case string, json.Number, bool, nil, float64, float32, int, int64, int32, uint, uint64, uint32:
	default:
		return false
	}
	return true
}

// jsonLen is the length of s encoded as a JSON string by CanonicalJSON:
// quotes, two bytes for a short escape, six for other control
// characters and U+2028 and U+2029.
func jsonLen(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			n++
		case c < 0x20:
			n += 5
		case c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9):
			n += 3
		}
	}
	return n
}
