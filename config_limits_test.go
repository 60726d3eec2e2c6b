package main

// max_body_bytes_in_flight: default and checks.

import (
	"strings"
	"testing"
)

func TestConfigLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		kv        []any
		wantBytes int64
		wantErr   string
	}{
		{"absent: the default", nil, defaultMaxBodyBytesInFlight, ""},
		{"zero: the default", []any{"max_body_bytes_in_flight", 0}, defaultMaxBodyBytesInFlight, ""},
		{"set", []any{"max_body_bytes_in_flight", 1 << 20}, 1 << 20, ""},
		{"one largest body", []any{"max_body_bytes_in_flight", maxBodyBytes}, maxBodyBytes, ""},
		{"budget below one largest body", []any{"max_body_bytes_in_flight", maxBodyBytes - 1}, 0, "max_body_bytes_in_flight: must be from 65536 (one body of the largest size)"},
		{"negative budget", []any{"max_body_bytes_in_flight", -5}, 0, "max_body_bytes_in_flight: must be from 65536"},
		{"budget over 1 GiB", []any{"max_body_bytes_in_flight", 2 << 30}, 0, "max_body_bytes_in_flight: must be from 65536 (one body of the largest size) to 1073741824"},
		{"budget a fraction", []any{"max_body_bytes_in_flight", 1.5e6 + 0.5}, 0, "max_body_bytes_in_flight: must be a int64"},
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
		if cfg.MaxBodyBytesInFlight != tc.wantBytes {
			t.Errorf("parseConfig (%s): max_body_bytes_in_flight %d; want %d", tc.name, cfg.MaxBodyBytesInFlight, tc.wantBytes)
		}
	}
}
