// Package destinations delivers sync batches to where audiences go
// (DESIGN.md sections 3 and 9) and keeps destination credentials sealed.
//
// It owns:
//
//   - The settings of a destination (Spec, Build): types webhook and file,
//     a category (advertising, crm, marketing, analytics, other), an
//     environment (production, sandbox), a batch size (BatchSize: the sync
//     engine sends batches of that size) and, for a webhook, a URL (https;
//     plain http only on loopback) and a request timeout; for a file
//     destination an existing writable folder (relative ones inside the
//     data directory) and a format (jsonl, csv). Settings live in the
//     destination's Config; the secret never does.
//
//   - The master key (Keyring): AES-256-GCM under a 32-byte key from
//     SIGNALSMITH_MASTER_KEY, or from master.key in the data directory
//     (mode 0600, created by the command line when absent). Each sealed
//     credential is stored with the id of the key that sealed it and is
//     bound to its workspace and destination (GCM additional data), so a
//     credential copied to another row does not open. Rotate re-encrypts
//     every credential in one store transaction; the key file holds the
//     old and the new key until that commits, so a crash loses nothing.
//
//   - The Senders (store.Sender): Open makes one from a destination and
//     its secret; Registry.Sender does it for a stored destination,
//     decrypting the credential only in memory. Test checks a destination
//     without sending a member.
//
//   - The checks of a destination filter a person writes (CheckFilter):
//     known effect, category, environment and PII level, a destination
//     and model of the workspace, a column of the model (or of any model).
//
// Webhook deliveries are POSTs of {"sync_id","run_id","batch","records"}
// with the headers X-Signalsmith-Timestamp (Unix seconds),
// X-Signalsmith-Signature ("v1=" + hex HMAC-SHA256 of timestamp + "." +
// body under the secret, see Sign) and Idempotency-Key (run id + "-" +
// batch number), so a receiver can drop a batch sent again after a crash.
// A 2xx answer accepts the batch; a body {"failed":[{"index":i,"error":
// "..."}]} marks records refused. 429 (after its Retry-After) and 5xx
// answers and transport errors are retried with jittered exponential
// backoff (internal/retry) until the context ends, then the batch fails
// with store.ErrDeliveryFailed; any other answer, redirects included,
// fails it at once. File deliveries write SYNC-RUN-NNNNNN.jsonl (or .csv)
// atomically (temporary file, fsync, rename): the same run and batch
// always name the same file, so a batch written again replaces it.
//
// No error of this package carries a secret, a record's value or a
// transport error's text (which names addresses).
//
// It imports store and internal/retry only, so the command line, the
// server and the sync engine share it.
package destinations
