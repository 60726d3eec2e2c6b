package main

// The app harness: the service built in-process for a configuration and
// served through its real handler, and the helpers that send it requests
// and read its answers, through the handler or over raw connections.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testApp is the service under test, served in-process through its real
// handler (ServeHTTP), with its store in a temporary directory.
type testApp struct {
	t      testing.TB
	srv    *server
	store  *store
	dbPath string
	cancel context.CancelFunc
	// logs holds the service's JSON log lines at logLevel and above
	// (warnings, by default: benchmarks must not fill it).
	logs     *syncBuffer
	logLevel *slog.LevelVar
	// stopped makes stop (test cleanup, restart) run once.
	stopped sync.Once
}

// newTestApp builds the service for the tenants, starts their providers
// and, unless noWait, waits until every tenant is ready.
func newTestApp(t testing.TB, tenants []tenantConfig, noWait ...bool) *testApp {
	t.Helper()
	return startTestApp(t, &config{Tenants: tenants}, t.TempDir()+"/test.db", len(noWait) == 0 || !noWait[0])
}

// startTestApp validates cfg, as loading a configuration file would, and
// serves it with its database at dbPath, its log discarded.
func startTestApp(t testing.TB, cfg *config, dbPath string, wait bool) *testApp {
	t.Helper()
	return startTestAppLog(t, cfg, dbPath, wait, io.Discard)
}

// startTestAppLog is startTestApp with the service's log written to logw,
// for tests that read what the service logs; every way of building a
// testApp ends here.
func startTestAppLog(t testing.TB, cfg *config, dbPath string, wait bool, logw io.Writer) *testApp {
	t.Helper()
	if err := cfg.validate(noEnv); err != nil {
		t.Fatalf("test config: %v", err)
	}
	cfg.Database = dbPath
	met := newMetrics()
	st, err := openStore(context.Background(), dbPath, onParticipantCreated(met.participantCreated))
	if err != nil {
		t.Fatal(err)
	}
	// A test that asks for the log reads it all from logw; the others
	// keep warnings and above in a.logs.
	logs, level := &syncBuffer{}, &slog.LevelVar{}
	level.Set(slog.LevelWarn)
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
	if logw != io.Discard {
		log = slog.New(slog.NewTextHandler(logw, nil))
	}
	s := newServer(cfg, st, log, met, nil)
	if err := s.loadRevocations(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.loadRelayed(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.startProviders(ctx)
	a := &testApp{t: t, srv: s, store: st, dbPath: dbPath, cancel: cancel, logs: logs, logLevel: level}
	t.Cleanup(a.stop)
	if wait {
		a.waitReady(5 * time.Second)
	}
	return a
}

// stop stops the providers and closes the store, once.
func (a *testApp) stop() {
	a.stopped.Do(func() {
		a.cancel()
		a.store.Close()
	})
}

// restart stops the app and starts it again on the same configuration and
// database, as a new process would, and waits until it is ready.
func (a *testApp) restart() *testApp {
	a.t.Helper()
	a.stop()
	return startTestApp(a.t, a.srv.cfg, a.dbPath, true)
}

func (a *testApp) waitReady(d time.Duration) {
	a.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ready := true
		for _, t := range a.srv.tenants {
			ready = ready && t.prov.ready()
		}
		if ready {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.t.Fatal("tenants not ready in time")
}

// do sends a request through the service's handler. hdr is name, value pairs;
// a body with no Content-Type header given is sent as a form.
func (a *testApp) do(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	a.t.Helper()
	return a.doFrom(context.Background(), "", method, target, body, hdr...)
}

// doFrom is do with ctx as the request's context and remote (host:port) as
// the connection's peer; "" keeps httptest's 192.0.2.1:1234.
func (a *testApp) doFrom(ctx context.Context, remote, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequestWithContext(ctx, method, target, rd)
	if remote != "" {
		r.RemoteAddr = remote
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	a.srv.ServeHTTP(w, r)
	return w
}

// register calls /v1/auth/register with a bearer token.
func (a *testApp) register(token string) *httptest.ResponseRecorder {
	a.t.Helper()
	return a.do("POST", "/v1/auth/register", "", "Authorization", "Bearer "+token)
}

// envelope is a decoded response body.
type envelope struct {
	Data  map[string]any `json:"data"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decode(t testing.TB, w *httptest.ResponseRecorder) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("response is not JSON: %v: %q", err, w.Body.String())
	}
	return e
}

// code returns the error code of a response, or "" for a success.
func code(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	e := decode(t, w)
	if e.Error == nil {
		return ""
	}
	return e.Error.Code
}

// tokCheck reports whether w has the wanted status and error code ("" for a
// success), and fails the test when not.
func tokCheck(t *testing.T, path, name string, w *httptest.ResponseRecorder, wantStatus int, wantCode string) bool {
	t.Helper()
	got := code(t, w)
	if w.Code != wantStatus || got != wantCode {
		t.Errorf("POST %s (%s) = %d %s; want %d %s (%s)", path, name, w.Code, got, wantStatus, wantCode, strings.TrimSpace(w.Body.String()))
		return false
	}
	return true
}

// tokCheckTokens checks the shape of a 200 token response and returns its
// data: an access token, token_type Bearer, and Cache-Control no-store.
func tokCheckTokens(t *testing.T, path, name string, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	d := decode(t, w).Data
	if s, _ := d["access_token"].(string); s == "" {
		t.Errorf("POST %s (%s): no access_token in %v", path, name, d)
	}
	if d["token_type"] != "Bearer" {
		t.Errorf("POST %s (%s): token_type = %v; want Bearer", path, name, d["token_type"])
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("POST %s (%s): Cache-Control = %q; want no-store", path, name, cc)
	}
	return d
}

// tokCheckRetryAfter checks that a 429 or 503 says, in whole seconds, when
// to come back.
func tokCheckRetryAfter(t *testing.T, path, name string, w *httptest.ResponseRecorder) int {
	t.Helper()
	ra := w.Header().Get("Retry-After")
	n, err := strconv.Atoi(ra)
	if err != nil || n <= 0 {
		t.Errorf("POST %s (%s) = %d: Retry-After %q; want a number of seconds > 0", path, name, w.Code, ra)
	}
	return n
}

// waitFor sleeps; a method so tests read as steps.
func (a *testApp) waitFor(ns int64) {
	<-timeAfter(ns)
}

func timeAfter(ns int64) <-chan time.Time { return time.After(time.Duration(ns)) }

// testClock is a clock a test moves forward while the code under test reads
// it from other goroutines.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// slowRequest opens a connection and sends a POST that declares a body of
// length bytes but sends only sent of them, then stalls.
func slowRequest(t *testing.T, addr, path string, length, sent int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		path, addr, length, strings.Repeat("a", sent))
	return c
}

// readAnswer reads one response from c, waiting at most d, body included.
func readAnswer(c net.Conn, d time.Duration) (*http.Response, error) {
	c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, err
}
