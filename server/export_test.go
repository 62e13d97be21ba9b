package server

import "time"

// SetRequestAuditClock makes the per-address limits of s's HTTP layer read
// the time from now, so tests can start a new minute without waiting.
func SetRequestAuditClock(s *Server, now func() time.Time) {
	s.refusals.mu.Lock()
	defer s.refusals.mu.Unlock()
	s.refusals.now = now
}
