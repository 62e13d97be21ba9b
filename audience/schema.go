package audience

import (
	_ "embed"
	"encoding/json"
	"slices"
)

//go:embed schema.json
var schemaJSON []byte

// SchemaID is the $id of the definition's JSON Schema. The schema's
// internal references ("#/$defs/...") resolve against it, so the schema
// keeps working when a tool embeds it as one property of its own input
// schema.
const SchemaID = "https://signalsmith.dev/schemas/audience-definition.json"

// Schema returns the JSON Schema (draft 2020-12) of a definition, for
// tools to put in their input schemas and for structured output when a
// model drafts a definition. It describes the shapes Parse accepts; what
// needs the model (columns, types, PII levels) and the limits on depth and
// number of conditions are Validate's and Parse's to check. The caller
// gets its own copy.
func Schema() json.RawMessage {
	return slices.Clone(schemaJSON)
}
