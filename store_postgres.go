//go:build postgres

package main

import (
	"context"

	_ "github.com/lib/pq" // registers the "postgres" database/sql driver
)

// openPostgres opens a PostgreSQL database (built with -tags postgres).
func openPostgres(ctx context.Context, url string, opts ...storeOption) (*store, error) {
	return openPostgresDB(ctx, "postgres", url, opts)
}
