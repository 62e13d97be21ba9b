package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/signalsmith/agent-server/internal/retry"
	"github.com/signalsmith/agent-server/store"
)

// Shipper defaults.
const (
	DefaultShipBatch    = 500
	DefaultShipPoll     = time.Second
	DefaultShipLinger   = 50 * time.Millisecond
	DefaultShipBackoff  = 250 * time.Millisecond
	DefaultShipMaxWait  = 30 * time.Second
	DefaultShipDrainFor = 5 * time.Second
)

// ShipperConfig configures NewShipper. Outbox and Sink are required.
type ShipperConfig struct {
	// Outbox is the store's side: the events to ship and the state.
	Outbox store.AuditOutbox
	// Sink is the warehouse's audit schema.
	Sink store.AuditSink
	// Logger receives shipping failures; defaults to discard.
	Logger *slog.Logger
	// BatchSize is the most events written to the sink at once.
	BatchSize int
	// Poll is how often the outbox is read without a signal (events other
	// processes, such as the CLI, recorded).
	Poll time.Duration
	// Linger is how long to wait after a signal before reading, so events
	// committed close together ship in one batch.
	Linger time.Duration
	// MinBackoff and MaxBackoff bound the exponential wait between attempts
	// while the warehouse is unavailable.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// DrainFor is how long Run keeps shipping after its context ends, so a
	// clean shutdown leaves nothing behind while the warehouse is up.
	DrainFor time.Duration
	// Registerer, when set, receives the shipper's metrics.
	Registerer prometheus.Registerer
}

// Shipper ships audit events from the store's outbox to the warehouse
// (DESIGN.md section 8): in batches, in chain order, idempotent by event id
// (the sink skips events it has, so a batch shipped twice after a crash
// between writing it and marking it shipped leaves one copy), retrying with
// exponential backoff while the warehouse is unavailable. An event leaves
// the outbox only after the sink committed it. Tool calls never wait for
// the shipper: the outbox just grows while the warehouse is down.
type Shipper struct {
	cfg      ShipperConfig
	log      *slog.Logger
	shipped  prometheus.Counter
	failures prometheus.Counter
}

// NewShipper returns a shipper; Run starts it.
func NewShipper(cfg ShipperConfig) (*Shipper, error) {
	if cfg.Outbox == nil || cfg.Sink == nil {
		return nil, errors.New("audit shipper: outbox and sink are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultShipBatch
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultShipPoll
	}
	if cfg.Linger < 0 {
		cfg.Linger = 0
	} else if cfg.Linger == 0 {
		cfg.Linger = DefaultShipLinger
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultShipBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultShipMaxWait, cfg.MinBackoff)
	}
	if cfg.DrainFor <= 0 {
		cfg.DrainFor = DefaultShipDrainFor
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Shipper{
		cfg: cfg,
		log: log,
		shipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signalsmith_audit_shipped_total",
			Help: "Audit events this process shipped to the warehouse.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signalsmith_audit_ship_failures_total",
			Help: "Failed attempts to ship audit events to the warehouse.",
		}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.shipped); err != nil {
			return nil, err
		}
		if err := cfg.Registerer.Register(s.failures); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run ships until ctx ends, then keeps shipping for at most DrainFor to
// empty the outbox. It returns nil when the outbox was empty at the end,
// else the last error (what is left ships at the next start).
func (s *Shipper) Run(ctx context.Context) error {
	attempt := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.drain(context.WithoutCancel(ctx))
		case <-s.cfg.Outbox.AuditAppended():
			if attempt > 0 {
				// Backing off: a new event does not make the warehouse
				// come back sooner.
				continue
			}
			if !retry.Sleep(ctx, s.cfg.Linger) {
				continue
			}
		case <-timer.C:
		}
		_, err := s.Ship(ctx)
		var wait time.Duration
		switch {
		case err == nil:
			attempt = 0
			wait = s.cfg.Poll
		case ctx.Err() != nil:
			wait = 0
		default:
			attempt++
			wait = s.backoff().Delay(attempt)
			s.log.Warn("audit events could not be shipped to the warehouse; retrying", "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		}
		timer.Reset(wait)
	}
}

// backoff is the wait between failed attempts.
func (s *Shipper) backoff() retry.Backoff {
	return retry.Backoff{Min: s.cfg.MinBackoff, Max: s.cfg.MaxBackoff}
}

// drain ships what is left, retrying, for at most DrainFor.
func (s *Shipper) drain(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DrainFor)
	defer cancel()
	for attempt := 1; ; attempt++ {
		_, err := s.Ship(ctx)
		if err == nil {
			return nil
		}
		if !retry.Sleep(ctx, s.backoff().Delay(attempt)) {
			left, serr := s.cfg.Outbox.AuditShipping(context.WithoutCancel(ctx))
			if serr == nil {
				s.log.Warn("audit events left unshipped at shutdown; they ship at the next start", "backlog", left.Backlog, "err", err)
			}
			return err
		}
	}
}

// Ship ships batches until the outbox is empty and returns how many events
// it shipped. On a failure it records it in the outbox's state and returns
// it; the events stay in the outbox.
func (s *Shipper) Ship(ctx context.Context) (int, error) {
	n := 0
	for {
		batch, err := s.cfg.Outbox.UnshippedAudit(ctx, s.cfg.BatchSize)
		if err != nil {
			return n, err
		}
		if len(batch) == 0 {
			return n, nil
		}
		if err := s.cfg.Sink.WriteAuditEvents(ctx, batch); err != nil {
			s.failures.Inc()
			if nerr := s.cfg.Outbox.NoteAuditShipFailure(context.WithoutCancel(ctx), err.Error(), time.Now()); nerr != nil {
				s.log.Error("record audit shipping failure", "err", nerr)
			}
			return n, err
		}
		if err := s.cfg.Outbox.MarkAuditShipped(context.WithoutCancel(ctx), batch, time.Now()); err != nil {
			// The sink has the batch; it ships again, harmlessly, next time.
			return n, err
		}
		s.shipped.Add(float64(len(batch)))
		n += len(batch)
		if len(batch) < s.cfg.BatchSize {
			return n, nil
		}
	}
}
