package main

import (
	"strings"
	"testing"
)

// TestConfigDistinctClients: two tenants with one issuer and one client_id
// are a configuration error (exit 2, naming the field), since a token of
// one would register under the other; sharing only one of the two is fine.
func TestConfigDistinctClients(t *testing.T) {
	t.Parallel()
	const issuer = "http://127.0.0.1:1/realms/shared"
	a := cfgTenant("acme", "hosts", []string{"a.example"}, "issuer", issuer)
	tests := []struct {
		name    string
		other   map[string]any
		wantErr string
	}{
		{"same issuer and client_id", cfgTenant("beta", "hosts", []string{"b.example"}, "issuer", issuer),
			"tenants[1].client_id: scaiwave at issuer " + issuer + " is also the client of tenants[0] (acme)"},
		{"same issuer, another client", cfgTenant("beta", "hosts", []string{"b.example"}, "issuer", issuer, "client_id", "other"), ""},
		{"same client, another issuer", cfgTenant("beta", "hosts", []string{"b.example"}, "issuer", issuer+"-2"), ""},
	}
	for _, tc := range tests {
		path := writeTestFile(t, t.TempDir(), "scaiwave.json", cfgJSON(tenants(a, tc.other)))
		// -check would fetch discovery from the loopback issuers, and fail.
		_, _, err := runCmd("-config", path, "-check")
		if tc.wantErr == "" {
			if exitCode(err) == 2 {
				t.Errorf("-config with tenants of %s: %v; want no configuration error", tc.name, err)
			}
			continue
		}
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("-config with tenants of %s: %v (exit %d); want exit 2 and %q", tc.name, err, exitCode(err), tc.wantErr)
		}
	}
}
