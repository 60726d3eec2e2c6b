package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// server holds what the handlers share.
type server struct {
	cfg     *config
	tenants []*tenant
	byHost  map[string]*tenant
	store   *store
	log     *slog.Logger
	reqLog  *requestLog
	met     *metrics
	limiter *loginLimiter
	bodies  *bodyBudget
	trusted []netip.Prefix
	browser *browserSignIn
	handler http.Handler
	// routeTable is routes() as built once by newMux, for 405s and preflights.
	routeTable []route
	// loopbackHosts (-dev) refuses requests whose Host is not loopback.
	loopbackHosts bool
	// revSeq is the revocation sequence number this process is current to
	// (runRevocationWatcher).
	revSeq atomic.Int64
	// relSeq is the change number of the record of relayed tokens this
	// process is current to (pollRelayed).
	relSeq atomic.Int64
}

// tenant is a configured tenant at run time.
type tenant struct {
	cfg  *tenantConfig
	prov *provider
	cors map[string]bool
}

// newServer wires tenants, providers and routes; devIDP, when not nil, is the
// development IdP's handler, served under devIDPPath. Call startProviders to
// begin fetching discovery documents.
func newServer(cfg *config, st *store, log *slog.Logger, met *metrics, devIDP http.Handler) *server {
	s := &server{
		cfg:     cfg,
		byHost:  make(map[string]*tenant),
		store:   st,
		log:     log,
		reqLog:  newRequestLog(log),
		met:     met,
		limiter: newLoginLimiter(),
		bodies:  newBodyBudget(cfg.MaxBodyBytesInFlight),
		trusted: cfg.trustedNets,
		// Only -dev mounts the development IdP.
		loopbackHosts: devIDP != nil,
	}
	for i := range cfg.Tenants {
		tc := &cfg.Tenants[i]
		t := &tenant{cfg: tc, prov: newProvider(tc, log, met), cors: make(map[string]bool)}
		t.prov.relayed.st = st
		t.prov.relayed.shared = st != nil && st.fl.shared
		t.prov.dpop.trusted = s.trusted
		if st != nil && st.fl.shared {
			t.prov.dpop.shared = st
			t.prov.dpop.keys, t.prov.dpop.tenantID = st.keys, tc.ID
		}
		for _, o := range tc.CORSOrigins {
			t.cors[o] = true
		}
		for _, h := range tc.Hosts {
			s.byHost[h] = t
		}
		s.tenants = append(s.tenants, t)
		if tc.Features.Auth.PasswordGrantEnabled {
			log.Warn("password grant enabled: /v1/auth/token accepts usernames and passwords for this tenant", "tenant", tc.ID)
		}
		if tc.secret == "" {
			log.Warn(publicClientNote, "tenant", tc.ID, "client_id", tc.ClientID)
		}
		warnIssuerRules(log, tc)
		logAccessTokenWarnings(log, tc)
	}
	s.limiter.shareWith(st)
	s.browser = newBrowserSignIn(s.tenants, s.trusted, st, log)
	s.handler = s.newMux(devIDP)
	return s
}

// discoveryAges reports, per tenant, the Unix time of the last good discovery
// fetch (0 for never), for the metrics.
func (s *server) discoveryAges() map[string]int64 {
	ages := make(map[string]int64, len(s.tenants))
	for _, t := range s.tenants {
		ages[t.cfg.ID] = t.prov.discAt.Load()
	}
	return ages
}

// startProviders starts each tenant's background discovery loop; they stop
// when ctx ends.
func (s *server) startProviders(ctx context.Context) {
	for _, t := range s.tenants {
		go t.prov.run(ctx)
	}
	go s.every(ctx, revocationPruneInterval, "pruning revocations", s.pruneRevocations)
	go s.every(ctx, revocationPruneInterval, "pruning the record of relayed tokens", s.pruneRelayed)
	go s.runRevocationWatcher(ctx)
}

// every runs fn each interval until ctx ends; a failure is logged as what
// failed and tried again at the next tick.
func (s *server) every(ctx context.Context, interval time.Duration, what string, fn func(context.Context, time.Time) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := fn(ctx, time.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn(what+" failed; retrying later", "err", err)
			}
		}
	}
}

// tenantFor routes a request to its tenant by Host (port ignored,
// case-insensitive). With one tenant and no hosts, that tenant serves all.
func (s *server) tenantFor(r *http.Request) *tenant {
	if len(s.tenants) == 1 && len(s.tenants[0].cfg.Hosts) == 0 {
		return s.tenants[0]
	}
	host := r.Host
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
	} else if strings.HasPrefix(host, "[") {
		host = strings.TrimPrefix(host, "[")
		host, _, _ = strings.Cut(host, "]")
	}
	return s.byHost[strings.TrimSuffix(strings.ToLower(host), ".")]
}

// reqInfo travels with a request so the log line can name its route and
// tenant.
type reqInfo struct {
	id     string
	route  string
	tenant *tenant
	log    *slog.Logger
}

type reqInfoKey struct{}

func info(r *http.Request) *reqInfo {
	if i, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{log: slog.Default()}
}

func tenantOf(r *http.Request) *tenant { return info(r).tenant }

// withRoute records the pattern the mux matched (r.Pattern) as the request's
// route for the metrics, as the matched handler is entered. Reading r.Pattern
// once the mux has returned would not name the same routes: the mux's own
// redirects to a cleaned path (//healthz) carry the pattern they lead to, the
// catch-all has the pattern "/", and the development IdP's mux overwrites the
// pattern with its own. The first two count as "unmatched", as the catch-all
// is not wrapped; the development IdP counts as "/dev/idp/".
func withRoute(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info(r).route = r.Pattern
		h.ServeHTTP(w, r)
	})
}

// withTenant resolves the tenant and applies its CORS policy.
func (s *server) withTenant(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := s.tenantFor(r)
		if t == nil {
			writeError(w, r, &apiError{http.StatusNotFound, "SW_TENANT_NOT_FOUND", "no tenant is configured for this host"})
			return
		}
		info(r).tenant = t
		setCORS(w, r, t)
		h.ServeHTTP(w, r)
	})
}

// setCORS adds the CORS headers when the Origin is one of the tenant's.
func setCORS(w http.ResponseWriter, r *http.Request, t *tenant) bool {
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !t.cors[strings.ToLower(origin)] {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "X-Request-Id, WWW-Authenticate, Retry-After, DPoP-Nonce")
	return true
}

// ServeHTTP is the outermost layer: request id, panic recovery, CORS
// preflight, the mux, then one log line and the metrics.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ri := &reqInfo{id: requestID(r.Header.Get("X-Request-Id")), log: s.log}
	r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
	w.Header().Set("X-Request-Id", ri.id)
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic in handler", "request_id", ri.id, "panic", fmt.Sprint(p))
			if sw.status == 0 {
				writeError(sw, r, errors.New("panic"))
			}
		}
		s.logRequest(r, ri, sw, time.Since(start))
	}()
	if s.loopbackHosts && !isLoopbackHostHeader(r.Host) {
		writeError(sw, r, errNotLoopbackHost)
		return
	}
	release, ok := s.reserveBody(sw, r)
	if !ok {
		return
	}
	defer release()
	if r.Method == http.MethodOptions && strings.HasPrefix(r.URL.Path, "/v1/auth/") {
		s.preflight(sw, r, ri)
		return
	}
	s.handler.ServeHTTP(sw, r)
}

// preflight answers OPTIONS on the API: CORS headers for a listed origin,
// none for others, and Allow in both cases.
func (s *server) preflight(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	ri.route = "OPTIONS /v1/auth/"
	methods := allowedMethods(s.routeTable, r.URL.Path)
	if len(methods) == 0 {
		writeError(w, r, &apiError{http.StatusNotFound, "SW_NOT_FOUND", "no such route"})
		return
	}
	t := s.tenantFor(r)
	if t == nil {
		writeError(w, r, &apiError{http.StatusNotFound, "SW_TENANT_NOT_FOUND", "no tenant is configured for this host"})
		return
	}
	ri.tenant = t
	allow := strings.Join(append(methods, "OPTIONS"), ", ")
	w.Header().Set("Allow", allow)
	if setCORS(w, r, t) && r.Header.Get("Access-Control-Request-Method") != "" {
		w.Header().Set("Access-Control-Allow-Methods", allow)
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id, DPoP")
		w.Header().Set("Access-Control-Max-Age", "600")
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) logRequest(r *http.Request, ri *reqInfo, sw *statusWriter, d time.Duration) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	route := ri.route
	if route == "" {
		route = "unmatched"
	}
	s.met.request(route, status, d)
	tenantID := ""
	if ri.tenant != nil {
		tenantID = ri.tenant.cfg.ID
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	// Only the path: a query may carry an authorization code.
	s.reqLog.write(r.Context(), level, &requestLine{
		method:   r.Method,
		path:     r.URL.Path,
		status:   status,
		duration: d,
		tenant:   tenantID,
		id:       ri.id,
		client:   clientAddr(r, s.trusted),
	})
}

// statusWriter remembers the status for the log line.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestID accepts a client's X-Request-Id when it is short and plain, else
// makes one.
func requestID(given string) string {
	if given != "" && len(given) <= 128 && !strings.ContainsFunc(given, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c))
	}) {
		return given
	}
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
