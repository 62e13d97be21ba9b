// Package retry holds the one backoff the server retries with: capped,
// exponential and jittered (Backoff), and a wait that ends with its context
// (Sleep). The audit shipper and the approval webhook both use it, so a
// receiver that is down sees every retrier slow down the same way and
// shutdown never waits out a backoff.
//
// It imports only the standard library, so any package may use it.
package retry
