package activation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/signalsmith/agent-server/store"
)

// Schedule is when a sync runs by itself: every interval, or at the
// times of a 5-field cron expression. The zero Schedule never fires (a
// sync without a schedule runs only when triggered).
type Schedule struct {
	every time.Duration
	cron  cron.Schedule
}

// MinInterval is the shortest interval a schedule may have.
const MinInterval = time.Minute

// ParseSchedule reads a sync's schedule: "" (none), an interval such as
// "1h" or "15m" (at least MinInterval), or a standard 5-field cron
// expression ("0 3 * * *", in UTC). The error says what a valid one looks
// like and repeats nothing of s.
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Schedule{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < MinInterval {
			return Schedule{}, fmt.Errorf("an interval schedule must be at least %s", MinInterval)
		}
		return Schedule{every: d}, nil
	}
	if len(strings.Fields(s)) != 5 {
		return Schedule{}, errors.New(`the schedule is neither an interval ("1h", "15m") nor a 5-field cron expression ("0 3 * * *")`)
	}
	c, err := cron.ParseStandard(s)
	if err != nil {
		return Schedule{}, errors.New(`the schedule is not a valid 5-field cron expression (minute hour day-of-month month day-of-week, such as "0 3 * * *")`)
	}
	return Schedule{cron: c}, nil
}

// Next returns the first time the schedule fires after t; the zero time
// for a schedule that never fires.
func (s Schedule) Next(t time.Time) time.Time {
	switch {
	case s.every > 0:
		return t.Add(s.every)
	case s.cron != nil:
		return s.cron.Next(t.UTC())
	}
	return time.Time{}
}

// SchedulerStore is what the scheduler reads and writes in the store:
// the syncs, their runs (when each last ran) and the audit trail.
type SchedulerStore interface {
	ListSyncs(ctx context.Context, workspaceID string) ([]store.Sync, error)
	ListSyncRuns(ctx context.Context, workspaceID, syncID string, limit int) ([]store.SyncRun, error)
	store.AuditAppender
}

// SchedulerConfig configures NewScheduler.
type SchedulerConfig struct {
	Engine *Engine
	Store  SchedulerStore
	// WorkspaceIDs are the workspaces whose syncs run on schedule.
	WorkspaceIDs []string
	// Tick is how often due syncs are looked for (default 30 seconds).
	Tick time.Duration
	// Logger receives what audit events leave out (default: none).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Scheduler runs syncs in the background: on their schedules (Start),
// and when a caller triggers one (Trigger). Every run's outcome is an
// audit event (action syncs.trigger, resource sync): source SYSTEM for a
// scheduled run, the caller's for a triggered one. Runs of one sync never
// overlap, in this process or across processes (the engine's lease).
type Scheduler struct {
	sc     SchedulerConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// running are the syncs with a run in progress in this process.
	running map[string]bool
	// refused is the last refusal audited per scheduled sync, so a sync
	// that cannot run is audited once, not at every tick.
	refused map[string]string
	started bool
}

// NewScheduler returns a scheduler; Engine and Store are required. Close
// stops it.
func NewScheduler(sc SchedulerConfig) (*Scheduler, error) {
	if sc.Engine == nil || sc.Store == nil {
		return nil, errors.New("new sync scheduler: engine and store are required")
	}
	if sc.Tick <= 0 {
		sc.Tick = 30 * time.Second
	}
	if sc.Now == nil {
		sc.Now = time.Now
	}
	log := sc.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Scheduler{sc: sc, log: log, ctx: ctx, cancel: cancel,
		running: map[string]bool{}, refused: map[string]string{}}, nil
}

// Engine returns the engine the scheduler runs syncs with.
func (s *Scheduler) Engine() *Engine { return s.sc.Engine }

// Start begins running due syncs, at every tick until Close. An active
// sync is due when the time its schedule gives after its last run's start
// (after its creation, when it never ran) has come, or when its last run
// is unfinished (a stop or a crash left it running, whatever started it):
// the schedule lives in the store, so it survives a restart.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.sc.Tick)
		defer t.Stop()
		for {
			s.RunDue(s.ctx)
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the scheduler and waits for the runs in progress to stop:
// they end interrupted and the next run of their sync resumes them (a
// scheduler resumes an unfinished run at its next tick). It returns nil,
// and is an io.Closer so wiring can close it with the rest.
func (s *Scheduler) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// RunDue starts a run of every due active sync (see Start) that has none
// in progress, and returns how many it started. Start calls it at every
// tick.
func (s *Scheduler) RunDue(ctx context.Context) int {
	n := 0
	for _, ws := range s.sc.WorkspaceIDs {
		syncs, err := s.sc.Store.ListSyncs(ctx, ws)
		if err != nil {
			s.log.Error("list syncs to schedule", "workspace", ws, "err", err)
			continue
		}
		for _, sy := range syncs {
			due, err := s.due(ctx, sy)
			if err != nil {
				s.log.Error("schedule of sync", "sync", sy.ID, "err", err)
				continue
			}
			if !due {
				continue
			}
			req := Request{WorkspaceID: ws, SyncID: sy.ID, Trigger: TriggerSchedule, Source: store.SourceSystem}
			_, err = s.Trigger(ctx, req, store.Principal{})
			switch {
			case err == nil:
				n++
				s.forget(sy.ID)
			case errors.Is(err, ErrBusy):
			case errors.Is(err, ErrRefused):
				s.auditRefusal(ctx, req, err)
			default:
				s.log.Error("start scheduled sync run", "sync", sy.ID, "err", err)
			}
		}
	}
	return n
}

// due reports whether a sync's scheduled run is due now.
func (s *Scheduler) due(ctx context.Context, sy store.Sync) (bool, error) {
	if sy.State != "active" {
		return false, nil
	}
	runs, err := s.sc.Store.ListSyncRuns(ctx, sy.WorkspaceID, sy.ID, 1)
	if err != nil {
		return false, err
	}
	if len(runs) == 1 && runs[0].State == store.RunRunning {
		// Resume what a stop left unfinished, scheduled or triggered.
		return true, nil
	}
	sched, err := ParseSchedule(sy.Schedule)
	if err != nil {
		return false, err
	}
	base := sy.CreatedAt
	if len(runs) == 1 {
		base = runs[0].StartedAt
	}
	next := sched.Next(base)
	return !next.IsZero() && !s.sc.Now().Before(next), nil
}

// Trigger starts a run of a sync in the background and returns it as
// recorded at its start (or the unfinished run it resumes), at once; the
// run goes on after the caller's ctx ends, until Close. by is who asked
// (the zero Principal for the schedule), recorded as the actor of the
// run's outcome event. Errors are the engine's, before anything is sent:
// ErrRefused, ErrBusy, store.ErrNotFound.
func (s *Scheduler) Trigger(ctx context.Context, req Request, by store.Principal) (store.SyncRun, error) {
	if s.ctx.Err() != nil {
		return store.SyncRun{}, fmt.Errorf("the sync scheduler is stopped: %w", ErrInterrupted)
	}
	key := req.WorkspaceID + "/" + req.SyncID
	s.mu.Lock()
	if s.running[key] {
		s.mu.Unlock()
		return store.SyncRun{}, ErrBusy
	}
	s.running[key] = true
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		delete(s.running, key)
		s.mu.Unlock()
	}
	r, rec, err := s.sc.Engine.begin(ctx, req)
	if err != nil {
		done()
		if rec.ID != "" {
			// A refusal failed the unfinished run it would have resumed.
			s.auditOutcome(ctx, req, by, rec, err)
		}
		return rec, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer done()
		defer r.release(s.ctx)
		out, err := r.proceed(s.ctx)
		if errors.Is(err, ErrInterrupted) {
			s.log.Info("sync run interrupted; the next run resumes it", "sync", req.SyncID, "run", out.ID)
			return
		}
		s.auditOutcome(s.ctx, req, by, out, err)
	}()
	return rec, nil
}

// actor fills an event's actor: the caller, or the scheduler itself.
func actor(ev *store.AuditEvent, by store.Principal) {
	if by.MemberID == "" {
		ev.ActorType, ev.ActorID, ev.ActorName = "system", "scheduler", "scheduler"
		return
	}
	ev.ActorType, ev.ActorID, ev.ActorName, ev.KeyPrefix = by.Kind, by.MemberID, by.MemberName, by.KeyPrefix
}

// auditOutcome records how a run ended: executed with its counts, or
// failed with the run's stored error (which names no value and no
// internal detail).
func (s *Scheduler) auditOutcome(ctx context.Context, req Request, by store.Principal, rec store.SyncRun, err error) {
	ev := store.AuditEvent{At: s.sc.Now().UTC(), WorkspaceID: req.WorkspaceID, Source: req.Source,
		Action: "syncs.trigger", Tool: "trigger_sync", ResourceType: "sync", ResourceID: req.SyncID,
		Decision: store.DecisionExecuted,
		Result: fmt.Sprintf("run %s %s (%s): %d added, %d changed, %d removed, %d failed, %d skipped",
			rec.ID, rec.State, req.Trigger, rec.Added, rec.Changed, rec.Removed, rec.Failed, rec.Skipped)}
	if rec.FinishedAt != nil {
		ev.LatencyMS = float64(rec.FinishedAt.Sub(rec.StartedAt).Microseconds()) / 1000
	}
	if err != nil || rec.State == store.RunFailed {
		ev.Decision, ev.Reason = store.DecisionFailed, rec.Error
		if ev.Reason == "" {
			ev.Reason = "the run failed; see the server log"
		}
	}
	actor(&ev, by)
	if aerr := s.sc.Store.AppendAudit(context.WithoutCancel(ctx), ev); aerr != nil {
		s.log.Error("audit sync run outcome", "sync", req.SyncID, "run", rec.ID, "err", aerr)
	}
}

// auditRefusal records that a scheduled run could not start, once per
// reason and sync.
func (s *Scheduler) auditRefusal(ctx context.Context, req Request, err error) {
	reason := err.Error()
	s.mu.Lock()
	same := s.refused[req.SyncID] == reason
	s.refused[req.SyncID] = reason
	s.mu.Unlock()
	if same {
		return
	}
	ev := store.AuditEvent{At: s.sc.Now().UTC(), WorkspaceID: req.WorkspaceID, Source: req.Source,
		Action: "syncs.trigger", Tool: "trigger_sync", ResourceType: "sync", ResourceID: req.SyncID,
		Decision: store.DecisionFailed, Reason: reason}
	actor(&ev, store.Principal{})
	if aerr := s.sc.Store.AppendAudit(context.WithoutCancel(ctx), ev); aerr != nil {
		s.log.Error("audit refused scheduled sync run", "sync", req.SyncID, "err", aerr)
	}
}

// forget clears a sync's remembered refusal once it runs again.
func (s *Scheduler) forget(syncID string) {
	s.mu.Lock()
	delete(s.refused, syncID)
	s.mu.Unlock()
}

// DryRun is the engine's DryRun, so the scheduler alone serves the sync
// tools.
func (s *Scheduler) DryRun(ctx context.Context, workspaceID, syncID string) (DryRun, error) {
	return s.sc.Engine.DryRun(ctx, workspaceID, syncID)
}
