//go:build !postgres

package main

import "context"

// openPostgres refuses: the default build links no PostgreSQL driver.
func openPostgres(ctx context.Context, url string, opts ...storeOption) (*store, error) {
	return nil, usageErrorf("database: a PostgreSQL URL needs a binary built with -tags postgres (go build -tags postgres); the default build supports SQLite only")
}
