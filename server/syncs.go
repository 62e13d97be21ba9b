package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/signalsmith/agent-server/activation"
	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/store"
)

// SyncsConfig is what NewSyncs wires: the store, the warehouse the engine
// extracts audiences from (its own, not a tool's), the planner that
// writes cdp_planner, the master key that opens destination credentials
// and the workspaces whose syncs run on schedule.
type SyncsConfig struct {
	Store        store.Store
	Warehouse    store.Warehouse
	Planner      store.Planner
	KeysFunc     func() (*destinations.Keyring, error)
	DataDir      string
	WorkspaceIDs []string
	// Tick is how often due syncs are looked for (default 30 seconds).
	Tick time.Duration
	// LeaseTTL is how long a run's lease outlives a crashed process
	// (default activation.DefaultLeaseTTL).
	LeaseTTL time.Duration
	Logger   *slog.Logger
}

// NewSyncs returns the sync scheduler of a server: the sync engine over
// cfg's warehouse and planner, sending through the destinations'
// Senders, governed by activation.FilterGovernance. Give it to
// Config.Syncs; Start runs the schedules and Close stops them with the
// runs in progress (which the next run resumes).
func NewSyncs(cfg SyncsConfig) (*activation.Scheduler, error) {
	reg := destinations.NewRegistry(cfg.Store, cfg.KeysFunc, cfg.DataDir)
	eng, err := activation.New(activation.Config{
		Store: cfg.Store, Warehouse: cfg.Warehouse, Planner: cfg.Planner, Logger: cfg.Logger, LeaseTTL: cfg.LeaseTTL,
		// PII levels, the sync's own transforms, consent and the
		// destination filters people set, every violation audited.
		Governance: activation.FilterGovernance{Filters: cfg.Store, Audit: cfg.Store},
		Senders: func(ctx context.Context, d store.Destination) (store.Sender, error) {
			s, _, err := reg.Sender(ctx, d.WorkspaceID, d.ID)
			return s, err
		},
	})
	if err != nil {
		return nil, err
	}
	return activation.NewScheduler(activation.SchedulerConfig{Engine: eng, Store: cfg.Store,
		WorkspaceIDs: cfg.WorkspaceIDs, Tick: cfg.Tick, Logger: cfg.Logger})
}
