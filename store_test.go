package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// openTestStore opens a store at path and fails the test if it cannot. The
// caller closes it (t.Cleanup or explicitly, never both: Close is once).
func openTestStore(t testing.TB, path string) *store {
	t.Helper()
	s, err := openStore(context.Background(), path)
	if err != nil {
		t.Fatalf("openStore(%s): %v", path, err)
	}
	return s
}

func testPrincipal(sub string) principal {
	return principal{TenantID: "acme", Issuer: "https://idp.example.com", Subject: sub}
}

// openRaw opens the database file directly, bypassing the store, one
// connection so that pragmas set on it stay set.
func openRaw(t testing.TB, path string, params ...string) *sql.DB {
	t.Helper()
	dsn := "file:" + path
	if len(params) > 0 {
		dsn += "?" + strings.Join(params, "&")
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func queryInt(t testing.TB, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) int {
	t.Helper()
	var n int
	if err := q.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func integrityCheck(t testing.TB, db *sql.DB) {
	t.Helper()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatalf("PRAGMA integrity_check: %v", err)
	}
	if res != "ok" {
		t.Fatalf("PRAGMA integrity_check = %q; want ok", res)
	}
	rows, err := db.Query("PRAGMA foreign_key_check")
	if err != nil {
		t.Fatalf("PRAGMA foreign_key_check: %v", err)
	}
	defer rows.Close()
	if rows.Next() {
		t.Fatalf("PRAGMA foreign_key_check reports rows that break a foreign key")
	}
}

// walCommits counts the commit frames in the current WAL of the database at
// path: one per committed write transaction since the WAL last restarted.
func walCommits(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 32 {
		return 0
	}
	pageSize := int(binary.BigEndian.Uint32(b[8:12]))
	salt := b[16:24]
	n := 0
	for off := 32; off+24+pageSize <= len(b); off += 24 + pageSize {
		frame := b[off : off+24]
		if !bytes.Equal(frame[8:16], salt) {
			break // left over from an earlier WAL generation
		}
		if binary.BigEndian.Uint32(frame[4:8]) != 0 {
			n++
		}
	}
	return n
}

func TestEnsureParticipantConcurrentSamePrincipal(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, filepath.Join(t.TempDir(), "auth.db"))
	t.Cleanup(func() { s.Close() })
	concurrentFirstCalls(t, 50, s)
}

func TestStoreReopenKeepsEverything(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "auth.db")
	ctx := context.Background()
	s := openTestStore(t, path)
	subs := []string{"a", "b", "c", "d"}
	want := map[string]participant{}
	for _, sub := range subs {
		part, err := s.ensureParticipant(ctx, testPrincipal(sub), "Name "+sub, sub+"@example.com")
		if err != nil {
			t.Fatal(err)
		}
		want[sub] = part
	}
	if err := s.deleteParticipant(ctx, want["d"].ID); err != nil {
		t.Fatal(err)
	}
	delete(want, "d")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTestStore(t, path)
	t.Cleanup(func() { s.Close() })
	if got := queryInt(t, s.r, "PRAGMA user_version"); got != len(migrations) {
		t.Errorf("user_version after reopen = %d; want %d", got, len(migrations))
	}
	if g, err := s.generation(ctx); err != nil || g != 1 {
		t.Errorf("generation after one delete and a reopen = %d, %v; want 1", g, err)
	}
	for sub, w := range want {
		got, err := s.participantByPrincipal(ctx, testPrincipal(sub))
		if err != nil {
			t.Fatalf("participant %s after reopen: %v", sub, err)
		}
		if got != w {
			t.Errorf("participant %s after reopen = %+v; want %+v", sub, got, w)
		}
		// Same claims on a fresh process: the same participant, not a new one.
		again, err := s.ensureParticipant(ctx, testPrincipal(sub), w.DisplayName, w.Email)
		if err != nil || again.ID != w.ID || again.PersonalWorkspaceID != w.PersonalWorkspaceID {
			t.Errorf("ensureParticipant(%s) after reopen = %q %q, %v; want %q %q", sub, again.ID, again.PersonalWorkspaceID, err, w.ID, w.PersonalWorkspaceID)
		}
	}
	if _, err := s.participantByPrincipal(ctx, testPrincipal("d")); !errors.Is(err, errNotFound) {
		t.Errorf("deleted participant after reopen: err = %v; want errNotFound", err)
	}
	if got := queryInt(t, s.r, `SELECT count(*) FROM participants`); got != len(want) {
		t.Errorf("participants after reopen = %d; want %d", got, len(want))
	}
	if got := queryInt(t, s.r, `SELECT count(*) FROM workspaces`); got != len(want) {
		t.Errorf("workspaces after reopen = %d; want %d", got, len(want))
	}
}

func TestOpenStoreRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "auth.db")
	if err := openTestStore(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	future := len(migrations) + 1
	raw := openRaw(t, path)
	if _, err := raw.Exec(fmt.Sprintf("PRAGMA user_version = %d", future)); err != nil {
		t.Fatal(err)
	}
	s, err := openStore(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatalf("openStore on a database at schema version %d (binary knows %d) succeeded; want an error", future, len(migrations))
	}
	for _, want := range []string{path, fmt.Sprint(future), "newer than this binary"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("openStore error %q does not mention %q", err, want)
		}
	}
	if got := queryInt(t, raw, "PRAGMA user_version"); got != future {
		t.Errorf("user_version after the refused open = %d; want it left at %d", got, future)
	}
}

// Two processes starting at once on a database at an older schema version
// (the service and an admin command after an upgrade) must both come up,
// with each migration applied once.
func TestOpenStoreConcurrentMigration(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		path := filepath.Join(t.TempDir(), "auth.db")
		// An existing database at schema version 0. It is already in WAL
		// mode: two connections switching a brand-new file to WAL at the
		// same instant can get SQLITE_BUSY from SQLite itself.
		raw := openRaw(t, path)
		var mode string
		if err := raw.QueryRow("PRAGMA journal_mode = WAL").Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal_mode = %q, %v", mode, err)
		}
		const n = 4
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := openStore(context.Background(), path)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: concurrent openStore %d on a database at schema version 0: %v", round, i, err)
			}
		}
		if got := queryInt(t, raw, "PRAGMA user_version"); got != len(migrations) {
			t.Fatalf("round %d: user_version = %d; want %d", round, got, len(migrations))
		}
		if got := queryInt(t, raw, "SELECT value FROM meta WHERE key = 'generation'"); got != 0 {
			t.Fatalf("round %d: generation = %d; want 0", round, got)
		}
	}
}

func TestStorePragmasOnEveryConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "auth.db"))
	t.Cleanup(func() { s.Close() })

	type pooled struct {
		name      string
		conn      *sql.Conn
		queryOnly int
	}
	var conns []pooled
	// Held at once, so the pool has to hand out distinct connections.
	for i := range 4 {
		c, err := s.r.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, pooled{fmt.Sprintf("reader %d", i), c, 1})
	}
	w, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	conns = append(conns, pooled{"writer", w, 0})

	for _, c := range conns {
		var mode string
		if err := c.conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" {
			t.Errorf("%s: journal_mode = %q; want wal", c.name, mode)
		}
		for _, p := range []struct {
			pragma string
			want   int
		}{
			{"foreign_keys", 1},
			{"synchronous", 2}, // FULL
			{"busy_timeout", 5000},
			{"query_only", c.queryOnly},
		} {
			if got := queryInt(t, c.conn, "PRAGMA "+p.pragma); got != p.want {
				t.Errorf("%s: PRAGMA %s = %d; want %d", c.name, p.pragma, got, p.want)
			}
		}
	}
}

func TestEnsureParticipantWritesOnlyOnChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "auth.db"))
	t.Cleanup(func() { s.Close() })
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(t0.Unix())
	s.now = func() time.Time { return time.Unix(clock.Load(), 0) }

	p := testPrincipal("writes")
	first, err := s.ensureParticipant(ctx, p, "Ann", "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !first.CreatedAt.Equal(t0) || !first.UpdatedAt.Equal(t0) {
		t.Fatalf("created participant at %v / %v; want both %v", first.CreatedAt, first.UpdatedAt, t0)
	}
	clock.Add(3600)

	// Hold the only writer connection: a call that wants to write now waits
	// for it, and runs into the deadline instead of answering.
	w, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cached := range []bool{true, false} {
		if !cached {
			s.cache.clear() // as after a restart: the row must be read, not rewritten
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		got, err := s.ensureParticipant(cctx, p, "Ann", "ann@example.com")
		cancel()
		if err != nil {
			t.Fatalf("ensureParticipant with unchanged claims (cached %v) while the writer is busy: %v; want an answer without a write", cached, err)
		}
		if got != first {
			t.Errorf("ensureParticipant with unchanged claims (cached %v) = %+v; want %+v", cached, got, first)
		}
	}
	w.Close()
	if got := queryInt(t, s.r, `SELECT updated_at FROM participants WHERE id = ?`, first.ID); got != int(t0.Unix()) {
		t.Errorf("updated_at after unchanged calls = %d; want %d", got, t0.Unix())
	}

	for _, tc := range []struct{ name, email string }{
		{"Ann Smith", "ann@example.com"},   // name changes
		{"Ann Smith", "ann.s@example.com"}, // email changes
		{"Ann", ""},                        // both, email cleared
	} {
		clock.Add(60)
		now := time.Unix(clock.Load(), 0).UTC()
		got, err := s.ensureParticipant(ctx, p, tc.name, tc.email)
		if err != nil {
			t.Fatal(err)
		}
		if got.DisplayName != tc.name || got.Email != tc.email || !got.UpdatedAt.Equal(now) {
			t.Errorf("ensureParticipant(%q, %q) = %q %q updated %v; want the new claims updated at %v", tc.name, tc.email, got.DisplayName, got.Email, got.UpdatedAt, now)
		}
		if got.ID != first.ID || got.PersonalWorkspaceID != first.PersonalWorkspaceID || !got.CreatedAt.Equal(t0) {
			t.Errorf("ensureParticipant(%q, %q) changed ids or created_at: %+v; first %+v", tc.name, tc.email, got, first)
		}
		stored, err := s.participantByID(ctx, first.ID)
		if err != nil || stored != got {
			t.Errorf("stored row after update = %+v, %v; want %+v", stored, err, got)
		}
	}
	if got := queryInt(t, s.r, `SELECT count(*) FROM workspaces`); got != 1 {
		t.Errorf("workspaces after updates = %d; want 1", got)
	}
}

func TestEnsureParticipantManyPrincipals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "auth.db")
	s := openTestStore(t, path)
	const n, workers = 500, 32
	var next atomic.Int64
	var mu sync.Mutex
	got := map[string]participant{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				sub := fmt.Sprintf("many-%03d", i)
				part, err := s.ensureParticipant(ctx, testPrincipal(sub), "User "+sub, "")
				if err != nil {
					t.Errorf("ensureParticipant(%s): %v", sub, err)
					return
				}
				mu.Lock()
				got[sub] = part
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ids, spaces := map[string]bool{}, map[string]bool{}
	for sub, part := range got {
		if part.Subject != sub || ids[part.ID] || spaces[part.PersonalWorkspaceID] {
			t.Fatalf("participant for %s = %+v: wrong subject or an id seen before", sub, part)
		}
		ids[part.ID], spaces[part.PersonalWorkspaceID] = true, true
	}
	if len(ids) != n {
		t.Fatalf("%d distinct participants; want %d", len(ids), n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, path)
	t.Cleanup(func() { s.Close() })
	all, err := s.listParticipants(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("after reopen: %d participants; want %d", len(all), n)
	}
	for _, p := range all {
		if w := got[p.Subject]; w.ID != p.ID || w.PersonalWorkspaceID != p.PersonalWorkspaceID {
			t.Errorf("after reopen %s = %s %s; was %s %s", p.Subject, p.ID, p.PersonalWorkspaceID, w.ID, w.PersonalWorkspaceID)
		}
	}
	if got := queryInt(t, s.r, `SELECT count(*) FROM workspaces w JOIN participants p ON p.personal_workspace_id = w.id AND p.id = w.owner_participant_id`); got != n {
		t.Errorf("after reopen: %d participants with their workspace; want %d", got, n)
	}
}

// TestGroupCommit holds the writer inside one transaction while more
// requests queue, then counts the commits that land in the WAL: the queued
// requests must share transactions of up to maxBatch rows each.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "auth.db")
	s := openTestStore(t, path)
	t.Cleanup(func() { s.Close() })
	// Keep every frame in the WAL so that commits can be counted.
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0"); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	// The writer reads the clock inside its transaction: the first time, it
	// waits there until released.
	s.now = func() time.Time {
		once.Do(func() { close(entered); <-release })
		return time.Now()
	}
	before := walCommits(t, path)

	const n = 300
	var wg sync.WaitGroup
	var answered atomic.Int64
	ensure := func(i int) {
		defer wg.Done()
		if _, err := s.ensureParticipant(ctx, testPrincipal(fmt.Sprintf("gc-%03d", i)), "x", ""); err != nil {
			t.Errorf("ensureParticipant %d: %v", i, err)
		}
		answered.Add(1)
	}
	wg.Add(1)
	go ensure(0)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer never started a transaction")
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go ensure(i)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.queue) < n-1 {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("only %d of %d requests queued behind the busy writer", len(s.queue), n-1)
		}
		time.Sleep(time.Millisecond)
	}
	if a := answered.Load(); a != 0 {
		t.Errorf("%d callers answered while the writer's first transaction was still open", a)
	}
	close(release)
	wg.Wait()

	commits := walCommits(t, path) - before
	want := 1 + (n-1+maxBatch-1)/maxBatch
	if commits < 1 || commits > want {
		t.Errorf("%d participants queued behind one transaction took %d commits; want at most %d (batches of %d)", n, commits, want, maxBatch)
	}
	if got := queryInt(t, s.r, `SELECT count(*) FROM participants`); got != n {
		t.Errorf("participants = %d; want %d", got, n)
	}
}

// Close answers the requests already queued: nobody waits forever, and
// whoever was told their participant exists finds it after a restart.
func TestCloseAnswersQueuedRequests(t *testing.T) {
	t.Parallel()
	for round := range 10 {
		path := filepath.Join(t.TempDir(), "auth.db")
		s := openTestStore(t, path)
		const n = 64
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// No deadline: a lost request would hang here for good.
				part, err := s.ensureParticipant(context.Background(), testPrincipal(fmt.Sprint(i)), "x", "")
				if err == nil {
					ids[i] = part.ID
				}
			}()
		}
		time.Sleep(time.Duration(round%4) * time.Millisecond) // vary where Close lands
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: ensureParticipant callers still waiting 5s after Close returned", round)
		}
		s = openTestStore(t, path)
		for i, id := range ids {
			if id == "" {
				continue
			}
			part, err := s.participantByPrincipal(context.Background(), testPrincipal(fmt.Sprint(i)))
			if err != nil || part.ID != id {
				t.Errorf("round %d: participant %d answered %s before Close; after reopen %q, %v", round, i, id, part.ID, err)
			}
		}
		s.Close()
	}
}

func TestDeleteParticipant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "auth.db"))
	t.Cleanup(func() { s.Close() })
	gone, err := s.ensureParticipant(ctx, testPrincipal("gone"), "Gone", "")
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.ensureParticipant(ctx, testPrincipal("kept"), "Kept", "")
	if err != nil {
		t.Fatal(err)
	}
	g0, err := s.generation(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if err := s.deleteParticipant(ctx, gone.ID); err != nil {
		t.Fatalf("deleteParticipant: %v", err)
	}
	if _, err := s.participantByID(ctx, gone.ID); !errors.Is(err, errNotFound) {
		t.Errorf("participantByID after delete: err = %v; want errNotFound", err)
	}
	if got := queryInt(t, s.r, `SELECT count(*) FROM workspaces WHERE owner_participant_id = ? OR id = ?`, gone.ID, gone.PersonalWorkspaceID); got != 0 {
		t.Errorf("the deleted participant still has %d workspaces; want 0 (cascade)", got)
	}
	if got, err := s.participantByID(ctx, kept.ID); err != nil || got != kept {
		t.Errorf("the other participant after delete = %+v, %v; want %+v", got, err, kept)
	}
	if got := queryInt(t, s.r, `SELECT count(*) FROM workspaces WHERE owner_participant_id = ?`, kept.ID); got != 1 {
		t.Errorf("the other participant has %d workspaces; want 1", got)
	}
	if g, err := s.generation(ctx); err != nil || g != g0+1 {
		t.Errorf("generation after delete = %d, %v; want %d", g, err, g0+1)
	}

	for _, id := range []string{gone.ID, "no-such-id"} {
		if err := s.deleteParticipant(ctx, id); !errors.Is(err, errNotFound) {
			t.Errorf("deleteParticipant(%q) = %v; want errNotFound", id, err)
		}
	}
	if g, err := s.generation(ctx); err != nil || g != g0+1 {
		t.Errorf("generation after deleting nothing = %d, %v; want it unchanged at %d", g, err, g0+1)
	}

	// The same process registers the person again: a new participant.
	again, err := s.ensureParticipant(ctx, testPrincipal("gone"), "Gone", "")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == gone.ID || again.PersonalWorkspaceID == gone.PersonalWorkspaceID {
		t.Errorf("ensureParticipant after delete reused ids %s %s", again.ID, again.PersonalWorkspaceID)
	}
}

// A delete by another process on the same file (the admin command) reaches
// a running store's cache through meta.generation.
func TestDeleteFromAnotherStoreClearsCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "auth.db")
	svc := openTestStore(t, path)
	t.Cleanup(func() { svc.Close() })
	p := testPrincipal("deleted-elsewhere")
	old, err := svc.ensureParticipant(ctx, p, "Del", "del@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svc.cache.get(p); !ok {
		t.Fatal("participant not cached after ensureParticipant; the test would prove nothing")
	}

	admin := openTestStore(t, path)
	if err := admin.deleteParticipant(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(2500 * time.Millisecond)
	var cur participant
	for {
		cur, err = svc.ensureParticipant(ctx, p, "Del", "del@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if cur.ID != old.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2.5s after another process deleted %s the running store still answers it from its cache", old.ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cur.PersonalWorkspaceID == old.PersonalWorkspaceID {
		t.Errorf("new participant reuses the deleted workspace id %s", old.PersonalWorkspaceID)
	}
	stored, err := svc.participantByPrincipal(ctx, p)
	if err != nil || stored.ID != cur.ID {
		t.Errorf("stored participant = %q, %v; want the new %q", stored.ID, err, cur.ID)
	}
	if got := queryInt(t, svc.r, `SELECT count(*) FROM workspaces WHERE owner_participant_id = ?`, cur.ID); got != 1 {
		t.Errorf("new participant has %d workspaces; want 1", got)
	}
}

// TestBackupWhileWriting backs up under a steady write load and checks the
// copy opens, is intact and consistent, and holds what existed before.
func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, filepath.Join(dir, "auth.db"))
	t.Cleanup(func() { s.Close() })
	before := map[string]string{}
	for i := range 20 {
		part, err := s.ensureParticipant(ctx, testPrincipal(fmt.Sprintf("pre-%02d", i)), "Pre", "")
		if err != nil {
			t.Fatal(err)
		}
		before[part.Subject] = part.ID
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.ensureParticipant(ctx, testPrincipal(fmt.Sprintf("during-%d-%d", w, i)), "During", ""); err != nil {
					t.Errorf("ensureParticipant during backup: %v", err)
					return
				}
				written.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for written.Load() < 20 {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatal("no write load got going")
		}
		time.Sleep(time.Millisecond)
	}
	target := filepath.Join(dir, "backup.db")
	err := s.backup(ctx, target)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v", err)
	}

	b := openRaw(t, target, "mode=ro")
	integrityCheck(t, b)
	if got := queryInt(t, b, "PRAGMA user_version"); got != len(migrations) {
		t.Errorf("backup user_version = %d; want %d", got, len(migrations))
	}
	for sub, id := range before {
		var got string
		if err := b.QueryRow(`SELECT id FROM participants WHERE subject = ?`, sub).Scan(&got); err != nil || got != id {
			t.Errorf("backup: participant %s = %q, %v; want %q", sub, got, err, id)
		}
	}
	// A consistent copy: every participant has its workspace, none is half there.
	parts := queryInt(t, b, `SELECT count(*) FROM participants`)
	whole := queryInt(t, b, `SELECT count(*) FROM participants p JOIN workspaces w ON w.id = p.personal_workspace_id AND w.owner_participant_id = p.id`)
	if parts < len(before) || whole != parts || queryInt(t, b, `SELECT count(*) FROM workspaces`) != parts {
		t.Errorf("backup holds %d participants, %d with their workspace; want all of at least %d", parts, whole, len(before))
	}

	// The store refuses to write over an existing file.
	orig, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.backup(ctx, target); err == nil {
		t.Errorf("backup onto an existing file succeeded; want an error")
	}
	if now, _ := os.ReadFile(target); !bytes.Equal(now, orig) {
		t.Errorf("a refused backup changed the existing file")
	}
}

// mountTmpfs mounts a tmpfs of the given size on a new directory, or skips
// the test where that is not possible (not Linux, not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs a Linux tmpfs mount to fill a disk")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root and CAP_SYS_ADMIN): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for size := len(buf); size > 0; {
		_, err := f.Write(buf[:size])
		if errors.Is(err, syscall.ENOSPC) {
			size /= 2 // top up the last partial block too
			continue
		}
		if err != nil {
			t.Fatalf("filling the disk: %v", err)
		}
	}
	return path
}

func TestRegisterOnFullDisk(t *testing.T) {
	t.Parallel()
	dir := mountTmpfs(t, "16m")
	f := newFakeIDP(t)
	a := startTestApp(t, &config{Tenants: []tenantConfig{f.tenantConfig()}}, filepath.Join(dir, "auth.db"), true)
	register := func(sub string) (int, envelope) {
		w := a.register(f.accessToken(map[string]any{"sub": sub}))
		return w.Code, decode(t, w)
	}
	before := map[string]string{}
	for i := range 20 {
		sub := fmt.Sprintf("before-%02d", i)
		status, e := register(sub)
		if status != 200 {
			t.Fatalf("register %s before the disk filled = %d %+v", sub, status, e.Error)
		}
		before[sub] = e.Data["participant_id"].(string)
	}

	filler := fillDisk(t, dir)
	failed := ""
	for i := 0; i < 500 && failed == ""; i++ {
		sub := fmt.Sprintf("full-%03d", i)
		status, e := register(sub)
		if status == 200 {
			continue // the WAL still had room
		}
		failed = sub
		if status != 500 || e.Error == nil || e.Error.Code != "SW_INTERNAL" {
			t.Errorf("register on a full disk = %d %+v; want 500 SW_INTERNAL", status, e.Error)
		} else if msg := strings.ToLower(e.Error.Message); strings.Contains(msg, "full") || strings.Contains(msg, "disk") || strings.Contains(msg, "sqlite") || strings.Contains(msg, "(13)") {
			t.Errorf("register on a full disk: message %q carries the driver's text", e.Error.Message)
		}
	}
	if failed == "" {
		t.Fatal("500 registrations on a full disk all succeeded; the fault was not produced")
	}
	t.Logf("on the full disk, registration %s was the first to fail", failed)
	if _, err := a.store.participantByPrincipal(context.Background(), principal{"acme", f.issuer, failed}); !errors.Is(err, errNotFound) {
		t.Errorf("the registration that failed left a participant behind: %v", err)
	}
	// What was stored stays readable, and the service still answers.
	for sub, id := range before {
		if status, e := register(sub); status != 200 || e.Data["participant_id"] != id {
			t.Errorf("register %s on a full disk = %d %v; want 200 with the stored id %s", sub, status, e.Data["participant_id"], id)
		}
	}
	if w := a.do("GET", "/healthz", ""); w.Code != 200 {
		t.Errorf("GET /healthz on a full disk = %d; want 200 (the database still answers)", w.Code)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{failed, "after-space-freed"} {
		if status, e := register(sub); status != 200 {
			t.Errorf("register %s after space was freed = %d %+v; want 200", sub, status, e.Error)
		}
	}
	integrityCheck(t, a.store.r)
	for sub, id := range before {
		part, err := a.store.participantByPrincipal(context.Background(), principal{"acme", f.issuer, sub})
		if err != nil || part.ID != id {
			t.Errorf("participant %s after the disk was full = %q, %v; want %s", sub, part.ID, err, id)
		}
	}
}

// A database on a file system the process cannot write is refused at start,
// naming the file, rather than served until the first registration fails.
func TestOpenStoreReadOnlyFilesystem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.db")
	s := openTestStore(t, path)
	part, err := s.ensureParticipant(context.Background(), testPrincipal("ro"), "RO", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	roDir, restore := readOnlyView(t, dir)
	roPath := filepath.Join(roDir, "auth.db")
	for _, p := range []string{roPath, filepath.Join(roDir, "new.db")} {
		s, err := openStore(context.Background(), p)
		if err == nil {
			s.Close()
			t.Errorf("openStore(%s) on a read-only file system succeeded; want an error", p)
			continue
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("openStore(%s) error %q does not name the file", p, err)
		}
	}
	// The refused open left the data alone.
	restore()
	s = openTestStore(t, path)
	defer s.Close()
	if got, err := s.participantByPrincipal(context.Background(), testPrincipal("ro")); err != nil || got.ID != part.ID {
		t.Errorf("participant after the refused open = %q, %v; want %s", got.ID, err, part.ID)
	}
}

// readOnlyView returns a path to dir that this process cannot write through
// until restore is called: dir itself made read-only, or, where permissions
// do not bind (root), a read-only bind mount of it. It skips the test when
// neither works.
func readOnlyView(t *testing.T, dir string) (ro string, restore func()) {
	t.Helper()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	restore = func() { os.Chmod(dir, 0o755) }
	t.Cleanup(restore)
	if !writable(dir) {
		return dir, restore
	}
	restore()
	if runtime.GOOS != "linux" {
		t.Skip("permissions do not stop this user writing, and read-only bind mounts need Linux")
	}
	ro = t.TempDir()
	if out, err := exec.Command("mount", "--bind", dir, ro).CombinedOutput(); err != nil {
		t.Skipf("permissions do not stop this user writing (root?), and a bind mount failed: %v: %s", err, bytes.TrimSpace(out))
	}
	var once sync.Once
	restore = func() { once.Do(func() { exec.Command("umount", ro).Run() }) }
	t.Cleanup(restore)
	if out, err := exec.Command("mount", "-o", "remount,ro,bind", ro).CombinedOutput(); err != nil {
		t.Skipf("cannot make a read-only bind mount: %v: %s", err, bytes.TrimSpace(out))
	}
	if writable(ro) {
		t.Skip("the read-only bind mount is still writable")
	}
	return ro, restore
}

func writable(dir string) bool {
	f, err := os.CreateTemp(dir, "probe")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}
