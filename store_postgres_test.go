//go:build postgres

package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// postgresURL is the server the PostgreSQL tests use (SCAIWAVE_TEST_POSTGRES).
// Without one they skip, except where SCAIWAVE_TEST_POSTGRES_REQUIRED is set
// (scripts/postgres/run.sh, CI): there a skip would hide that nothing ran,
// so it fails.
func postgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("SCAIWAVE_TEST_POSTGRES")
	if u == "" {
		if os.Getenv("SCAIWAVE_TEST_POSTGRES_REQUIRED") != "" {
			t.Fatal("SCAIWAVE_TEST_POSTGRES is not set but SCAIWAVE_TEST_POSTGRES_REQUIRED is: the PostgreSQL tests would not run")
		}
		t.Skip("SCAIWAVE_TEST_POSTGRES not set (scripts/postgres/run.sh sets it)")
	}
	return u
}

// withParam adds a query parameter to a PostgreSQL URL.
func withParam(u, kv string) string {
	if strings.Contains(u, "?") {
		return u + "&" + kv
	}
	return u + "?" + kv
}

// newPostgresSchema makes an empty schema on the test server and returns a
// URL whose connections use it (lib/pq passes search_path to the server),
// so that each test has a database of its own. It is dropped at the end.
func newPostgresSchema(t testing.TB) string {
	t.Helper()
	u := postgresURL(t)
	admin, err := sql.Open("postgres", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() { admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`) })
	return withParam(u, "search_path="+schema)
}

func postgresBackends(t testing.TB) []storeBackend {
	return []storeBackend{{
		name:  "postgres",
		newDB: newPostgresSchema,
		setVersion: func(t testing.TB, db string, v int) {
			raw, err := sql.Open("postgres", db)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Exec(`INSERT INTO schema_version (version, applied_at) VALUES ($1, 0)`, v); err != nil {
				t.Fatal(err)
			}
		},
	}}
}
