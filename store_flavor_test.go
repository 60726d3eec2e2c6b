package main

import (
	"os"
	"strings"
	"testing"
)

// TestSQLiteFlavorRewrite turns the PostgreSQL dialect the queries are
// written in into SQLite's, word by word, and leaves PostgreSQL's alone.
func TestSQLiteFlavorRewrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, sqlite string }{
		{`SELECT a FROM t WHERE x = $1 AND y = $2`, `SELECT a FROM t WHERE x = ?1 AND y = ?2`},
		{`VALUES ($10, $1)`, `VALUES (?10, ?1)`},
		{`SET a = greatest(t.a, excluded.a)`, `SET a = max(t.a, excluded.a)`},
		{`WHERE t.a IS DISTINCT FROM excluded.a`, `WHERE t.a IS NOT excluded.a`},
		{`SELECT 'no parameters'`, `SELECT 'no parameters'`},
	} {
		if got := sqliteFlavor().q(tc.in); got != tc.sqlite {
			t.Errorf("sqlite %q = %q; want %q", tc.in, got, tc.sqlite)
		}
		if got := postgresFlavor().q(tc.in); got != tc.in {
			t.Errorf("postgres %q = %q; want it unchanged", tc.in, got)
		}
	}
}

// TestDatabaseForLog keeps a PostgreSQL password (in the user information
// or in the query) out of the log line, and a SQLite path as it is.
func TestDatabaseForLog(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/var/lib/scaiwave/auth.db":                                   "/var/lib/scaiwave/auth.db",
		"postgres://sw:s3cret@db.internal:5432/scaiwave":              "postgres://db.internal:5432/scaiwave",
		"postgresql://db:5432/scaiwave?sslmode=require&password=s3cr": "postgresql://db:5432/scaiwave",
		"POSTGRES://u:p%40ss@h/d":                                     "POSTGRES://h/d",
	} {
		got := databaseForLog(in)
		if got != want || strings.Contains(got, "s3cr") {
			t.Errorf("databaseForLog(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestParseConfigDatabaseSources reads the database setting from the file
// or the environment variable named, one source at most.
func TestParseConfigDatabaseSources(t *testing.T) {
	t.Parallel()
	const url = "postgres://sw:pw@127.0.0.1:5432/sw"
	file := writeTestFile(t, t.TempDir(), "db", url+"\n")
	env := func(k string) string {
		if k == "SW_DB" {
			return url
		}
		return ""
	}
	for _, tc := range []struct {
		kv      []any
		want    string
		wantErr string
	}{
		{[]any{"database", "/tmp/x.db"}, "/tmp/x.db", ""},
		{[]any{"database_url_file", file}, url, ""},
		{[]any{"database_url_env", "SW_DB"}, url, ""},
		{[]any{"database_url_env", "UNSET"}, "", "database_url_env: environment variable UNSET is unset or empty"},
		{[]any{"database", "/tmp/x.db", "database_url_env", "SW_DB"}, "", "set only one of database"},
	} {
		cfg, err := parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme")), tc.kv...)), env)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "pw@") {
				t.Errorf("parseConfig (%v) error = %v; want one containing %q and no password", tc.kv, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseConfig (%v) = %v", tc.kv, err)
			continue
		}
		if cfg.Database != tc.want {
			t.Errorf("database from %v = %q; want %q", tc.kv, cfg.Database, tc.want)
		}
	}
}

// TestMigrationListsInStep keeps the PostgreSQL schema at the same version
// numbers as SQLite's: one migration each, for each version.
func TestMigrationListsInStep(t *testing.T) {
	t.Parallel()
	if len(pgMigrations) != len(migrations) {
		t.Errorf("%d PostgreSQL migrations, %d SQLite ones; want them in step", len(pgMigrations), len(migrations))
	}
}

// TestDeployReplicasConfigParses: the two-replica example in deploy/ is a
// valid configuration once its secret files exist, and names a PostgreSQL
// database through database_url_file.
func TestDeployReplicasConfigParses(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("deploy/replicas/scaiwave.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	url := writeTestFile(t, dir, "database-url", "postgres://scaiwave:pw@db:5432/scaiwave?sslmode=disable")
	secret := writeTestFile(t, dir, "client-secret", "s3cret")
	doc := strings.NewReplacer("/run/secrets/database-url", url, "/run/secrets/client-secret", secret).Replace(string(raw))
	cfg, err := parseConfig([]byte(doc), noEnv)
	if err != nil {
		t.Fatalf("parseConfig (deploy/replicas/scaiwave.json) = %v", err)
	}
	if !isPostgresURL(cfg.Database) {
		t.Errorf("deploy/replicas/scaiwave.json database = %q; want a PostgreSQL URL", databaseForLog(cfg.Database))
	}
}
