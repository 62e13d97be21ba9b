package destinations

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/signalsmith/agent-server/internal/retry"
	"github.com/signalsmith/agent-server/store"
)

// Headers of a webhook delivery.
const (
	HeaderTimestamp   = "X-Signalsmith-Timestamp"
	HeaderSignature   = "X-Signalsmith-Signature"
	HeaderIdempotency = "Idempotency-Key"
)

// Retry bounds of a webhook delivery. Retries go on until ctx ends or
// maxAttempts requests were made.
const (
	maxAttempts = 8
	// maxRetryAfter caps the wait a receiver's Retry-After asks for.
	maxRetryAfter = 5 * time.Minute
	// maxAnswer caps the response body read for per-record failures.
	maxAnswer = 1 << 20
	// maxReason bounds a receiver's per-record reason.
	maxReason = 200
)

var defaultBackoff = retry.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}

// Webhook delivers batches as signed HTTPS POSTs of JSON (see doc.go).
type Webhook struct {
	url     string
	secret  []byte
	client  *http.Client
	backoff retry.Backoff
	now     func() time.Time
}

var _ store.Sender = (*Webhook)(nil)

// newWebhook returns the Sender of a webhook destination.
func newWebhook(d store.Destination, secret []byte) (*Webhook, error) {
	u, _ := d.Config["url"].(string)
	if err := checkURL(u); err != nil {
		return nil, err
	}
	if err := CheckSecret(secret); err != nil {
		return nil, err
	}
	return &Webhook{
		url:    u,
		secret: bytes.Clone(secret),
		client: &http.Client{
			Timeout: timeout(d),
			// A redirect could carry the batch somewhere a person did not
			// configure: it is an answer, not a hop.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		backoff: defaultBackoff,
		now:     time.Now,
	}, nil
}

// payload is the JSON body of a delivery.
type payload struct {
	SyncID  string             `json:"sync_id"`
	RunID   string             `json:"run_id"`
	Batch   int                `json:"batch"`
	Records []store.SyncRecord `json:"records"`
}

// answer is what a receiver may say about a batch it took.
type answer struct {
	Failed []struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	} `json:"failed"`
}

// Sign returns the signature header value of a body sent at timestamp ts
// (Unix seconds, as sent in HeaderTimestamp): "v1=" and the hex
// HMAC-SHA256 of ts + "." + body under the secret. Receivers compute the
// same to check a delivery.
func Sign(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// IdempotencyKey is the key of a batch: its run id, "-" and its number.
func IdempotencyKey(b store.SyncBatch) string {
	return b.RunID + "-" + strconv.Itoa(b.Number)
}

// Send posts the batch, retrying 429 (after Retry-After when given) and
// 5xx answers and transport errors with backoff until ctx ends. Another
// answer below 200 or from 300 up fails the batch at once.
func (w *Webhook) Send(ctx context.Context, b store.SyncBatch) (store.BatchResult, error) {
	records := b.Records
	if records == nil {
		records = []store.SyncRecord{}
	}
	body, err := json.Marshal(payload{SyncID: b.SyncID, RunID: b.RunID, Batch: b.Number, Records: records})
	if err != nil {
		return store.BatchResult{}, fmt.Errorf("encode batch %d: %w", b.Number, err)
	}
	var last string
	for attempt := 1; ; attempt++ {
		res, wait, done, why := w.post(ctx, b, body, len(records))
		if done {
			return res, why
		}
		last = why.Error()
		if attempt >= maxAttempts {
			break
		}
		if d := w.backoff.Delay(attempt); d > wait {
			wait = d
		}
		if !retry.Sleep(ctx, wait) {
			break
		}
	}
	return store.BatchResult{}, fmt.Errorf("%w: batch %d: %s", store.ErrDeliveryFailed, b.Number, last)
}

// post makes one attempt. done says whether its outcome is final (a
// result, or an error that a retry would not change); when not, wait is
// what the receiver asked to wait and err says why it failed.
func (w *Webhook) post(ctx context.Context, b store.SyncBatch, body []byte, n int) (res store.BatchResult, wait time.Duration, done bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return store.BatchResult{}, 0, true, fmt.Errorf("%w: the webhook URL cannot be used", store.ErrDeliveryFailed)
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "signalsmith-webhook/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(w.secret, ts, body))
	req.Header.Set(HeaderIdempotency, IdempotencyKey(b))
	resp, err := w.client.Do(req)
	if err != nil {
		// The transport's error names the URL and the address: not for
		// errors that reach a model or an audit record.
		return store.BatchResult{}, 0, false, fmt.Errorf("the webhook did not answer (connection error or timeout)")
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return failures(data, n), 0, true, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return store.BatchResult{}, retryAfter(resp.Header.Get("Retry-After"), w.now()), false,
			fmt.Errorf("the webhook answered 429 Too Many Requests")
	case resp.StatusCode >= 500:
		return store.BatchResult{}, 0, false, fmt.Errorf("the webhook answered %d", resp.StatusCode)
	}
	return store.BatchResult{}, 0, true, fmt.Errorf("%w: batch %d: the webhook answered %d, which is not retried (check its URL and secret)",
		store.ErrDeliveryFailed, b.Number, resp.StatusCode)
}

// failures reads the per-record failures of a 2xx answer; any other body
// means every record was accepted. Indexes outside the batch are ignored.
func failures(data []byte, n int) store.BatchResult {
	var a answer
	if len(data) == 0 || json.Unmarshal(data, &a) != nil || len(a.Failed) == 0 {
		return store.BatchResult{}
	}
	res := store.BatchResult{Failed: map[int]string{}}
	for _, f := range a.Failed {
		if f.Index < 0 || f.Index >= n {
			continue
		}
		res.Failed[f.Index] = reason(f.Error)
	}
	if len(res.Failed) == 0 {
		res.Failed = nil
	}
	return res
}

// reason is a receiver's reason made safe to store: printable, bounded.
func reason(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	if len(s) > maxReason {
		s = s[:maxReason]
	}
	if strings.TrimSpace(s) == "" {
		return "refused by the destination"
	}
	return s
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), capped.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// Test sends an empty batch (sync "test", batch 0) and reports whether the
// webhook took it, without retrying.
func (w *Webhook) Test(ctx context.Context) error {
	b := store.SyncBatch{SyncID: "test", RunID: "test_" + strconv.FormatInt(w.now().UnixNano(), 36), Number: 0}
	body, err := json.Marshal(payload{SyncID: b.SyncID, RunID: b.RunID, Batch: 0, Records: []store.SyncRecord{}})
	if err != nil {
		return err
	}
	_, _, _, err = w.post(ctx, b, body, 0)
	return err
}

// Close releases idle connections.
func (w *Webhook) Close() error {
	w.client.CloseIdleConnections()
	return nil
}
