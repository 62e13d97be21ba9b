package trino

import "testing"

func TestQuoteIdent(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"customers", `"customers"`},
		{`we"ird`, `"we""ird"`},
		{"a.b", `"a.b"`},
		{"", `""`},
	}
	for _, tt := range tests {
		if got := (Dialect{}).QuoteIdent(tt.in); got != tt.want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if got := (Dialect{}).Name(); got != "trino" {
		t.Errorf("Name() = %q, want trino", got)
	}
}
