package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkNewParticipants measures first registrations through the store,
// 64 callers at once, each call a person never seen: participants per
// second and the p99 of one call, on SQLite (group commit, one writer) and,
// built with -tags postgres and SCAIWAVE_TEST_POSTGRES set, on PostgreSQL
// (a pool of writers, one transaction each).
//
//	go test -run '^$' -bench NewParticipants -benchtime 5000x .
//	scripts/postgres/run.sh with PG_TEST_RUN='^$' PG_TEST_FLAGS='-bench NewParticipants -benchtime 5000x'
func BenchmarkNewParticipants(b *testing.B) {
	backends := append([]storeBackend{sqliteBackend()}, postgresBackends(b)...)
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := openBackendStore(b, be.newDB(b))
			const callers = 64
			var next atomic.Int64
			lat := make([][]time.Duration, callers)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						t0 := time.Now()
						if _, err := s.ensureParticipant(context.Background(), testPrincipal(fmt.Sprint("new-", i)), "New Person", ""); err != nil {
							b.Error(err)
							return
						}
						lat[c] = append(lat[c], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "participants/s")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
			}
		})
	}
}
