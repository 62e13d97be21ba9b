package guardrails

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"

	"github.com/signalsmith/agent-server/store"
)

// Policy types (DESIGN.md section 6).
const (
	TypeDeny            = "deny"
	TypeRequireApproval = "require_approval"
	TypeRateLimit       = "rate_limit"
)

// Operations a policy can name; "any" matches all of them.
var operations = []string{"create", "read", "update", "delete", "trigger", "any"}

// Resources a policy can name; "*" matches all of them.
var resources = []string{
	"table", "model", "audience", "destination", "source", "sync", "approval", "audit",
	"role", "member", "group", "key", "policy", "access_filter", "workspace", "*",
}

// Rate limit scopes: per API key, per human (store.Principal.Human: an
// agent's owner, a user itself, across all their keys) or per workspace.
const (
	ScopeKey       = "key"
	ScopeHuman     = "human"
	ScopeWorkspace = "workspace"
)

//go:embed defaults.yaml
var defaultPolicies []byte

// Policy is one guardrail rule. Resources, Operations, Sources, Roles and
// Keys narrow where it applies (empty means any); Condition, a CEL
// expression over the decision's inputs, narrows it further.
type Policy struct {
	ID          string        `yaml:"id" json:"id"`
	Description string        `yaml:"description" json:"description,omitempty"`
	Type        string        `yaml:"type" json:"type"`
	Resources   []string      `yaml:"resources" json:"resources"`
	Operations  []string      `yaml:"operations" json:"operations"`
	Sources     []string      `yaml:"sources" json:"sources,omitempty"`
	Roles       []string      `yaml:"roles" json:"roles,omitempty"`
	Keys        []string      `yaml:"keys" json:"keys,omitempty"`
	Condition   string        `yaml:"condition" json:"condition,omitempty"`
	Limit       int           `yaml:"limit" json:"limit,omitempty"`
	Window      time.Duration `yaml:"window" json:"window,omitempty"`
	Scope       string        `yaml:"scope" json:"scope,omitempty"`
	// Message is the reason a person reads when the policy fires.
	Message string `yaml:"message" json:"message"`
	// Suggestion tells the agent what it can do instead.
	Suggestion string `yaml:"suggestion" json:"suggestion,omitempty"`

	program cel.Program
}

// PolicySet is a validated set of policies with every condition compiled.
// Version identifies its content; decisions record it.
type PolicySet struct {
	Version  string
	Policies []Policy
}

// DefaultPolicySource returns the YAML of the shipped defaults.
func DefaultPolicySource() []byte { return slices.Clone(defaultPolicies) }

// DefaultPolicies returns the shipped defaults of DESIGN.md section 6.
func DefaultPolicies() (*PolicySet, error) {
	return ParsePolicies("defaults.yaml", defaultPolicies)
}

// policyFile is the YAML document: a list of policies.
type policyFile struct {
	Policies []yaml.Node `yaml:"policies"`
}

var policyFields = []string{"id", "description", "type", "resources", "operations", "sources", "roles", "keys", "condition", "limit", "window", "scope", "message", "suggestion"}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// ParsePolicies parses and validates a YAML policy file. Every error names
// the file and line and says what is wrong; a CEL condition that does not
// compile to a boolean is refused here, never at call time.
func ParsePolicies(filename string, data []byte) (*PolicySet, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", filename, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty policy file", filename)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: expected a mapping with a \"policies\" list", filename, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Value != "policies" {
			return nil, fmt.Errorf("%s:%d: unknown field %q (expected \"policies\")", filename, k.Line, k.Value)
		}
	}
	var f policyFile
	if err := root.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", filename, err)
	}
	env, err := conditionEnv()
	if err != nil {
		return nil, err
	}
	set := &PolicySet{}
	seen := map[string]int{}
	for _, node := range f.Policies {
		p, err := parsePolicy(env, &node)
		if err != nil {
			return nil, fmt.Errorf("%s:%s", filename, err)
		}
		if line, dup := seen[p.ID]; dup {
			return nil, fmt.Errorf("%s:%d: policy id %q is already used on line %d", filename, node.Line, p.ID, line)
		}
		seen[p.ID] = node.Line
		set.Policies = append(set.Policies, p)
	}
	sum := sha256.Sum256(bytes.TrimSpace(data))
	set.Version = hex.EncodeToString(sum[:6])
	return set, nil
}

// parsePolicy decodes and checks one policy node. Errors start with the
// line number.
func parsePolicy(env *cel.Env, node *yaml.Node) (Policy, error) {
	fail := func(line int, format string, args ...any) (Policy, error) {
		return Policy{}, fmt.Errorf("%d: %s", line, fmt.Sprintf(format, args...))
	}
	if node.Kind != yaml.MappingNode {
		return fail(node.Line, "a policy must be a mapping")
	}
	lines := map[string]int{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i]
		if !slices.Contains(policyFields, k.Value) {
			return fail(k.Line, "unknown field %q (fields: %s)", k.Value, strings.Join(policyFields, ", "))
		}
		lines[k.Value] = k.Line
	}
	var p Policy
	if err := node.Decode(&p); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			return fail(node.Line, "%s", strings.TrimPrefix(te.Errors[0], "line "))
		}
		return fail(node.Line, "%v", err)
	}
	at := func(field string) int {
		if l, ok := lines[field]; ok {
			return l
		}
		return node.Line
	}
	if !idPattern.MatchString(p.ID) {
		return fail(at("id"), "policy id %q must be 1-64 lowercase letters, digits, '_', '-' or '.'", p.ID)
	}
	switch p.Type {
	case TypeDeny, TypeRequireApproval:
		if p.Limit != 0 || p.Window != 0 || p.Scope != "" {
			return fail(at("limit"), "policy %s: limit, window and scope belong to rate_limit policies", p.ID)
		}
	case TypeRateLimit:
		if p.Limit < 1 || p.Window <= 0 {
			return fail(at("type"), "policy %s: a rate_limit needs a positive limit and window", p.ID)
		}
		if p.Scope == "" {
			p.Scope = ScopeKey
		}
		if p.Scope != ScopeKey && p.Scope != ScopeHuman && p.Scope != ScopeWorkspace {
			return fail(at("scope"), "policy %s: scope must be key, human or workspace, not %q", p.ID, p.Scope)
		}
	default:
		return fail(at("type"), "policy %s: type must be deny, require_approval or rate_limit, not %q", p.ID, p.Type)
	}
	if len(p.Resources) == 0 || len(p.Operations) == 0 {
		return fail(node.Line, "policy %s: resources and operations are required (use \"*\" and \"any\" for all)", p.ID)
	}
	for _, r := range p.Resources {
		if !slices.Contains(resources, r) {
			return fail(at("resources"), "policy %s: unknown resource %q (resources: %s)", p.ID, r, strings.Join(resources, ", "))
		}
	}
	for _, o := range p.Operations {
		if !slices.Contains(operations, o) {
			return fail(at("operations"), "policy %s: unknown operation %q (operations: %s)", p.ID, o, strings.Join(operations, ", "))
		}
	}
	for _, s := range p.Sources {
		if !slices.Contains([]string{store.SourceAI, store.SourceAPI, store.SourceUI, store.SourceCLI, store.SourceSystem}, s) {
			return fail(at("sources"), "policy %s: unknown source %q (AI, API, UI, CLI, SYSTEM)", p.ID, s)
		}
	}
	if strings.TrimSpace(p.Message) == "" {
		return fail(node.Line, "policy %s: a message saying why it fires is required", p.ID)
	}
	if p.Condition != "" {
		prg, err := compileCondition(env, p.Condition)
		if err != nil {
			return fail(at("condition"), "policy %s: condition: %v", p.ID, err)
		}
		p.program = prg
	}
	return p, nil
}

// conditionEnv declares what a condition may read (DESIGN.md section 6):
// the call, its arguments as the caller gave them, and every declared fact
// with its type (factDeclarations). Numbers of different types compare as
// numbers (facts.max_dependent_change_pct > 10), as they did when facts
// were untyped.
func conditionEnv() (*cel.Env, error) {
	dyn := cel.MapType(cel.StringType, cel.DynType)
	opts := []cel.EnvOption{
		cel.CrossTypeNumericComparisons(true),
		cel.Variable("principal", dyn),
		cel.Variable("source", cel.StringType),
		cel.Variable("tool", cel.StringType),
		cel.Variable("resource", cel.StringType),
		cel.Variable("operation", cel.StringType),
		cel.Variable("args", dyn),
	}
	env, err := cel.NewEnv(append(opts, factDeclarations()...)...)
	if err != nil {
		return nil, fmt.Errorf("condition environment: %w", err)
	}
	return env, nil
}

// compileCondition compiles a CEL expression that must yield a boolean.
func compileCondition(env *cel.Env, expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		msg := strings.ReplaceAll(iss.Err().Error(), "\n", " ")
		if strings.Contains(msg, "undeclared reference to 'facts") {
			msg += " (facts: " + factNames() + ")"
		}
		return nil, errors.New(msg)
	}
	if !ast.OutputType().IsExactType(cel.BoolType) && !ast.OutputType().IsExactType(cel.DynType) {
		return nil, fmt.Errorf("must be a boolean expression, not %s", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(100000))
	if err != nil {
		return nil, err
	}
	return prg, nil
}
