package approvals_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/store"
)

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWebhookRetriesWithBackoffUntilDelivered(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var mu sync.Mutex
	var got []approvals.Message
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook request: %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		if calls.Add(1) < 3 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var m approvals.Message
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	t.Cleanup(hs.Close)
	logs := &lockedBuffer{}
	hook, err := approvals.NewWebhook(hs.URL+"/hooks/secret-path", func(id string) string { return "https://cdp.example/approvals/" + id },
		approvals.WebhookOptions{Attempts: 4, Backoff: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	hook.Notify(store.Approval{ID: "apr_1", State: store.ApprovalPending, Tool: "delete_audience", Reason: "deletions need <a human> & more",
		Comment: "secret comment", Outcome: "secret outcome", RequesterName: "Jane Doe", Args: json.RawMessage(`{"audience":"aud_1"}`)})
	if time.Since(start) > 50*time.Millisecond {
		t.Error("Notify blocked")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hook.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls.Load() != 3 || len(got) != 1 {
		t.Fatalf("%d calls, %d delivered", calls.Load(), len(got))
	}
	m := got[0]
	if m.Event != "approval.created" || m.ApprovalID != "apr_1" || m.URL != "https://cdp.example/approvals/apr_1" ||
		m.Text != "Approval apr_1 waits for a decision: delete_audience (deletions need &lt;a human&gt; &amp; more). <https://cdp.example/approvals/apr_1|Open it>" {
		t.Errorf("message = %+v", m)
	}
	raw, _ := json.Marshal(m)
	for _, leak := range []string{"secret comment", "secret outcome", "Jane Doe", "aud_1"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("the message carries %q", leak)
		}
	}
	if !strings.Contains(logs.String(), "retrying") || strings.Contains(logs.String(), "secret-path") {
		t.Errorf("logs: %s", logs.String())
	}
}

func TestWebhookGivesUpAndLogs(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(hs.Close)
	logs := &lockedBuffer{}
	hook, err := approvals.NewWebhook(hs.URL+"/token-xyz", nil, approvals.WebhookOptions{Attempts: 3, Backoff: time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hook.Notify(store.Approval{ID: "apr_2", State: store.ApprovalRejected, Tool: "delete_model"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hook.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || !strings.Contains(logs.String(), "approval notification not delivered") || !strings.Contains(logs.String(), "500") || strings.Contains(logs.String(), "token-xyz") {
		t.Errorf("%d calls; logs: %s", calls.Load(), logs.String())
	}
}

// TestWebhookWaitGivesUpAtItsDeadline shows that shutdown never waits out
// a slow receiver: when Wait's context ends, a notification in a long
// backoff or a hanging request is given up and logged at once, and the
// webhook still delivers what is notified later.
func TestWebhookWaitGivesUpAtItsDeadline(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		// failing is how the receiver treats the first notification.
		failing func(w http.ResponseWriter, r *http.Request)
	}{
		{"in a backoff", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}},
		{"in a hanging request", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var delivered atomic.Int32
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var m approvals.Message
				if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
					t.Errorf("webhook body: %v", err)
				}
				if m.ApprovalID == "apr_slow" {
					c.failing(w, r)
					return
				}
				delivered.Add(1)
			}))
			t.Cleanup(hs.Close)
			logs := &lockedBuffer{}
			hook, err := approvals.NewWebhook(hs.URL, nil, approvals.WebhookOptions{Attempts: 5, Backoff: time.Hour, MaxBackoff: time.Hour,
				Timeout: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			hook.Notify(store.Approval{ID: "apr_slow", State: store.ApprovalPending, Tool: "delete_model"})
			short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := hook.Wait(short); err == nil {
				t.Fatal("Wait returned before the slow notification ended")
			}
			long, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := hook.Wait(long); err != nil {
				t.Fatalf("the given-up notification is still being delivered: %v", err)
			}
			if !strings.Contains(logs.String(), "approval notification not delivered") {
				t.Errorf("the given-up notification was not logged: %s", logs.String())
			}
			hook.Notify(store.Approval{ID: "apr_next", State: store.ApprovalPending, Tool: "delete_model"})
			if err := hook.Wait(long); err != nil || delivered.Load() != 1 {
				t.Errorf("a notification after the deadline: %v, %d delivered", err, delivered.Load())
			}
		})
	}
}

func TestQueueNotifiesEveryStateChange(t *testing.T) {
	t.Parallel()
	b := setup(t, time.Hour)
	var mu sync.Mutex
	var states []string
	b.q.SetNotifier(notifyFunc(func(a store.Approval) {
		mu.Lock()
		states = append(states, a.State)
		mu.Unlock()
	}))
	a := b.request(t, `{"audience":"aud_1"}`)
	if _, err := b.q.Decide(b.ctx, b.agent, store.SourceUI, a.ID, true, ""); err == nil {
		t.Fatal("the agent decided")
	}
	a, err := b.q.Decide(b.ctx, b.admin, store.SourceUI, a.ID, true, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err = b.q.Begin(b.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.q.Finish(b.ctx, a, true, "{}"); err != nil {
		t.Fatal(err)
	}
	c := b.request(t, `{"audience":"aud_2"}`)
	if _, err := b.q.Cancel(b.ctx, b.agent, c.ID); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "pending approved succeeded pending cancelled"
	if got := strings.Join(states, " "); got != want {
		t.Errorf("notified states %q, want %q", got, want)
	}
}

type notifyFunc func(store.Approval)

func (f notifyFunc) Notify(a store.Approval) { f(a) }

func TestNewWebhookRefusesBadURLs(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "example.com/hook", "file:///etc/passwd", "https://u:p@example.com/", "http://"} {
		if _, err := approvals.NewWebhook(bad, nil, approvals.WebhookOptions{}); err == nil {
			t.Errorf("NewWebhook(%q) accepted", bad)
		}
	}
}
