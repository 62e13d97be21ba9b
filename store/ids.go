package store

import "strings"

// Id prefixes a store assigns, by object type. An id is one of them
// followed by a UUIDv7.
const (
	ModelIDPrefix    = "mdl_"
	AudienceIDPrefix = "aud_"
)

// IDPrefixes are every id prefix a store assigns (workspaces, members,
// groups, keys, models, audiences, destinations, syncs, approvals,
// policies, access filters, destination filters). A name that starts with one looks like an id:
// references that have the id form are looked up by id only, so such a
// name would shadow nothing but would mislead whoever reads it, and is
// refused (LooksLikeID).
var IDPrefixes = []string{"ws_", "mem_", "grp_", "key_", ModelIDPrefix, AudienceIDPrefix, "dst_", "syn_", "apr_", "pol_", "flt_", "dfl_"}

// LooksLikeID reports whether name starts with one of IDPrefixes, in any
// letter case, and returns that prefix.
func LooksLikeID(name string) (string, bool) {
	lower := strings.ToLower(name)
	for _, p := range IDPrefixes {
		if strings.HasPrefix(lower, p) {
			return p, true
		}
	}
	return "", false
}

// IsModelID reports whether a model reference has the form of a model id.
// Such a reference names a model by id, never by name: resolving it by
// name could pick a model named like another model's id.
func IsModelID(ref string) bool { return strings.HasPrefix(ref, ModelIDPrefix) }
