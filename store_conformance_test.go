package main

// The store's conformance suite, after Dex's storage/conformance: one set of
// tests that every backend runs. SQLite always; PostgreSQL when built with
// -tags postgres and SCAIWAVE_TEST_POSTGRES names a server
// (scripts/postgres/run.sh starts one). Two stores opened on one database
// stand for two replicas.

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// storeBackend makes fresh, empty databases of one kind.
type storeBackend struct {
	name string
	// newDB returns the database setting (a path or a URL) of a new empty
	// database, dropped when the test ends.
	newDB func(t testing.TB) string
	// setVersion sets the schema version recorded in the database at db.
	setVersion func(t testing.TB, db string, v int)
}

func sqliteBackend() storeBackend {
	return storeBackend{
		name:  "sqlite",
		newDB: func(t testing.TB) string { return filepath.Join(t.TempDir(), "auth.db") },
		setVersion: func(t testing.TB, db string, v int) {
			raw := openRaw(t, db)
			if _, err := raw.Exec(`PRAGMA user_version = ` + strconv.Itoa(v)); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// forEachBackend runs fn as a subtest per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, b storeBackend)) {
	for _, b := range append([]storeBackend{sqliteBackend()}, postgresBackends(t)...) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// openBackendStore opens a store on db and closes it when the test ends.
func openBackendStore(t testing.TB, db string) *store {
	t.Helper()
	s, err := openStore(context.Background(), db)
	if err != nil {
		t.Fatalf("openStore(%s): %v", databaseForLog(db), err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// count runs a count query written in PostgreSQL's dialect.
func count(t *testing.T, s *store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(context.Background(), s.fl.q(q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// concurrentFirstCalls makes n concurrent first calls for one person,
// spread over stores (one database), and checks that they made one
// participant and one personal workspace, and that every caller got it.
func concurrentFirstCalls(t *testing.T, n int, stores ...*store) {
	t.Helper()
	p := testPrincipal("same")
	parts := make([]participant, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			part, err := stores[i%len(stores)].ensureParticipant(context.Background(), p, "Same Person", "same@example.com")
			if err != nil {
				t.Errorf("ensureParticipant %d: %v", i, err)
			}
			parts[i] = part
		}()
	}
	close(start)
	wg.Wait()
	for i, part := range parts {
		if part.ID == "" || part.ID != parts[0].ID || part.PersonalWorkspaceID != parts[0].PersonalWorkspaceID {
			t.Fatalf("caller %d got participant %q workspace %q; caller 0 got %q %q", i, part.ID, part.PersonalWorkspaceID, parts[0].ID, parts[0].PersonalWorkspaceID)
		}
	}
	if got := count(t, stores[0], `SELECT count(*) FROM participants`); got != 1 {
		t.Errorf("%d concurrent first calls on %d stores made %d participants; want 1", n, len(stores), got)
	}
	if got := count(t, stores[0], `SELECT count(*) FROM workspaces WHERE owner_participant_id = $1 AND id = $2`, parts[0].ID, parts[0].PersonalWorkspaceID); got != 1 {
		t.Errorf("personal workspace rows for the participant = %d; want 1", got)
	}
}

// Any number of concurrent first calls for one person, spread over two
// stores on one database (two replicas), make one participant and one
// workspace, and every caller gets it.
func TestConformanceConcurrentFirstCalls(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		db := b.newDB(t)
		concurrentFirstCalls(t, 200, openBackendStore(t, db), openBackendStore(t, db))
	})
}

// A changed name is written once and read back by the other store; an
// unchanged one writes nothing.
func TestConformanceUpdateOnChange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		db := b.newDB(t)
		a, other := openBackendStore(t, db), openBackendStore(t, db)
		p := testPrincipal("renamed")
		first, err := a.ensureParticipant(ctx, p, "Old", "old@example.com")
		if err != nil {
			t.Fatal(err)
		}
		again, err := other.ensureParticipant(ctx, p, "Old", "old@example.com")
		if err != nil || again != first {
			t.Fatalf("the other store = %+v, %v; want %+v", again, err, first)
		}
		renamed, err := other.ensureParticipant(ctx, p, "New", "new@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if renamed.ID != first.ID || renamed.DisplayName != "New" || renamed.Email != "new@example.com" {
			t.Errorf("after a rename = %+v; want id %s with the new name and email", renamed, first.ID)
		}
		got, err := a.participantByID(ctx, first.ID)
		if err != nil || got.DisplayName != "New" {
			t.Errorf("first store reads %+v, %v; want the new name", got, err)
		}
		list, err := a.listParticipants(ctx, p.TenantID)
		if err != nil || len(list) != 1 || list[0].ID != first.ID {
			t.Errorf("listParticipants = %+v, %v; want the one participant", list, err)
		}
	})
}

// A delete on one store reaches the other's participant cache through
// meta.generation, within a few polls.
func TestConformanceDeleteReachesOtherStore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		db := b.newDB(t)
		svc, admin := openBackendStore(t, db), openBackendStore(t, db)
		p := testPrincipal("deleted-elsewhere")
		old, err := svc.ensureParticipant(ctx, p, "Del", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := admin.deleteParticipant(ctx, old.ID); err != nil {
			t.Fatal(err)
		}
		if err := admin.deleteParticipant(ctx, old.ID); !errors.Is(err, errNotFound) {
			t.Errorf("second delete = %v; want errNotFound", err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			cur, err := svc.ensureParticipant(ctx, p, "Del", "")
			if err != nil {
				t.Fatal(err)
			}
			if cur.ID != old.ID {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("3 s after a delete on another store, the first still answers %s from its cache", old.ID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// Revocations: a replayed logout jti is refused across stores, a later
// logout widens a row, the bound on jtis holds, and a store reads what
// another added through revocationsSince, in order, without missing any.
func TestConformanceRevocations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		db := b.newDB(t)
		a, other := openBackendStore(t, db), openBackendStore(t, db)
		const now = 1_000_000
		_, seq0, err := other.liveRevocations(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		sub := revocation{TenantID: "acme", Kind: revokeSub, Value: "alice", IssuedBefore: now, ExpiresAt: now + 100}
		if err := a.addRevocations(ctx, "acme", &logoutJTI{"j1", now + 60}, 2, now, []revocation{sub}); err != nil {
			t.Fatal(err)
		}
		if err := other.addRevocations(ctx, "acme", &logoutJTI{"j1", now + 60}, 2, now, nil); !errors.Is(err, errReplayed) {
			t.Errorf("the same jti on the other store = %v; want errReplayed", err)
		}
		wider := sub
		wider.IssuedBefore, wider.ExpiresAt = now+5, now+200
		if err := other.addRevocations(ctx, "acme", &logoutJTI{"j2", now + 60}, 2, now, []revocation{wider}); err != nil {
			t.Fatal(err)
		}
		if err := other.addRevocations(ctx, "acme", &logoutJTI{"j3", now + 60}, 2, now, nil); !errors.Is(err, errTooManyLogoutTokens) {
			t.Errorf("a third live jti with a bound of 2 = %v; want errTooManyLogoutTokens", err)
		}
		revs, seq1, err := other.revocationsSince(ctx, seq0)
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) != 1 || revs[0] != wider || seq1 <= seq0 {
			t.Errorf("revocationsSince(%d) = %+v, %d; want the widened row and a later number", seq0, revs, seq1)
		}
		if revs, seq2, err := a.revocationsSince(ctx, seq1); err != nil || len(revs) != 0 || seq2 != seq1 {
			t.Errorf("revocationsSince(%d) = %+v, %d, %v; want nothing new", seq1, revs, seq2, err)
		}
		if n, err := a.pruneRevocations(ctx, now+1000); err != nil || n != 3 {
			t.Errorf("pruneRevocations = %d, %v; want 3 rows (1 revocation, 2 jtis)", n, err)
		}
	})
}

// Concurrent writers of revocations on two stores: every one is seen by a
// reader polling revocationsSince, none missed, even though they commit in
// an order of their own.
func TestConformanceRevocationsSinceMissesNone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		db := b.newDB(t)
		w1, w2, reader := openBackendStore(t, db), openBackendStore(t, db), openBackendStore(t, db)
		_, seq, err := reader.liveRevocations(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		const n = 60
		seen := map[string]bool{}
		done := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := []*store{w1, w2}[i%2]
				r := revocation{Kind: revokeSID, Value: "sid-" + strconv.Itoa(i), IssuedBefore: 1, ExpiresAt: time.Now().Unix() + 600}
				if err := w.addRevocations(ctx, "acme", nil, 10, 0, []revocation{r}); err != nil {
					t.Error(err)
				}
			}()
		}
		go func() { wg.Wait(); close(done) }()
		poll := func() {
			revs, next, err := reader.revocationsSince(ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range revs {
				seen[r.Value] = true
			}
			seq = next
		}
		for running := true; running; {
			select {
			case <-done:
				running = false
			default:
				poll()
			}
		}
		poll()
		if len(seen) != n {
			t.Errorf("a reader polling while %d revocations were added saw %d", n, len(seen))
		}
	})
}

// A binary older than the schema refuses to start; replicas starting
// together on an empty database migrate it once.
func TestConformanceSchemaVersions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		db := b.newDB(t)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := openStore(context.Background(), db)
				if err == nil {
					s.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("store %d of 4 opening an empty database together: %v", i, err)
			}
		}
		b.setVersion(t, db, len(migrations)+1)
		s, err := openStore(context.Background(), db)
		if err == nil {
			s.Close()
			t.Fatalf("openStore on schema version %d (binary knows %d) succeeded; want a refusal", len(migrations)+1, len(migrations))
		}
	})
}

// The sign-in keys: one store's key is the other's, newest first, and a
// rotation deletes the keys made before keepFrom.
func TestConformanceSignInKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		db := b.newDB(t)
		a, other := openBackendStore(t, db), openBackendStore(t, db)
		k1, k2 := make([]byte, 32), make([]byte, 32)
		k1[0], k2[0] = 1, 2
		if err := a.addSignInKey(ctx, k1, 100, 100); err != nil {
			t.Fatal(err)
		}
		if err := other.addSignInKey(ctx, k2, 200, 100); err != nil {
			t.Fatal(err)
		}
		keys, err := a.signInKeys(ctx)
		if err != nil || len(keys) != 2 || keys[0].Key[0] != 2 || keys[1].Key[0] != 1 || keys[0].ID == keys[1].ID {
			t.Fatalf("signInKeys = %+v, %v; want the two keys, newest first, with ids of their own", keys, err)
		}
		if err := a.addSignInKey(ctx, k1, 300, 200); err != nil {
			t.Fatal(err)
		}
		if keys, err := other.signInKeys(ctx); err != nil || len(keys) != 2 || keys[1].CreatedAt != 200 {
			t.Errorf("after a rotation keeping from 200: %+v, %v; want the keys of 300 and 200 only", keys, err)
		}
	})
}

// The record of relayed tokens: what one store adds the other reads, newest
// max in the order relayed; a token relayed again keeps its first row with
// the later expiry; a session ended, an eviction and an expiry reach it.
func TestConformanceRelayedTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		db := b.newDB(t)
		a, other := openBackendStore(t, db), openBackendStore(t, db)
		const now = 1_000_000
		tok := func(i byte, c tokenClass, session uint64, exp int64) relayedToken {
			return relayedToken{key: [32]byte{i}, relayedEntry: relayedEntry{class: c, session: session, expires: exp}}
		}
		big := uint64(1) << 63 // session ids are random uint64s
		if err := a.addRelayed(ctx, "acme", []relayedToken{tok(1, classAccess, big+1, now+10), tok(2, classRefresh, big+1, now+100), tok(3, classID, 7, now+50)}); err != nil {
			t.Fatal(err)
		}
		if err := other.addRelayed(ctx, "acme", []relayedToken{tok(1, classAccess, big+1, now+60), tok(4, classID, 8, now+5)}); err != nil {
			t.Fatal(err)
		}
		if err := other.addRelayed(ctx, "other-tenant", []relayedToken{tok(5, classID, 9, now+5)}); err != nil {
			t.Fatal(err)
		}
		if err := other.endRelayedSessions(ctx, "acme", []uint64{big + 1}); err != nil {
			t.Fatal(err)
		}
		got, err := a.liveRelayed(ctx, "acme", now, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := []relayedToken{tok(2, classRefresh, big+1, now+100), tok(3, classID, 7, now+50), tok(4, classID, 8, now+5)}
		want[0].ended = true
		if len(got) != len(want) {
			t.Fatalf("liveRelayed(max 3) = %+v; want %+v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("liveRelayed[%d] = %+v; want %+v", i, got[i], want[i])
			}
		}
		all, err := a.liveRelayed(ctx, "acme", now, 10)
		if err != nil || len(all) != 4 || all[0].key[0] != 1 || all[0].expires != now+60 || !all[0].ended {
			t.Fatalf("liveRelayed(max 10) = %+v, %v; want token 1 first, with the later expiry, ended", all, err)
		}
		if err := a.deleteRelayed(ctx, "acme", [][32]byte{{3}, {4}}); err != nil {
			t.Fatal(err)
		}
		if err := a.pruneRelayed(ctx, now+60); err != nil {
			t.Fatal(err)
		}
		if left, err := other.liveRelayed(ctx, "acme", now, 10); err != nil || len(left) != 1 || left[0].key[0] != 2 {
			t.Errorf("after deleting 3 and 4 and pruning at +60: %+v, %v; want token 2 only", left, err)
		}
	})
}

// Changes to the record of relayed tokens on two stores, made concurrently:
// a reader polling relayedSince sees every one, none missed, sessions ended
// included.
func TestConformanceRelayedSinceMissesNone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		db := b.newDB(t)
		w1, w2, reader := openBackendStore(t, db), openBackendStore(t, db), openBackendStore(t, db)
		seq, err := reader.relayedSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const n = 60
		exp := time.Now().Unix() + 600
		seen, ended := map[byte]bool{}, map[byte]bool{}
		done := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := []*store{w1, w2}[i%2]
				tok := relayedToken{key: [32]byte{byte(i)}, relayedEntry: relayedEntry{class: classID, session: uint64(i + 1), expires: exp}}
				if err := w.addRelayed(ctx, "acme", []relayedToken{tok}); err != nil {
					t.Error(err)
				}
				if i%3 == 0 {
					if err := w.endRelayedSessions(ctx, "acme", []uint64{uint64(i + 1)}); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		go func() { wg.Wait(); close(done) }()
		poll := func() {
			byTenant, next, err := reader.relayedSince(ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range byTenant["acme"] {
				seen[tok.key[0]] = true
				if tok.ended {
					ended[tok.key[0]] = true
				}
			}
			seq = next
		}
		for running := true; running; {
			select {
			case <-done:
				running = false
			default:
				poll()
			}
		}
		poll()
		if len(seen) != n || len(ended) != n/3 {
			t.Errorf("a reader polling while %d tokens were recorded and %d sessions ended saw %d and %d", n, n/3, len(seen), len(ended))
		}
	})
}

// The shared DPoP replay cache: a proof's key remembered by one store is a
// replay at the other until it expires, then taken over; pruning drops the
// expired.
func TestConformanceDPoPProofs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		db := b.newDB(t)
		a, other := openBackendStore(t, db), openBackendStore(t, db)
		now := time.Now()
		until := now.Add(time.Minute)
		key := uint64(1) << 63 // keys are any 64 bits
		for i, tc := range []struct {
			s      *store
			tenant string
			at     time.Time
			want   bool
		}{
			{a, "acme", now, true},
			{other, "acme", now, false},                      // a replay at another replica
			{other, "other-tenant", now, true},               // another tenant's proof
			{a, "acme", until.Add(-time.Millisecond), false}, // still in its window
			{other, "acme", until, true},                     // expired: taken over
		} {
			got, err := tc.s.rememberProof(ctx, tc.tenant, key, tc.at.Add(time.Minute), tc.at)
			if err != nil || got != tc.want {
				t.Errorf("step %d: rememberProof = %v, %v; want %v", i, got, err, tc.want)
			}
		}
		if err := a.pruneShortLived(ctx, now.Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if n := count(t, a, `SELECT count(*) FROM dpop_proofs`); a.fl.shared && n != 0 {
			t.Errorf("%d proofs left after all expired and a prune; want 0", n)
		}
	})
}
