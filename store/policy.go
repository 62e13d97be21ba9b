package store

import "time"

// PolicySet is a stored AI policy file: its YAML source, the version the
// guardrails compute from it, and who applied it when.
type PolicySet struct {
	Version   string    `json:"version"`
	Source    string    `json:"source"`
	AppliedBy string    `json:"applied_by"`
	AppliedAt time.Time `json:"applied_at"`
}
