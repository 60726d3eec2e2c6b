package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the service's counters, written out by hand in the Prometheus
// text exposition format. Every method is safe on a nil *metrics, so tests
// and tools can leave it out.
type metrics struct {
	mu        sync.Mutex
	requests  map[[2]string]uint64 // route, status
	durations map[string]*histogram
	idpCalls  map[[2]string]uint64 // endpoint, outcome

	jwksRefetches       atomic.Uint64
	tokenCacheHits      atomic.Uint64
	tokenCacheMisses    atomic.Uint64
	participantsCreated atomic.Uint64

	now func() time.Time
}

var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

func newMetrics() *metrics {
	return &metrics{
		requests:  make(map[[2]string]uint64),
		durations: make(map[string]*histogram),
		idpCalls:  make(map[[2]string]uint64),
		now:       time.Now,
	}
}

// request records one finished request. route is the mux pattern, so the
// label set stays bounded whatever paths clients send.
func (m *metrics) request(route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	sec := d.Seconds()
	m.mu.Lock()
	m.requests[[2]string{route, strconv.Itoa(status)}]++
	h := m.durations[route]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(durationBuckets))}
		m.durations[route] = h
	}
	if i, _ := slices.BinarySearch(durationBuckets, sec); i < len(durationBuckets) {
		h.counts[i]++
	}
	h.sum += sec
	h.n++
	m.mu.Unlock()
}

func (m *metrics) idpCall(endpoint, outcome string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.idpCalls[[2]string{endpoint, outcome}]++
	m.mu.Unlock()
}

func (m *metrics) jwksRefetch() {
	if m != nil {
		m.jwksRefetches.Add(1)
	}
}

func (m *metrics) tokenCache(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.tokenCacheHits.Add(1)
	} else {
		m.tokenCacheMisses.Add(1)
	}
}

func (m *metrics) participantCreated() {
	if m != nil {
		m.participantsCreated.Add(1)
	}
}

// handleMetrics serves the metrics in the Prometheus text format.
// discoveryAges reports, per tenant, the Unix time of the last good discovery
// fetch (0 for never); with it nil the discovery age gauge is left out.
func handleMetrics(m *metrics, discoveryAges func() map[string]int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m.write(w, discoveryAges)
	})
}

func (m *metrics) write(w io.Writer, discoveryAges func() map[string]int64) {
	var b strings.Builder
	m.mu.Lock()
	b.WriteString("# HELP scaiwave_http_requests_total HTTP requests by route and status.\n# TYPE scaiwave_http_requests_total counter\n")
	for _, k := range sortedKeys(m.requests) {
		fmt.Fprintf(&b, "scaiwave_http_requests_total{route=%s,status=%s} %d\n", quote(k[0]), quote(k[1]), m.requests[k])
	}
	b.WriteString("# HELP scaiwave_http_request_duration_seconds HTTP request duration by route.\n# TYPE scaiwave_http_request_duration_seconds histogram\n")
	routes := make([]string, 0, len(m.durations))
	for r := range m.durations {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	for _, r := range routes {
		h := m.durations[r]
		var cum uint64
		for i, le := range durationBuckets {
			cum += h.counts[i]
			fmt.Fprintf(&b, "scaiwave_http_request_duration_seconds_bucket{route=%s,le=\"%g\"} %d\n", quote(r), le, cum)
		}
		fmt.Fprintf(&b, "scaiwave_http_request_duration_seconds_bucket{route=%s,le=\"+Inf\"} %d\n", quote(r), h.n)
		fmt.Fprintf(&b, "scaiwave_http_request_duration_seconds_sum{route=%s} %g\n", quote(r), h.sum)
		fmt.Fprintf(&b, "scaiwave_http_request_duration_seconds_count{route=%s} %d\n", quote(r), h.n)
	}
	b.WriteString("# HELP scaiwave_idp_requests_total Requests to the IdP by endpoint and outcome.\n# TYPE scaiwave_idp_requests_total counter\n")
	for _, k := range sortedKeys(m.idpCalls) {
		fmt.Fprintf(&b, "scaiwave_idp_requests_total{endpoint=%s,outcome=%s} %d\n", quote(k[0]), quote(k[1]), m.idpCalls[k])
	}
	m.mu.Unlock()

	fmt.Fprintf(&b, "# HELP scaiwave_jwks_refetches_total Key set refetches caused by an unknown kid.\n# TYPE scaiwave_jwks_refetches_total counter\nscaiwave_jwks_refetches_total %d\n", m.jwksRefetches.Load())
	fmt.Fprintf(&b, "# HELP scaiwave_token_cache_hits_total Bearer tokens answered from the verified-token cache.\n# TYPE scaiwave_token_cache_hits_total counter\nscaiwave_token_cache_hits_total %d\n", m.tokenCacheHits.Load())
	fmt.Fprintf(&b, "# HELP scaiwave_token_cache_misses_total Bearer tokens that needed a signature check.\n# TYPE scaiwave_token_cache_misses_total counter\nscaiwave_token_cache_misses_total %d\n", m.tokenCacheMisses.Load())
	fmt.Fprintf(&b, "# HELP scaiwave_participants_created_total Participants created by /v1/auth/register.\n# TYPE scaiwave_participants_created_total counter\nscaiwave_participants_created_total %d\n", m.participantsCreated.Load())
	if discoveryAges != nil {
		b.WriteString("# HELP scaiwave_discovery_age_seconds Age of the tenant's last good discovery document (-1: none yet).\n# TYPE scaiwave_discovery_age_seconds gauge\n")
		ages := discoveryAges()
		tenants := make([]string, 0, len(ages))
		for t := range ages {
			tenants = append(tenants, t)
		}
		slices.Sort(tenants)
		now := m.now().Unix()
		for _, t := range tenants {
			age := int64(-1)
			if at := ages[t]; at > 0 {
				age = now - at
			}
			fmt.Fprintf(&b, "scaiwave_discovery_age_seconds{tenant=%s} %d\n", quote(t), age)
		}
	}
	io.WriteString(w, b.String())
}

func sortedKeys(m map[[2]string]uint64) [][2]string {
	keys := make([][2]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	return keys
}

// quote writes a label value with the escapes of the text format.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
