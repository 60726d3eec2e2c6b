package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite"
)

// errNotFound is returned by lookups that find no row.
var errNotFound = errors.New("not found")

// principal identifies a person: the tenant, the token's issuer and its sub.
type principal struct {
	TenantID, Issuer, Subject string
}

// participant is a row of the participants table.
type participant struct {
	ID                  string
	TenantID            string
	Issuer              string
	Subject             string
	DisplayName         string
	Email               string
	PersonalWorkspaceID string
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// store is the database: SQLite by default, PostgreSQL (built with -tags
// postgres) for several replicas; fl holds what differs. With SQLite all
// writes go through one connection (w), fed by a single goroutine that
// commits queued requests together; reads use a pool (r). On this machine a
// single writer has a worst-case wait of a few milliseconds, where a pool of
// writers contending on busy_timeout starves some of them for over a second.
// With PostgreSQL w and r are one pool and each caller writes in its own
// transaction.
type store struct {
	w, r *sql.DB
	fl   *flavor
	now  func() time.Time

	queue chan *ensureRequest
	stop  chan struct{}
	wg    sync.WaitGroup
	// mu guards closed; senders to queue hold it for reading, so that once
	// Close has set closed nothing more is queued behind the writer's last
	// drain.
	mu     sync.RWMutex
	closed bool

	cache *participantCache
	// loginRows counts the password-failure counters this process created
	// (store_loginfail.go), to check their bound now and then.
	loginRows atomic.Int64
	// handoffPuts counts the handoffs this process stored
	// (store_handoffs.go), to check their bound now and then.
	handoffPuts atomic.Int64
	// keys seals and opens with the keys in signin_keys: the browser
	// sign-in's cookies and what the store seals (store_sealing.go).
	keys *signInSealer
	// down is set while the database does not answer the watcher's polls
	// (for /readyz).
	down atomic.Bool
	// onCreate, when set, is called once per participant created
	// (onParticipantCreated).
	onCreate func()
}

// storeOption configures a store as openStore makes it.
type storeOption func(*store)

// onParticipantCreated has the store call f once per participant it creates,
// after the transaction that created it commits.
func onParticipantCreated(f func()) storeOption {
	return func(s *store) { s.onCreate = f }
}

// ensureRequest is one queued ensureParticipant call.
type ensureRequest struct {
	p           principal
	name, email string
	reply       chan ensureResult
}

type ensureResult struct {
	part    participant
	created bool
	err     error
}

const (
	maxBatch = 128
	// watchInterval is how often the store polls the database for what
	// other processes changed (deleted participants) and whether it
	// answers.
	watchInterval = 500 * time.Millisecond
)

// sqliteDSN builds a DSN whose pragmas apply to every pooled connection.
func sqliteDSN(path string, extra ...string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	params := []string{
		"_pragma=busy_timeout(5000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(FULL)",
	}
	return "file:" + esc + "?" + strings.Join(append(params, extra...), "&")
}

// openStore opens (creating if needed) and migrates the database, a SQLite
// file path or a PostgreSQL URL, applies opts and starts the writer. Close
// releases it.
func openStore(ctx context.Context, database string, opts ...storeOption) (*store, error) {
	if isPostgresURL(database) {
		return openPostgres(ctx, database, opts...)
	}
	return openSQLite(ctx, database, opts...)
}

// openSQLite opens the SQLite database at path.
func openSQLite(ctx context.Context, path string, opts ...storeOption) (*store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file::memory:") {
		return nil, errors.New("database: a file path is required (an in-memory database is not shared between connections)")
	}
	created, err := createDatabaseFile(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	w, err := sql.Open("sqlite", sqliteDSN(path, "_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if created {
		// Migrating opened the WAL: both sidecars exist by now.
		if err := restrictSidecars(path); err != nil {
			w.Close()
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
	}
	r, err := sql.Open("sqlite", sqliteDSN(path, "_pragma=query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	s, err := startStore(ctx, w, r, sqliteFlavor(), opts)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return s, nil
}

// startStore makes the store on migrated databases and starts its
// goroutines; on error it closes w and r.
func startStore(ctx context.Context, w, r *sql.DB, fl *flavor, opts []storeOption) (*store, error) {
	s := &store{
		w:     w,
		r:     r,
		fl:    fl,
		now:   time.Now,
		queue: make(chan *ensureRequest, 1024),
		stop:  make(chan struct{}),
		cache: newParticipantCache(participantCacheBytes),
	}
	s.keys = newSignInSealer(s)
	for _, o := range opts {
		o(s)
	}
	gen, err := s.generation(ctx)
	if err != nil {
		s.closeDBs()
		return nil, err
	}
	s.wg.Add(1)
	go s.watchGeneration(gen)
	if fl.batchWriter {
		s.wg.Add(1)
		go s.writer()
	}
	return s, nil
}

// Close stops the writer after the requests already queued and closes the
// database cleanly (checkpointing the WAL).
func (s *store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	return s.closeDBs()
}

func (s *store) closeDBs() error {
	if s.r == s.w {
		return s.w.Close()
	}
	return errors.Join(s.r.Close(), s.w.Close())
}

// ping checks that the database answers, for /healthz.
func (s *store) ping(ctx context.Context) error {
	var one int
	return s.fl.classify(s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one))
}

// reachable reports whether the database answered the watcher's last poll.
func (s *store) reachable() bool { return s == nil || !s.down.Load() }

// ensureParticipant returns the participant for p, creating it and its
// personal workspace on the first call and updating the display name and
// email when they differ from the stored ones. Any number of concurrent
// callers for one principal get the same participant. When nothing changed
// no write is made. The returned participant is durable: its transaction
// has been committed with synchronous=FULL.
//
// An empty name means the token named nobody: a new participant is named by
// its subject, and a stored one keeps its names.
func (s *store) ensureParticipant(ctx context.Context, p principal, name, email string) (participant, error) {
	keep := func(part participant) bool { return name == "" || part.DisplayName == name && part.Email == email }
	if part, ok := s.cache.get(p); ok && keep(part) {
		return part, nil
	}
	// A delete elsewhere may land between reading a row and caching it; the
	// epoch taken before the read keeps such a row out of the cache.
	epoch := s.cache.epoch()
	part, err := s.participantByPrincipal(ctx, p)
	switch {
	case err == nil && keep(part):
		s.cache.put(part, epoch)
		return part, nil
	case err != nil && !errors.Is(err, errNotFound):
		return participant{}, err
	}
	req := &ensureRequest{p: p, name: name, email: email, reply: make(chan ensureResult, 1)}
	if !s.fl.batchWriter {
		// Each caller writes in its own transaction; the database serialises
		// callers for one principal, on any replica, on its unique index.
		res, err := s.upsertAll(ctx, []*ensureRequest{req})
		if err != nil {
			return participant{}, s.fl.classify(err)
		}
		s.cache.put(res[0].part, epoch)
		return res[0].part, nil
	}
	if err := s.enqueue(ctx, req); err != nil {
		return participant{}, err
	}
	select {
	case res := <-req.reply:
		if res.err == nil {
			s.cache.put(res.part, epoch)
		}
		return res.part, res.err
	case <-ctx.Done():
		return participant{}, ctx.Err()
	}
}

// enqueue hands req to the writer, which will answer it even if the store
// is closed meanwhile.
func (s *store) enqueue(ctx context.Context, req *ensureRequest) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errors.New("store is closed")
	}
	select {
	case s.queue <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer owns the write connection. It takes the queued requests that are
// waiting together and commits them in one transaction, so that one fsync
// serves them all; nobody is answered before that commit.
func (s *store) writer() {
	defer s.wg.Done()
	batch := make([]*ensureRequest, 0, maxBatch)
	for {
		select {
		case <-s.stop:
			// Close lets nothing more in: answer what is queued, then stop.
			for len(s.queue) > 0 {
				s.commitBatch(s.takeBatch(batch[:0]))
			}
			return
		case req := <-s.queue:
			s.commitBatch(s.takeBatch(append(batch[:0], req)))
		}
	}
}

// takeBatch adds to batch the requests already waiting, up to maxBatch.
func (s *store) takeBatch(batch []*ensureRequest) []*ensureRequest {
	for len(batch) < maxBatch {
		select {
		case req := <-s.queue:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// commitBatch upserts a batch in one transaction. If the transaction fails,
// each request is retried alone so that one bad row cannot fail the others.
func (s *store) commitBatch(batch []*ensureRequest) {
	// The writer never waits for anything but SQLite while it holds the
	// transaction: no IdP call, no other store method.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results, err := s.upsertAll(ctx, batch)
	if err != nil && len(batch) > 1 {
		for _, req := range batch {
			res, err := s.upsertAll(ctx, []*ensureRequest{req})
			if err != nil {
				req.reply <- ensureResult{err: err}
				continue
			}
			req.reply <- res[0]
		}
		return
	}
	for i, req := range batch {
		if err != nil {
			req.reply <- ensureResult{err: err}
			continue
		}
		req.reply <- results[i]
	}
}

// upsertAll upserts batch in one transaction and commits it.
func (s *store) upsertAll(ctx context.Context, batch []*ensureRequest) ([]ensureResult, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	now := s.now().Unix()
	out := make([]ensureResult, len(batch))
	for i, req := range batch {
		part, created, err := s.upsertParticipant(ctx, tx, req, now)
		if err != nil {
			return nil, err
		}
		out[i] = ensureResult{part: part, created: created}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	for _, r := range out {
		if r.created && s.onCreate != nil {
			s.onCreate()
		}
	}
	return out, nil
}

// upsertParticipant inserts req's participant, or updates its name and
// email when they changed, then reads the row back. Concurrent callers for
// one principal (in this process or another) meet on the unique index: one
// inserts, the others wait for its commit and take the update path, which
// changes nothing; each then reads the one row.
func (s *store) upsertParticipant(ctx context.Context, tx *sql.Tx, req *ensureRequest, now int64) (participant, bool, error) {
	id, wsID := newUUID(), "ws-"+newUUID()
	// An empty name is a token that named nobody: it names a new
	// participant by its subject and leaves a stored one's names alone.
	name := req.name
	if name == "" {
		name = req.p.Subject
	}
	_, err := tx.ExecContext(ctx, s.fl.q(`
		INSERT INTO participants (id, tenant_id, issuer, subject, display_name, email, personal_workspace_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (tenant_id, issuer, subject) DO UPDATE
		SET display_name = excluded.display_name, email = excluded.email, updated_at = excluded.updated_at
		WHERE $10 AND (participants.display_name IS DISTINCT FROM excluded.display_name OR participants.email IS DISTINCT FROM excluded.email)`),
		id, req.p.TenantID, req.p.Issuer, req.p.Subject, name, req.email, wsID, now, now, req.name != "")
	if err != nil {
		return participant{}, false, fmt.Errorf("upsert participant: %w", err)
	}
	part, err := scanParticipant(tx.QueryRowContext(ctx, s.fl.q(selectParticipant+` WHERE tenant_id = $1 AND issuer = $2 AND subject = $3`),
		req.p.TenantID, req.p.Issuer, req.p.Subject))
	if err != nil {
		return participant{}, false, fmt.Errorf("read participant back: %w", err)
	}
	created := part.ID == id
	if created {
		_, err = tx.ExecContext(ctx, s.fl.q(`
			INSERT INTO workspaces (id, tenant_id, owner_participant_id, kind, name, created_at)
			VALUES ($1, $2, $3, 'personal', 'Personal workspace', $4)`),
			wsID, req.p.TenantID, id, now)
		if err != nil {
			return participant{}, false, fmt.Errorf("create personal workspace: %w", err)
		}
	}
	return part, created, nil
}

const selectParticipant = `SELECT id, tenant_id, issuer, subject, display_name, email, personal_workspace_id, created_at, updated_at FROM participants`

type rowScanner interface{ Scan(...any) error }

func scanParticipant(row rowScanner) (participant, error) {
	var p participant
	var created, updated int64
	err := row.Scan(&p.ID, &p.TenantID, &p.Issuer, &p.Subject, &p.DisplayName, &p.Email, &p.PersonalWorkspaceID, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return participant{}, errNotFound
	}
	if err != nil {
		return participant{}, err
	}
	p.CreatedAt, p.UpdatedAt = time.Unix(created, 0).UTC(), time.Unix(updated, 0).UTC()
	return p, nil
}

// participantByPrincipal returns the participant for p, or errNotFound.
func (s *store) participantByPrincipal(ctx context.Context, p principal) (participant, error) {
	part, err := scanParticipant(s.r.QueryRowContext(ctx, s.fl.q(selectParticipant+` WHERE tenant_id = $1 AND issuer = $2 AND subject = $3`),
		p.TenantID, p.Issuer, p.Subject))
	if err != nil && !errors.Is(err, errNotFound) {
		return participant{}, s.fl.classify(fmt.Errorf("read participant: %w", err))
	}
	return part, err
}

// participantByID returns one participant, or errNotFound.
func (s *store) participantByID(ctx context.Context, id string) (participant, error) {
	part, err := scanParticipant(s.r.QueryRowContext(ctx, s.fl.q(selectParticipant+` WHERE id = $1`), id))
	if err != nil && !errors.Is(err, errNotFound) {
		return participant{}, s.fl.classify(fmt.Errorf("read participant %s: %w", id, err))
	}
	return part, err
}

// listParticipants returns the participants of one tenant (all tenants when
// tenantID is empty), oldest first.
func (s *store) listParticipants(ctx context.Context, tenantID string) ([]participant, error) {
	q := selectParticipant + ` ORDER BY created_at, id`
	args := []any{}
	if tenantID != "" {
		q = s.fl.q(selectParticipant + ` WHERE tenant_id = $1 ORDER BY created_at, id`)
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	defer rows.Close()
	var out []participant
	for rows.Next() {
		p, err := scanParticipant(rows)
		if err != nil {
			return nil, fmt.Errorf("list participants: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	return out, nil
}

// deleteParticipant removes a participant and, by the foreign key's cascade,
// its personal workspace. It bumps the generation so that running services
// forget what they cached. errNotFound when there is no such participant.
func (s *store) deleteParticipant(ctx context.Context, id string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete participant: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.fl.q(`DELETE FROM participants WHERE id = $1`), id)
	if err != nil {
		return fmt.Errorf("delete participant: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotFound
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'generation'`); err != nil {
		return fmt.Errorf("delete participant: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete participant: %w", err)
	}
	s.cache.clear()
	return nil
}

// backup writes a consistent copy of the database to path, mode 0600,
// while others keep reading and writing. The file must not exist.
func (s *store) backup(ctx context.Context, path string) error {
	if s.fl.shared {
		return errors.New("backup: this command copies a SQLite database; back up PostgreSQL with pg_dump")
	}
	// VACUUM INTO fills an empty file as it finds it, so the copy is
	// created here with its mode; O_EXCL also keeps an existing file safe.
	if err := createPrivateFile(path); err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	if _, err := s.w.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	return nil
}

func (s *store) generation(ctx context.Context) (int64, error) {
	var g int64
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'generation'`).Scan(&g)
	if err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return g, nil
}

// watchGeneration polls meta.generation and clears the participant cache
// when another process (the admin command, another replica) deleted rows.
// A failed poll marks the database down until one succeeds.
func (s *store) watchGeneration(last int64) {
	defer s.wg.Done()
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			g, err := s.generation(ctx)
			cancel()
			s.down.Store(err != nil)
			if err == nil && g != last {
				s.cache.clear()
				last = g
			}
		}
	}
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
