package main

import (
	"slices"
	"strings"
)

// grantScope is the scope to ask the IdP for when a client sends scope to
// /token or /refresh: the client's scope values that are also among the
// tenant's scopes, in the client's order, each once, so that a client
// cannot ask the IdP for more than the tenant allows. Values compare
// exactly (RFC 6749 §3.3: scope values are case-sensitive). An empty asked
// returns "", for the caller to decide what asking for nothing means.
//
// When none of the client's values is the tenant's, grantScope fails with
// a 400 naming the field rather than falling back to the tenant's scopes:
// that would grant the client more than it asked for, in silence.
func grantScope(t *tenantConfig, asked string) (string, error) {
	var out []string
	for _, s := range strings.Fields(asked) {
		if slices.Contains(t.Scopes, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 && strings.TrimSpace(asked) != "" {
		return "", badRequest("scope: none of the requested scopes is offered by this tenant (it offers %s)", strings.Join(t.Scopes, " "))
	}
	return strings.Join(out, " "), nil
}
