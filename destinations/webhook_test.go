package destinations_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/store"
)

// receiver is a webhook receiver on loopback that checks signatures and
// drops batches whose Idempotency-Key it has taken, as the README tells
// receivers to.
type receiver struct {
	t      *testing.T
	secret string
	// answers are the statuses of the first requests, then 200.
	answers    []int
	retryAfter string
	body       string

	mu       sync.Mutex
	requests int
	taken    map[string]int
	records  int
	badSig   int
	lastHdr  http.Header
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	rc.lastHdr = r.Header.Clone()
	ts := r.Header.Get(destinations.HeaderTimestamp)
	want := destinations.Sign([]byte(rc.secret), ts, body)
	if !hmac.Equal([]byte(want), []byte(r.Header.Get(destinations.HeaderSignature))) {
		rc.badSig++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if len(rc.answers) > 0 {
		status := rc.answers[0]
		rc.answers = rc.answers[1:]
		if status == http.StatusTooManyRequests && rc.retryAfter != "" {
			w.Header().Set("Retry-After", rc.retryAfter)
		}
		w.WriteHeader(status)
		return
	}
	key := r.Header.Get(destinations.HeaderIdempotency)
	if rc.taken[key] == 0 {
		var p struct {
			Records []json.RawMessage `json:"records"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			rc.t.Errorf("body is not JSON: %v", err)
		}
		rc.records += len(p.Records)
	}
	rc.taken[key]++
	io.WriteString(w, rc.body)
}

func webhookOn(t *testing.T, rc *receiver) (store.Sender, *httptest.Server) {
	t.Helper()
	rc.t, rc.taken = t, map[string]int{}
	if rc.secret == "" {
		rc.secret = planted
	}
	hs := httptest.NewServer(rc)
	t.Cleanup(hs.Close)
	d, err := destinations.Build("ws_1", "dst_1", destinations.Spec{Name: "hook", Type: "webhook", Category: "crm",
		Environment: "sandbox", URL: hs.URL + "/hook", BatchSize: 2, Timeout: 2 * time.Second}, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := destinations.Open(d, []byte(rc.secret))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, hs
}

func batch(n int) store.SyncBatch {
	return store.SyncBatch{WorkspaceID: "ws_1", SyncID: "syn_1", RunID: "run_1", Number: n, Records: []store.SyncRecord{
		{Op: store.OpUpsert, Key: "c1", Fields: map[string]any{"email_sha256": "ab12"}},
		{Op: store.OpDelete, Key: "c2"},
	}}
}

func TestWebhookDelivers(t *testing.T) {
	t.Parallel()
	rc := &receiver{}
	s, _ := webhookOn(t, rc)
	res, err := s.Send(t.Context(), batch(3))
	if err != nil || len(res.Failed) != 0 {
		t.Fatalf("send = %+v, %v", res, err)
	}
	if rc.badSig != 0 || rc.requests != 1 || rc.records != 2 {
		t.Fatalf("receiver: %d requests, %d bad signatures, %d records", rc.requests, rc.badSig, rc.records)
	}
	if got := rc.lastHdr.Get(destinations.HeaderIdempotency); got != "run_1-3" {
		t.Errorf("Idempotency-Key = %q, want run_1-3", got)
	}
	if !strings.HasPrefix(rc.lastHdr.Get(destinations.HeaderSignature), "v1=") {
		t.Errorf("signature %q lacks v1=", rc.lastHdr.Get(destinations.HeaderSignature))
	}
}

func TestWebhookSignatureNeedsTheSecret(t *testing.T) {
	t.Parallel()
	// The receiver knows another secret: it must refuse the delivery,
	// which fails the batch without a retry.
	rc := &receiver{secret: "another-secret-of-the-receiver"}
	rc.t, rc.taken = t, map[string]int{}
	hs := httptest.NewServer(rc)
	t.Cleanup(hs.Close)
	d, err := destinations.Build("ws_1", "dst_1", destinations.Spec{Name: "hook", Type: "webhook", Category: "crm",
		Environment: "sandbox", URL: hs.URL}, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := destinations.Open(d, []byte(planted))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Send(t.Context(), batch(1))
	if !errors.Is(err, store.ErrDeliveryFailed) || rc.badSig != 1 || rc.requests != 1 {
		t.Fatalf("send = %v after %d requests (%d bad signatures); want one refused request", err, rc.requests, rc.badSig)
	}
	if strings.Contains(err.Error(), planted) || strings.Contains(err.Error(), hs.URL) {
		t.Fatalf("error carries the secret or the URL: %v", err)
	}
}

func TestWebhookRetries(t *testing.T) {
	t.Parallel()
	// 500, then 429 with Retry-After, then 200; the second batch goes
	// straight through. Each batch key is taken once, and every record
	// is delivered once.
	rc := &receiver{answers: []int{500, 429}, retryAfter: "1"}
	s, _ := webhookOn(t, rc)
	start := time.Now()
	for n := 1; n <= 2; n++ {
		if _, err := s.Send(t.Context(), batch(n)); err != nil {
			t.Fatalf("batch %d: %v", n, err)
		}
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("Retry-After: 1 not honoured: done after %v", waited)
	}
	if rc.requests != 4 || rc.records != 4 || rc.taken["run_1-1"] != 1 || rc.taken["run_1-2"] != 1 {
		t.Fatalf("receiver: %d requests, %d records, taken %v", rc.requests, rc.records, rc.taken)
	}
}

func TestWebhookRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		answers  []int
		ctx      time.Duration
		requests int
	}{
		{"400 fails without a retry", []int{400}, 0, 1},
		{"a redirect is not followed", []int{307}, 0, 1},
		{"5xx until the context ends", []int{503, 503, 503, 503, 503, 503, 503, 503}, 700 * time.Millisecond, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := &receiver{answers: tc.answers}
			s, hs := webhookOn(t, rc)
			ctx := t.Context()
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			res, err := s.Send(ctx, batch(1))
			if !errors.Is(err, store.ErrDeliveryFailed) || res.Failed != nil {
				t.Fatalf("send = %+v, %v; want ErrDeliveryFailed", res, err)
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if rc.requests < 1 || rc.requests > tc.requests || rc.records != 0 {
				t.Fatalf("%d requests (at most %d), %d records delivered", rc.requests, tc.requests, rc.records)
			}
			if strings.Contains(err.Error(), hs.URL) || strings.Contains(err.Error(), planted) {
				t.Fatalf("error carries the URL or secret: %v", err)
			}
		})
	}
}

func TestWebhookPartialFailure(t *testing.T) {
	t.Parallel()
	rc := &receiver{body: `{"failed":[{"index":1,"error":"unknown member\u0000"},{"index":9,"error":"not in the batch"}]}`}
	s, _ := webhookOn(t, rc)
	res, err := s.Send(t.Context(), batch(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 1 || res.Failed[1] != "unknown member " {
		t.Fatalf("failed = %v; want record 1 only, its reason printable", res.Failed)
	}
}

func TestWebhookTest(t *testing.T) {
	t.Parallel()
	rc := &receiver{}
	s, _ := webhookOn(t, rc)
	if err := destinations.Test(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if rc.requests != 1 || rc.records != 0 || rc.badSig != 0 {
		t.Fatalf("test delivery: %d requests, %d records, %d bad signatures; want one signed empty batch", rc.requests, rc.records, rc.badSig)
	}
	down := &receiver{answers: []int{500}}
	s, _ = webhookOn(t, down)
	if err := destinations.Test(t.Context(), s); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("test of a failing receiver = %v; want its status", err)
	}
}
