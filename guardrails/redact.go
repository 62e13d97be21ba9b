package guardrails

import (
	"encoding/json"
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// Redaction limits: audit args keep their shape but not their bulk.
const (
	maxRedactDepth  = 8
	maxRedactString = 512
	maxRedactItems  = 100
)

// secretNames are argument names whose values are never recorded.
var secretNames = []string{"password", "secret", "token", "api_key", "apikey", "authorization", "cookie", "credential", "private_key", "passphrase"}

// Redact returns a copy of tool arguments fit for an audit record: values of
// secret-named fields replaced, API keys in any string and in any argument
// name cut to their prefix, long strings and names truncated, deep or long
// structures cut. Arguments that are not a JSON object are recorded by type
// only. The store bounds the whole event again (store.BoundAudit).
func Redact(args any) map[string]any {
	if raw, ok := args.(json.RawMessage); ok {
		if json.Unmarshal(raw, &args) != nil {
			return map[string]any{"_not_an_object": "malformed JSON"}
		}
	}
	switch v := args.(type) {
	case nil:
		return nil
	case map[string]any:
		out, _ := redactValue(v, 0).(map[string]any)
		return out
	default:
		return map[string]any{"_not_an_object": typeName(v)}
	}
}

func redactValue(v any, depth int) any {
	if depth > maxRedactDepth {
		return "[too deep]"
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		n := 0
		for k, val := range x {
			if n == maxRedactItems {
				out["_truncated"] = true
				break
			}
			n++
			// A name is the caller's text as much as a value is.
			name := RedactString(k)
			if isSecretName(k) {
				out[name] = "[redacted]"
				continue
			}
			out[name] = redactValue(val, depth+1)
		}
		return out
	case []any:
		limit := min(len(x), maxRedactItems)
		out := make([]any, limit)
		for i := range limit {
			out[i] = redactValue(x[i], depth+1)
		}
		return out
	case string:
		return RedactString(x)
	default:
		return x
	}
}

// RedactString cuts any API key in s to its public prefix, removes the
// values of Authorization, Cookie and Set-Cookie headers and bearer
// credentials written in it, and cuts a long s to 512 bytes, ending with
// store.TruncationMark. Use it on any text from outside that is echoed or
// recorded.
func RedactString(s string) string {
	return store.BoundText(store.RedactSecrets(s), maxRedactString)
}

func isSecretName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range secretNames {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case []any:
		return "array"
	case bool:
		return "boolean"
	case float64, int, int64:
		return "number"
	default:
		return "other"
	}
}
