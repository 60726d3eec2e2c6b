//go:build postgres

package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// pgCtl runs pg_ctl on the test server (SCAIWAVE_TEST_PG_CTL, set by
// scripts/postgres/run.sh) with args.
func pgCtl(t *testing.T, args ...string) {
	t.Helper()
	base := strings.Fields(os.Getenv("SCAIWAVE_TEST_PG_CTL"))
	if len(base) == 0 {
		if os.Getenv("SCAIWAVE_TEST_POSTGRES_REQUIRED") != "" {
			t.Fatal("SCAIWAVE_TEST_PG_CTL not set: cannot stop and start the server")
		}
		t.Skip("SCAIWAVE_TEST_PG_CTL not set (scripts/postgres/run.sh sets it)")
	}
	out, err := exec.Command(base[0], append(base[1:], args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
	}
}

// TestPostgresDownAndBack stops the server under a running service and
// starts it again: meanwhile a new person gets 503 SW_STORE_UNAVAILABLE
// with Retry-After, /readyz is 503, a person already known (cached) still
// gets 200; after, everything answers again without a restart, and nothing
// answered 200 before is lost. Not parallel: it stops the shared server.
func TestPostgresDownAndBack(t *testing.T) {
	db := newPostgresSchema(t)
	f := newFakeIDP(t)
	a := startReplicas(t, f, db, 1)[0]
	known := f.accessToken(map[string]any{"sub": "known"})
	checkRegister(t, "before", a.register(known), 200)
	before := decode(t, a.register(known)).Data["participant_id"]

	pgCtl(t, "stop", "-m", "fast", "-w")
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			pgCtl(t, "start", "-w")
		}
	})
	newcomer := f.accessToken(map[string]any{"sub": "newcomer"})
	w := a.register(newcomer)
	tokCheck(t, "/v1/auth/register", "database stopped", w, 503, "SW_STORE_UNAVAILABLE")
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	checkRegister(t, "known person, database stopped", a.register(known), 200)
	waitAppStatus(t, a, "/readyz", 503, 3*time.Second)

	pgCtl(t, "start", "-w")
	restarted = true
	waitAppStatus(t, a, "/readyz", 200, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		w := a.register(newcomer)
		if w.Code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the database came back, a new person still gets %d %s", w.Code, w.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := a.store.participantByPrincipal(t.Context(), principal{TenantID: "acme", Issuer: f.issuer, Subject: "known"})
	if err != nil || got.ID != before {
		t.Errorf("the participant answered 200 before the outage = %q, %v; want %v", got.ID, err, before)
	}
}

// waitAppStatus polls path until it answers want, failing after d.
func waitAppStatus(t *testing.T, a *testApp, path string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		w := a.do("GET", path, "")
		if w.Code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d %s after %v; want %d", path, w.Code, w.Body, d, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The admin commands work on the shared database: list what a replica
// registered, delete it; backup refuses and names pg_dump.
func TestPostgresAdminCommands(t *testing.T) {
	db := newPostgresSchema(t)
	f := newFakeIDP(t)
	a := startReplicas(t, f, db, 1)[0]
	id, _ := decode(t, a.register(f.accessToken(map[string]any{"sub": "listed"}))).Data["participant_id"].(string)
	out, _, err := runCmd("participants", "list", "-db", db)
	if err != nil || !strings.Contains(out, id) {
		t.Fatalf("participants list = %q, %v; want %s in it", out, err, id)
	}
	if _, _, err := runCmd("participants", "delete", "-db", db, id); err != nil {
		t.Fatalf("participants delete: %v", err)
	}
	if out, _, _ := runCmd("participants", "list", "-db", db); strings.Contains(out, id) {
		t.Errorf("deleted participant still listed: %q", out)
	}
	_, _, err = runCmd("backup", "-db", db, t.TempDir()+"/b.db")
	if err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("backup of PostgreSQL = %v; want a refusal naming pg_dump", err)
	}
}
