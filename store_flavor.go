package main

import (
	"errors"
	"regexp"
	"strings"
	"sync"
)

// A flavor is what differs between the two databases the store runs on.
// Queries are written once, in PostgreSQL's dialect ($1 placeholders,
// greatest(), IS DISTINCT FROM, the conflicting row named by its table), and
// the SQLite flavor rewrites the few words SQLite spells otherwise, as Dex's
// storage/sql does. Schemas differ more (types, STRICT), so each backend has
// its own list of migrations, with the same version numbers.
type flavor struct {
	name string
	// rewrite turns a query in PostgreSQL's dialect into this database's;
	// nil leaves it as it is.
	rewrite func(string) string
	// batchWriter: every write goes through the store's one writer
	// goroutine and connection, which commits queued requests together
	// (SQLite: one writer at a time anyway, one fsync for many). Without it
	// each caller writes in its own transaction from the pool (PostgreSQL:
	// concurrent writers, group commit done by the server).
	batchWriter bool
	// shared: several processes (replicas) may share this database, so
	// what one process can keep in memory on SQLite (handoffs, refresh
	// answers, password-failure counts) goes to the database instead.
	shared bool
	// unavailable reports whether err means the database cannot be reached
	// (not a bug, nor a full disk): the caller answers 503 and retries
	// later. nil: never.
	unavailable func(error) bool

	cache sync.Map // query → rewritten query
}

// errStoreUnavailable wraps a database error that means the database cannot
// be reached right now: a request that needs it is answered 503 with
// Retry-After, and the service recovers by itself when it is back.
var errStoreUnavailable = errors.New("database unavailable")

// q returns query in this flavor's dialect.
func (f *flavor) q(query string) string {
	if f.rewrite == nil {
		return query
	}
	if v, ok := f.cache.Load(query); ok {
		return v.(string)
	}
	out := f.rewrite(query)
	f.cache.Store(query, out)
	return out
}

// classify wraps err in errStoreUnavailable when it says the database is
// unreachable.
func (f *flavor) classify(err error) error {
	if err == nil || f.unavailable == nil || errors.Is(err, errStoreUnavailable) || !f.unavailable(err) {
		return err
	}
	return errors.Join(errStoreUnavailable, err)
}

var pgPlaceholder = regexp.MustCompile(`\$([0-9]+)`)

// sqliteFlavor rewrites PostgreSQL's $N into SQLite's ?N (the same numbered
// parameter), greatest() into SQLite's scalar max(), and IS DISTINCT FROM
// into IS NOT, which in SQLite compares NULLs the same way.
func sqliteFlavor() *flavor {
	words := strings.NewReplacer("greatest(", "max(", "IS DISTINCT FROM", "IS NOT")
	return &flavor{
		name: "sqlite",
		rewrite: func(q string) string {
			return words.Replace(pgPlaceholder.ReplaceAllString(q, "?$1"))
		},
		batchWriter: true,
	}
}

// isPostgresURL reports whether the database setting names a PostgreSQL
// server rather than a SQLite file.
func isPostgresURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// databaseForLog is the database setting as a log line may show it: a
// SQLite path as it is; a PostgreSQL URL without its user information or
// query, where a password may be.
func databaseForLog(s string) string {
	if !isPostgresURL(s) {
		return s
	}
	scheme, rest, _ := strings.Cut(s, "://")
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	rest, _, _ = strings.Cut(rest, "?")
	return scheme + "://" + rest
}
