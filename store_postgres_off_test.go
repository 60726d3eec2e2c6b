//go:build !postgres

package main

import (
	"context"
	"strings"
	"testing"
)

// TestDefaultBuildRefusesPostgres: without -tags postgres a PostgreSQL URL
// is a usage error (exit 2) naming the tag, and not a SQLite file name.
func TestDefaultBuildRefusesPostgres(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"postgres://u:secret@127.0.0.1/db", "postgresql://127.0.0.1/db"} {
		_, err := openStore(context.Background(), url)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "-tags postgres") || strings.Contains(err.Error(), "secret") {
			t.Errorf("openStore(%s) = %v (exit %d); want exit 2 naming -tags postgres", databaseForLog(url), err, exitCode(err))
		}
	}
}

// postgresBackends: none in the default build.
func postgresBackends(testing.TB) []storeBackend { return nil }
