package approvals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/internal/retry"
	"github.com/signalsmith/agent-server/store"
)

// WebhookOptions tune a Webhook; the zero value is the default.
type WebhookOptions struct {
	// Attempts is how many times one notification is tried (default 5).
	Attempts int
	// Backoff is the wait before the first retry; it doubles after each
	// failure up to MaxBackoff, with jitter (default 1s).
	Backoff time.Duration
	// MaxBackoff caps the wait between retries (default 1 minute).
	MaxBackoff time.Duration
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// Client sends the requests (default a client with Timeout).
	Client *http.Client
	// Logger receives delivery failures; never the URL's path or query,
	// which for Slack is a secret. Defaults to discard.
	Logger *slog.Logger
}

// maxInFlight bounds the notifications being delivered at once; past it a
// notification is dropped (and logged) rather than held in memory.
const maxInFlight = 64

// Webhook is a Notifier that POSTs a Slack-compatible JSON message to a URL
// when an approval is created and when it changes state. Delivery happens
// in the background with retries and capped, jittered exponential backoff
// (retry.Backoff): Notify never blocks and a failing receiver never affects
// the queue or the call; a notification that cannot be delivered is logged
// and dropped.
//
// A message carries only ids, the tool, the state, the policy's reason and
// the approval's link: never arguments, comments, outcomes, names or keys,
// which may hold secrets or personal data.
type Webhook struct {
	url   string
	host  string
	link  func(id string) string
	opts  WebhookOptions
	log   *slog.Logger
	slots chan struct{}

	// mu guards the deliveries in flight: how many there are, a channel
	// closed when the last one ends (a sync.WaitGroup cannot take new
	// deliveries while a Wait that gave up is still parked on it), and
	// their context, which Wait cancels when it gives up on them.
	mu       sync.Mutex
	inFlight int
	idle     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook returns a Webhook posting to rawURL (http or https); link
// turns an approval id into its page's URL. It returns an error wrapping
// store.ErrInvalid for a URL that is not absolute http(s).
func NewWebhook(rawURL string, link func(id string) string, opts WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("approval webhook: want an absolute http(s) URL without credentials: %w", store.ErrInvalid)
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Client == nil {
		// A redirect would send the message somewhere nobody configured.
		opts.Client = &http.Client{Timeout: opts.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if link == nil {
		link = func(id string) string { return "/approvals/" + id }
	}
	w := &Webhook{url: rawURL, host: u.Host, link: link, opts: opts, log: log, slots: make(chan struct{}, maxInFlight)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w, nil
}

// Message is the JSON body a Webhook sends. Text is what Slack shows; the
// other fields are for receivers that read JSON.
type Message struct {
	Text        string    `json:"text"`
	Event       string    `json:"event"`
	ApprovalID  string    `json:"approval_id"`
	WorkspaceID string    `json:"workspace_id"`
	Tool        string    `json:"tool"`
	State       string    `json:"state"`
	Reason      string    `json:"reason"`
	Rules       []string  `json:"rules"`
	RequesterID string    `json:"requester_id"`
	DeciderID   string    `json:"decider_id,omitempty"`
	URL         string    `json:"url"`
	At          time.Time `json:"at"`
}

// message builds the notification of a's current state.
func (w *Webhook) message(a store.Approval) Message {
	event := "approval." + a.State
	verb := a.State
	if a.State == store.ApprovalPending {
		event, verb = "approval.created", "waits for a decision"
	}
	link := w.link(a.ID)
	reason := guardrails.RedactString(a.Reason)
	text := fmt.Sprintf("Approval %s %s: %s (%s). <%s|Open it>", a.ID, verb, a.Tool, slackEscape(reason), slackEscape(link))
	rules := a.Rules
	if rules == nil {
		rules = []string{}
	}
	return Message{
		Text: text, Event: event, ApprovalID: a.ID, WorkspaceID: a.WorkspaceID, Tool: a.Tool, State: a.State,
		Reason: reason, Rules: rules, RequesterID: a.RequesterID, DeciderID: a.DeciderID, URL: link, At: a.UpdatedAt.UTC(),
	}
}

// slackEscape escapes the three characters Slack's message format reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Notify queues the notification of a's current state and returns at once.
func (w *Webhook) Notify(a store.Approval) {
	msg := w.message(a)
	select {
	case w.slots <- struct{}{}:
	default:
		w.log.Error("approval notification dropped: too many in flight", "approval", a.ID, "event", msg.Event, "webhook_host", w.host)
		return
	}
	w.mu.Lock()
	if w.inFlight == 0 {
		w.idle = make(chan struct{})
	}
	w.inFlight++
	ctx := w.ctx
	w.mu.Unlock()
	go func() {
		defer w.delivered()
		w.deliver(ctx, msg)
	}()
}

// delivered notes that one delivery ended, in success or not.
func (w *Webhook) delivered() {
	<-w.slots
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight--; w.inFlight == 0 {
		close(w.idle)
	}
}

// Wait blocks until every queued notification was delivered or given up,
// or ctx ends. A process calls it before it exits (the CLI, the server at
// shutdown). When ctx ends first, the notifications still being delivered
// are given up at once (their requests are cancelled, their retries do not
// happen, and each is logged as not delivered); notifications queued after
// that are delivered as usual.
func (w *Webhook) Wait(ctx context.Context) error {
	w.mu.Lock()
	idle := w.idle
	if w.inFlight == 0 {
		idle = nil
	}
	w.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		w.mu.Lock()
		w.cancel()
		w.ctx, w.cancel = context.WithCancel(context.Background())
		w.mu.Unlock()
		return ctx.Err()
	}
}

// deliver tries to send msg until ctx ends, backing off between attempts.
func (w *Webhook) deliver(ctx context.Context, msg Message) {
	body, err := json.Marshal(msg)
	if err != nil {
		w.log.Error("approval notification not encoded", "approval", msg.ApprovalID, "err", err)
		return
	}
	backoff := retry.Backoff{Min: w.opts.Backoff, Max: w.opts.MaxBackoff}
	for attempt := 1; ; attempt++ {
		err := w.post(ctx, body)
		if err == nil {
			return
		}
		if attempt >= w.opts.Attempts || ctx.Err() != nil {
			w.undelivered(msg, attempt, err)
			return
		}
		wait := backoff.Delay(attempt)
		w.log.Warn("approval notification failed; retrying", "approval", msg.ApprovalID, "event", msg.Event,
			"webhook_host", w.host, "attempt", attempt, "retry_in", wait.Round(time.Millisecond).String(), "err", err)
		if !retry.Sleep(ctx, wait) {
			w.undelivered(msg, attempt, err)
			return
		}
	}
}

// undelivered logs a notification given up after attempts tries; err is
// the last attempt's.
func (w *Webhook) undelivered(msg Message, attempts int, err error) {
	w.log.Error("approval notification not delivered", "approval", msg.ApprovalID, "event", msg.Event,
		"webhook_host", w.host, "attempts", attempts, "err", err)
}

// errDelivery is a receiver's refusal; its text names only the status.
var errDelivery = errors.New("webhook answered")

// post makes one attempt, cancelled when ctx ends. Its error never
// contains the URL.
func (w *Webhook) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("request could not be built")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "signalsmith-approvals")
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		// *url.Error quotes the URL; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return errors.New("request failed")
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w %s", errDelivery, resp.Status)
	}
	return nil
}
