// Package guardrails decides what a caller may do. For now it owns RBAC
// (the permission table of DESIGN.md section 5 as data, enforced with
// Casbin's RBAC-with-domains model, one domain per workspace) and PII
// masking of previews; AI policies with CEL conditions, destination filters
// and rate limits belong here too as they arrive.
//
// Every decision fails closed: an unknown permission, a load error or a
// race between a role change and a call denies.
//
// guardrails imports store and Casbin; it never imports tools, server or a
// database driver.
package guardrails
