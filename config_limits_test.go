package main

// max_connections and max_body_bytes_in_flight: defaults and checks.

import (
	"strings"
	"testing"
)

func TestConfigLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		kv        []any
		wantConns int
		wantBytes int64
		wantErr   string
	}{
		{"absent: the defaults", nil, defaultMaxConnections, defaultMaxBodyBytesInFlight, ""},
		{"zero: the defaults", []any{"max_connections", 0, "max_body_bytes_in_flight", 0}, defaultMaxConnections, defaultMaxBodyBytesInFlight, ""},
		{"set", []any{"max_connections", 16, "max_body_bytes_in_flight", 1 << 20}, 16, 1 << 20, ""},
		{"one connection, one largest body", []any{"max_connections", 1, "max_body_bytes_in_flight", maxBodyBytes}, 1, maxBodyBytes, ""},
		{"negative connections", []any{"max_connections", -1}, 0, 0, "max_connections: must be from 1 to 1000000, not -1"},
		{"too many connections", []any{"max_connections", 2_000_000}, 0, 0, "max_connections: must be from 1 to 1000000"},
		{"connections not a number", []any{"max_connections", "many"}, 0, 0, "max_connections: must be a whole number"},
		{"budget below one largest body", []any{"max_body_bytes_in_flight", maxBodyBytes - 1}, 0, 0, "max_body_bytes_in_flight: must be from 65536 (one body of the largest size)"},
		{"negative budget", []any{"max_body_bytes_in_flight", -5}, 0, 0, "max_body_bytes_in_flight: must be from 65536"},
		{"budget over 1 GiB", []any{"max_body_bytes_in_flight", 2 << 30}, 0, 0, "max_body_bytes_in_flight: must be from 65536 (one body of the largest size) to 1073741824"},
		{"budget a fraction", []any{"max_body_bytes_in_flight", 1.5e6 + 0.5}, 0, 0, "max_body_bytes_in_flight: must be a whole number"},
	}
	for _, tc := range tests {
		cfg, err := parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme")), tc.kv...)), noEnv)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || exitCode(err) != 2 {
				t.Errorf("parseConfig (%s) = %v; want an error containing %q, exit status 2", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseConfig (%s) = %v", tc.name, err)
			continue
		}
		if cfg.MaxConnections != tc.wantConns || cfg.MaxBodyBytesInFlight != tc.wantBytes {
			t.Errorf("parseConfig (%s): max_connections %d, max_body_bytes_in_flight %d; want %d, %d", tc.name, cfg.MaxConnections, cfg.MaxBodyBytesInFlight, tc.wantConns, tc.wantBytes)
		}
	}
}
