package activation

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/audience"
	"github.com/signalsmith/agent-server/store"
)

// Errors of Run. Callers test them with errors.Is.
var (
	// ErrRefused means the sync cannot run as it is (a blocked column
	// mapped, an unknown column, no owner, paused); the message says what
	// to change. Nothing was sent. It wraps store.ErrInvalid.
	ErrRefused = fmt.Errorf("sync refused: %w", store.ErrInvalid)
	// ErrBusy means another run of the sync holds its lease: runs of one
	// sync never overlap. It wraps store.ErrConflict.
	ErrBusy = fmt.Errorf("a run of this sync is in progress: %w", store.ErrConflict)
	// ErrInterrupted means the run's context ended before it finished:
	// the run stays running, and the next Run of the sync resumes it
	// after its last acknowledged batch.
	ErrInterrupted = errors.New("sync run interrupted")
	// ErrFailed means the run ended failed (the destination took no
	// batch, the warehouse failed): the run's Error says what happened,
	// and the next run starts over from the snapshot.
	ErrFailed = errors.New("sync run failed")
)

// refusef returns an error wrapping ErrRefused.
func refusef(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrRefused)
}

// Defaults of Config.
const (
	DefaultBatchSize = 500
	MaxBatchSize     = 10000
	DefaultLeaseTTL  = 2 * time.Minute
	DefaultPageSize  = 5000
)

// Store is what the engine reads and writes in the metadata store: the
// sync and what it names, the owner's access filters, and the runs with
// their lease.
type Store interface {
	audience.Lister
	GetSync(ctx context.Context, workspaceID, id string) (store.Sync, error)
	GetAudience(ctx context.Context, workspaceID, id string) (store.Audience, error)
	GetDestination(ctx context.Context, workspaceID, id string) (store.Destination, error)
	Members(ctx context.Context, workspaceID string) ([]store.Member, error)
	AccessFiltersFor(ctx context.Context, p store.Principal) ([]store.AccessFilter, error)
	store.SyncRuns
}

// SenderFunc returns the Sender of a destination for one run (package
// destinations makes them from the destination's type and credentials).
// The engine closes it when the run ends.
type SenderFunc func(ctx context.Context, d store.Destination) (store.Sender, error)

// Config configures New.
type Config struct {
	Store     Store
	Warehouse store.Warehouse
	Planner   store.Planner
	Senders   SenderFunc
	// Governance decides what each run may send (default PIIGovernance).
	Governance Governance
	// LeaseTTL is how long a run holds its sync's lease without renewing
	// it (default DefaultLeaseTTL): after a crash, the next run waits at
	// most this long. The engine renews it after every page and batch.
	LeaseTTL time.Duration
	// PageSize is how many members one extraction query reads (default
	// DefaultPageSize; the warehouse's row cap bounds it too).
	PageSize int
	// Logger receives what the stored error leaves out (default: none).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Engine runs syncs. It is safe for concurrent use.
type Engine struct {
	cfg Config
	log *slog.Logger
}

// New returns an engine; Store, Warehouse, Planner and Senders are
// required.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Warehouse == nil || cfg.Planner == nil || cfg.Senders == nil {
		return nil, errors.New("new sync engine: store, warehouse, planner and senders are required")
	}
	if cfg.Governance == nil {
		cfg.Governance = PIIGovernance{}
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{cfg: cfg, log: log}, nil
}

// Triggers of a run.
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
	TriggerApproval = "approval"
)

// Request names the sync to run and why: the trigger (TriggerSchedule,
// TriggerManual, TriggerApproval) and the source of the call
// (store.SourceSystem for a schedule).
type Request struct {
	WorkspaceID string
	SyncID      string
	Trigger     string
	Source      string
}

// Run runs one sync to the end and returns the run as stored. It resumes
// the sync's unfinished run, if there is one, after its last acknowledged
// batch; else it starts a new run. Errors: ErrRefused (nothing sent, no
// run recorded unless an unfinished one had to be failed), ErrBusy,
// ErrInterrupted (with the run, still running), store.ErrNotFound for an
// unknown sync; a run that failed (the destination took no batch, the
// warehouse failed) is returned with state failed and an error. A run in
// which the destination refused some records succeeds, with them counted
// as failed and retried by the next run.
//
// Run blocks until the run ends; callers that must not wait (a tool, the
// scheduler) call it from a goroutine of their own.
func (e *Engine) Run(ctx context.Context, req Request) (store.SyncRun, error) {
	r, rec, err := e.begin(ctx, req)
	if err != nil {
		return rec, err
	}
	defer r.release(ctx)
	return r.proceed(ctx)
}

// begin takes the sync's lease, checks the sync and records its run (or
// finds the unfinished one to resume): everything a caller that must not
// wait needs to know before the run goes on (Scheduler.Trigger). On an
// error the lease is released and rec is the run a refusal failed, if
// any; otherwise the caller must call r.proceed and then r.release.
func (e *Engine) begin(ctx context.Context, req Request) (r *run, rec store.SyncRun, err error) {
	s, err := e.cfg.Store.GetSync(ctx, req.WorkspaceID, req.SyncID)
	if err != nil {
		return nil, store.SyncRun{}, fmt.Errorf("run sync %s: %w", req.SyncID, err)
	}
	holder, err := newHolder()
	if err != nil {
		return nil, store.SyncRun{}, err
	}
	if err := e.cfg.Store.AcquireSyncLease(ctx, s.WorkspaceID, s.ID, holder, e.cfg.Now(), e.cfg.LeaseTTL); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, store.SyncRun{}, ErrBusy
		}
		return nil, store.SyncRun{}, fmt.Errorf("run sync %s: %w", s.ID, err)
	}
	r = &run{e: e, sync: s, holder: holder, req: req}
	if rec, err := r.start(ctx); err != nil {
		r.release(ctx)
		return nil, rec, err
	}
	return r, r.rec, nil
}

// release gives the sync's lease back, even when the run's context ended.
func (r *run) release(ctx context.Context) {
	if err := r.e.cfg.Store.ReleaseSyncLease(context.WithoutCancel(ctx), r.sync.WorkspaceID, r.sync.ID, r.holder); err != nil {
		r.e.log.Warn("release sync lease", "sync", r.sync.ID, "err", err)
	}
}

// DryRun is what a run of a sync would do now: its counts against the
// snapshot (store.DiffCounts), the members governance would keep out, and
// the fields that would leave, with their transforms.
type DryRun struct {
	store.DiffCounts
	Skipped int64   `json:"skipped"`
	Fields  []Field `json:"fields"`
}

// DryRun computes what a run of the sync would add, change and remove,
// with the run's own checks, extraction and SQL comparison, staged under
// a throw-away id that is removed afterwards. It sends nothing, records
// no run, takes no lease and leaves the snapshot as it is. Errors:
// ErrRefused when a run would be refused (the message says what to
// change), store.ErrNotFound for an unknown sync.
func (e *Engine) DryRun(ctx context.Context, workspaceID, syncID string) (DryRun, error) {
	s, err := e.cfg.Store.GetSync(ctx, workspaceID, syncID)
	if err != nil {
		return DryRun{}, fmt.Errorf("dry run of sync %s: %w", syncID, err)
	}
	id, err := newHolder()
	if err != nil {
		return DryRun{}, err
	}
	r := &run{e: e, sync: s, dry: true, rec: store.SyncRun{ID: "dry_" + id}}
	if r.prep, err = r.prepare(ctx); err != nil {
		return DryRun{}, err
	}
	pl := e.cfg.Planner
	defer func() {
		if err := pl.ResetStage(context.WithoutCancel(ctx), r.rec.ID); err != nil {
			e.log.Warn("remove a dry run's stage", "sync", s.ID, "err", err)
		}
	}()
	skipped, err := r.extract(ctx)
	if err != nil {
		return DryRun{}, fmt.Errorf("dry run of sync %s: %w", s.ID, err)
	}
	c, err := pl.Preview(ctx, r.rec.ID, s.ID, s.Mode)
	if err != nil {
		return DryRun{}, fmt.Errorf("dry run of sync %s: %w", s.ID, err)
	}
	return DryRun{DiffCounts: c, Skipped: skipped, Fields: r.prep.plan.Fields}, nil
}

// newHolder returns a lease holder id unique to one Run call.
func newHolder() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("lease holder: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// run is one Run call.
type run struct {
	e      *Engine
	sync   store.Sync
	holder string
	req    Request
	rec    store.SyncRun
	prep   *prepared
	// dry is set for a dry run, which holds no lease.
	dry bool
}

// prepared is what a run reads the audience with.
type prepared struct {
	dest      store.Destination
	plan      FieldPlan
	limits    store.QueryLimits
	batchSize int
	// head, after and tail make the query of a page of members in key
	// order: head+tail for the first, head+after+tail for the next, whose
	// args are args and the last key read.
	head, after, tail string
	args              []any
	// cols are the positions of the selected columns: 0 is the key.
	fieldCol []int
	fields   []Field
	boolean  []bool
	require  []int
}

// start checks the sync and records the run it starts or resumes.
func (r *run) start(ctx context.Context) (store.SyncRun, error) {
	st := r.e.cfg.Store
	var resume *store.SyncRun
	runs, err := st.ListSyncRuns(ctx, r.sync.WorkspaceID, r.sync.ID, 1)
	if err != nil {
		return store.SyncRun{}, fmt.Errorf("run sync %s: %w", r.sync.ID, err)
	}
	if len(runs) == 1 && runs[0].State == store.RunRunning {
		resume = &runs[0]
	}
	prep, err := r.prepare(ctx)
	if err != nil {
		if resume != nil && errors.Is(err, ErrRefused) {
			// The unfinished run cannot go on as the sync is now.
			r.rec = *resume
			if rec, ferr := r.finish(ctx, store.RunFailed, err.Error()); ferr != nil {
				return rec, ferr
			}
			return r.rec, err
		}
		return store.SyncRun{}, err
	}
	r.prep = prep
	if resume != nil {
		r.rec = *resume
	} else {
		r.rec, err = st.CreateSyncRun(ctx, store.SyncRun{WorkspaceID: r.sync.WorkspaceID, SyncID: r.sync.ID,
			State: store.RunRunning, Trigger: r.req.Trigger, Source: r.req.Source, StartedAt: r.e.cfg.Now()})
		if err != nil {
			return store.SyncRun{}, fmt.Errorf("run sync %s: %w", r.sync.ID, err)
		}
	}
	return r.rec, nil
}

// proceed plans, sends and finishes a started run.
func (r *run) proceed(ctx context.Context) (store.SyncRun, error) {
	st, prep := r.e.cfg.Store, r.prep
	pl := r.e.cfg.Planner
	state, err := pl.OpenPlan(ctx, store.PlanRun{RunID: r.rec.ID, WorkspaceID: r.sync.WorkspaceID, SyncID: r.sync.ID,
		Mode: r.sync.Mode, BatchSize: prep.batchSize, Trigger: r.rec.Trigger, Source: r.rec.Source, StartedAt: r.rec.StartedAt})
	if err != nil {
		return r.fail(ctx, "the run could not be planned", err)
	}
	if state.Phase == store.PhaseExtracting {
		skipped, err := r.extract(ctx)
		if err != nil {
			return r.fail(ctx, "the audience could not be read from the warehouse", err)
		}
		if state, err = pl.Diff(ctx, r.rec.ID, skipped); err != nil {
			return r.fail(ctx, "the run could not be planned", err)
		}
		r.counts(state)
		if err := st.UpdateSyncRun(ctx, r.rec); err != nil {
			return r.fail(ctx, "the run could not be recorded", err)
		}
	}
	if state.Phase != store.PhaseDone {
		if err := r.send(ctx, state); err != nil {
			return r.rec, err
		}
	}
	return r.finish(ctx, store.RunSucceeded, "")
}

// prepare checks the sync and compiles what its run reads.
func (r *run) prepare(ctx context.Context) (*prepared, error) {
	st, s := r.e.cfg.Store, r.sync
	if s.State == "paused" {
		return nil, refusef("sync %s is paused: resume it first", s.ID)
	}
	if s.OwnerID == "" {
		return nil, refusef("sync %s has no owner whose access it could run with: recreate it", s.ID)
	}
	members, err := st.Members(ctx, s.WorkspaceID)
	if err != nil {
		return nil, fmt.Errorf("run sync %s: %w", s.ID, err)
	}
	var p *store.Principal
	for _, m := range members {
		if m.ID == s.OwnerID {
			p = &store.Principal{WorkspaceID: m.WorkspaceID, MemberID: m.ID, MemberName: m.Name, Kind: m.Kind,
				Role: m.Role, OwnerID: m.OwnerID, Groups: m.Groups}
		}
	}
	if p == nil {
		return nil, refusef("the owner of sync %s is no longer a member: recreate the sync", s.ID)
	}
	filters, err := st.AccessFiltersFor(ctx, *p)
	if err != nil {
		return nil, fmt.Errorf("run sync %s: access filters of its owner: %w", s.ID, err)
	}
	dest, err := st.GetDestination(ctx, s.WorkspaceID, s.DestinationID)
	if err != nil {
		return nil, fmt.Errorf("run sync %s: %w", s.ID, err)
	}
	batchSize, err := batchSizeOf(dest)
	if err != nil {
		return nil, err
	}
	a, err := st.GetAudience(ctx, s.WorkspaceID, s.AudienceID)
	if err != nil {
		return nil, fmt.Errorf("run sync %s: %w", s.ID, err)
	}
	def, err := audience.ParseSaved(a)
	if err != nil {
		return nil, refusef("the audience of sync %s is not valid (%v): fix the audience", s.ID, err)
	}
	snap, err := audience.LoadSnapshot(ctx, st, s.WorkspaceID)
	if err != nil {
		return nil, fmt.Errorf("run sync %s: %w", s.ID, err)
	}
	d := r.e.cfg.Warehouse.Dialect()
	q, err := audience.Compile(def, snap, audience.Options{Dialect: d, Now: r.e.cfg.Now(), AudienceID: a.ID})
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return nil, refusef("the audience of sync %s is not valid (%v): fix the audience", s.ID, err)
		}
		return nil, fmt.Errorf("run sync %s: compile audience: %w", s.ID, err)
	}
	m := q.Model()
	pk, ok := m.Column(m.PrimaryKey)
	if !ok || m.PrimaryKey == "" {
		return nil, refusef("model %s has no primary key to identify members by: give it one", m.Name)
	}
	plan, err := r.e.cfg.Governance.Plan(ctx, PlanInput{Sync: s, Destination: dest, Model: m})
	if err != nil {
		return nil, err
	}
	if err := checkPlan(plan, m); err != nil {
		return nil, err
	}
	prep := &prepared{dest: dest, plan: plan, batchSize: batchSize,
		limits: store.QueryLimits{Filters: filters, Human: p.Human()}}
	col := func(name string) string { return q.Alias() + "." + d.QuoteIdent(name) }
	cols := []string{col(pk.Name)}
	for _, f := range plan.Fields {
		if f.Transform == TransformDrop {
			continue
		}
		c, _ := m.Column(f.Column)
		prep.fields = append(prep.fields, f)
		prep.fieldCol = append(prep.fieldCol, len(cols))
		prep.boolean = append(prep.boolean, c.Type == "boolean")
		cols = append(cols, col(c.Name))
	}
	for _, name := range plan.RequireTrue {
		prep.require = append(prep.require, len(cols))
		cols = append(cols, col(name))
	}
	where := q.Where()
	prep.args = where.Args
	prep.head = "SELECT " + strings.Join(cols, ", ") + "\nFROM " + q.From() + "\nWHERE (" + where.SQL + ") AND " + cols[0] + " IS NOT NULL"
	prep.after = " AND " + cols[0] + " > ?"
	// The page size is an int of ours, written as a literal like
	// audience.Query.Members does.
	prep.tail = "\nORDER BY " + cols[0] + "\nLIMIT " + strconv.Itoa(r.e.cfg.PageSize)
	return prep, nil
}

// batchSizeOf reads the destination's batch_size (default
// DefaultBatchSize).
func batchSizeOf(d store.Destination) (int, error) {
	v, ok := d.Config["batch_size"]
	if !ok || v == nil {
		return DefaultBatchSize, nil
	}
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case float64:
		if x != float64(int64(x)) {
			n = -1
		} else {
			n = int64(x)
		}
	case json.Number:
		var err error
		if n, err = x.Int64(); err != nil {
			n = -1
		}
	default:
		n = -1
	}
	if n < 1 || n > MaxBatchSize {
		return 0, refusef("destination %s has batch_size %v: set a whole number from 1 to %d", d.Name, v, MaxBatchSize)
	}
	return int(n), nil
}

// extract streams the audience into the run's staging table, a page at a
// time in key order, and returns how many members governance skipped.
// Only one page is in memory at once.
func (r *run) extract(ctx context.Context) (int64, error) {
	pl, wh, p := r.e.cfg.Planner, r.e.cfg.Warehouse, r.prep
	if err := pl.ResetStage(ctx, r.rec.ID); err != nil {
		return 0, err
	}
	var skipped int64
	var last any
	first := true
	staged := make([]store.StagedMember, 0, r.e.cfg.PageSize)
	var buf bytes.Buffer
	for {
		q, args := p.head+p.tail, p.args
		if !first {
			q, args = p.head+p.after+p.tail, append(append(make([]any, 0, len(p.args)+1), p.args...), last)
		}
		res, err := wh.Query(ctx, p.limits, q, args...)
		if err != nil {
			return 0, err
		}
		staged = staged[:0]
	rows:
		for _, row := range res.Rows {
			for _, i := range p.require {
				if !isTrue(row[i]) {
					skipped++
					continue rows
				}
			}
			m, err := p.member(row, &buf)
			if err != nil {
				return 0, err
			}
			staged = append(staged, m)
		}
		if err := pl.Stage(ctx, r.rec.ID, staged); err != nil {
			return 0, err
		}
		if err := r.renew(ctx); err != nil {
			return 0, err
		}
		if len(res.Rows) == 0 || (len(res.Rows) < r.e.cfg.PageSize && !res.Truncated) {
			return skipped, nil
		}
		last, first = res.Rows[len(res.Rows)-1][0], false
	}
}

// member builds one staged member from a row: its key, its fields after
// the transforms as a JSON object (keys sorted, so equal fields encode
// equally) and that object's fingerprint.
func (p *prepared) member(row []any, buf *bytes.Buffer) (store.StagedMember, error) {
	fields := make(map[string]any, len(p.fields))
	for i, f := range p.fields {
		v := row[p.fieldCol[i]]
		if p.boolean[i] {
			if n, ok := v.(int64); ok {
				v = n != 0
			}
		}
		if f.Transform == TransformSHA256 {
			v = hashValue(v)
		}
		fields[f.To] = v
	}
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(fields); err != nil {
		return store.StagedMember{}, fmt.Errorf("encode member fields: %w", err)
	}
	b := bytes.TrimRight(buf.Bytes(), "\n")
	sum := sha256.Sum256(b)
	return store.StagedMember{Key: keyText(row[0]), Fingerprint: hex.EncodeToString(sum[:16]), Fields: append([]byte(nil), b...)}, nil
}

// keyText is a primary key value as the text SyncRecord.Key carries.
func keyText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []byte:
		return hex.EncodeToString(x)
	}
	return fmt.Sprint(v)
}

// isTrue reports whether a warehouse value is a true boolean.
func isTrue(v any) bool {
	switch x := v.(type) {
	case int64:
		return x != 0
	case float64:
		return x != 0
	case bool:
		return x
	}
	return false
}

// renew extends the run's lease; a lease another run took (this one was
// stalled past its TTL) stops the run.
func (r *run) renew(ctx context.Context) error {
	if r.dry {
		return nil
	}
	err := r.e.cfg.Store.AcquireSyncLease(ctx, r.sync.WorkspaceID, r.sync.ID, r.holder, r.e.cfg.Now(), r.e.cfg.LeaseTTL)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("the run lost its lease to another run: %w", ErrBusy)
	}
	return err
}

// send delivers the planned batches after the last acknowledged one.
func (r *run) send(ctx context.Context, state store.PlanState) error {
	// total is what this run sends: the plan, or the first records of it
	// under a rate limit.
	total := state.Total
	if limit := r.prep.plan.MaxRecords; limit != nil && *limit < total {
		r.e.log.Info("sync run capped by a rate limit", "sync", r.sync.ID, "run", r.rec.ID, "planned", total, "sent", *limit)
		total = max(0, *limit)
	}
	if total == 0 {
		return nil
	}
	sender, err := r.e.cfg.Senders(ctx, r.prep.dest)
	if err != nil {
		_, ferr := r.fail(ctx, "the destination could not be reached", err)
		return ferr
	}
	defer sender.Close()
	pl, st := r.e.cfg.Planner, r.e.cfg.Store
	size := int64(state.BatchSize)
	for n := state.LastBatch + 1; int64(n-1)*size < total; n++ {
		from := int64(n-1) * size
		recs, err := pl.Records(ctx, r.rec.ID, from, int(min(size, total-from)))
		if err != nil {
			return r.stop(ctx, "the run's plan could not be read", err)
		}
		b := store.SyncBatch{WorkspaceID: r.sync.WorkspaceID, SyncID: r.sync.ID, RunID: r.rec.ID, Number: n,
			Records: make([]store.SyncRecord, len(recs))}
		for i, pr := range recs {
			rec, err := record(pr)
			if err != nil {
				return r.stop(ctx, "the run's plan could not be read", err)
			}
			b.Records[i] = rec
		}
		res, err := sender.Send(ctx, b)
		if err != nil {
			if ctx.Err() != nil {
				return r.stop(ctx, "", ctx.Err())
			}
			return r.stop(ctx, fmt.Sprintf("the destination did not accept batch %d; the next run sends it again", n), err)
		}
		failed := make(map[int64]string, len(res.Failed))
		for i, reason := range res.Failed {
			if i >= 0 && i < len(recs) {
				failed[recs[i].Seq] = boundReason(reason)
			}
		}
		// The destination has the batch: record that even if the run's
		// context ends now, so a restart does not send it again.
		wctx := context.WithoutCancel(ctx)
		state, err = pl.Ack(wctx, store.PlanAck{RunID: r.rec.ID, SyncID: r.sync.ID, Batch: n, From: from + 1,
			To: from + int64(len(recs)), Failed: failed})
		if err != nil {
			return r.stop(ctx, "the run's progress could not be recorded", err)
		}
		r.counts(state)
		if err := st.UpdateSyncRun(wctx, r.rec); err != nil {
			return r.stop(ctx, "the run's progress could not be recorded", err)
		}
		if ctx.Err() != nil {
			return r.stop(ctx, "", ctx.Err())
		}
		if err := r.renew(ctx); err != nil {
			return r.stop(ctx, "", err)
		}
	}
	return nil
}

// record turns a planned record into what the destination gets.
func record(pr store.PlannedRecord) (store.SyncRecord, error) {
	rec := store.SyncRecord{Key: pr.Key}
	switch pr.Kind {
	case store.KindAdd, store.KindChange:
		rec.Op = store.OpUpsert
	case store.KindRemove:
		rec.Op = store.OpDelete
		return rec, nil
	case store.KindAppend:
		rec.Op = store.OpAppend
	default:
		return store.SyncRecord{}, fmt.Errorf("planned record %d: unknown kind %q", pr.Seq, pr.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(pr.Fields))
	dec.UseNumber()
	if err := dec.Decode(&rec.Fields); err != nil {
		return store.SyncRecord{}, fmt.Errorf("planned record %d: %w", pr.Seq, err)
	}
	return rec, nil
}

// boundReason keeps a destination's reason short, valid text.
func boundReason(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "")
	}
	return s
}

// stop ends the send loop: interrupted (the run stays running, to be
// resumed) when what went wrong is the context, lease or a write of our
// own, failed when the destination took no batch.
func (r *run) stop(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil || errors.Is(err, ErrBusy) || errors.Is(err, context.Canceled) {
		r.e.log.Info("sync run interrupted", "sync", r.sync.ID, "run", r.rec.ID, "batch", r.rec.LastBatch, "err", err)
		return fmt.Errorf("%w after batch %d: %w", ErrInterrupted, r.rec.LastBatch, err)
	}
	_, ferr := r.fail(ctx, what, err)
	return ferr
}

// counts copies the planner's counts into the stored run.
func (r *run) counts(s store.PlanState) {
	r.rec.Added, r.rec.Changed, r.rec.Removed, r.rec.Failed, r.rec.Skipped = s.Added, s.Changed, s.Removed, s.Failed, s.Skipped
	r.rec.LastBatch = s.LastBatch
}

// fail ends the run as failed with what as its error, logging err's
// detail, which may name internal things the stored error must not.
func (r *run) fail(ctx context.Context, what string, err error) (store.SyncRun, error) {
	if ctx.Err() != nil {
		return r.rec, fmt.Errorf("%w after batch %d: %w", ErrInterrupted, r.rec.LastBatch, ctx.Err())
	}
	r.e.log.Error("sync run failed", "sync", r.sync.ID, "run", r.rec.ID, "what", what, "err", err)
	rec, ferr := r.finish(ctx, store.RunFailed, what)
	if ferr != nil {
		return rec, ferr
	}
	return rec, fmt.Errorf("sync run %s: %s: %w", r.rec.ID, what, ErrFailed)
}

// finish records the run's end in the planner and the store.
func (r *run) finish(ctx context.Context, state, errText string) (store.SyncRun, error) {
	ctx = context.WithoutCancel(ctx)
	now := r.e.cfg.Now().UTC()
	if _, err := r.e.cfg.Planner.OpenPlan(ctx, store.PlanRun{RunID: r.rec.ID, WorkspaceID: r.sync.WorkspaceID,
		SyncID: r.sync.ID, Mode: r.sync.Mode, BatchSize: DefaultBatchSize, Trigger: r.rec.Trigger, Source: r.rec.Source,
		StartedAt: r.rec.StartedAt}); err != nil {
		return r.rec, fmt.Errorf("finish sync run %s: %w", r.rec.ID, err)
	}
	if err := r.e.cfg.Planner.Finish(ctx, r.rec.ID, state, errText, now); err != nil {
		return r.rec, fmt.Errorf("finish sync run %s: %w", r.rec.ID, err)
	}
	r.rec.State, r.rec.Error, r.rec.FinishedAt = state, errText, &now
	if err := r.e.cfg.Store.UpdateSyncRun(ctx, r.rec); err != nil {
		return r.rec, fmt.Errorf("finish sync run %s: %w", r.rec.ID, err)
	}
	return r.rec, nil
}
