package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an io.Writer that run's goroutines and the test can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logLines decodes the JSON log lines written so far; other lines are skipped.
func (b *syncBuffer) logLines() []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// envOf is a getenv over a map.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// fakeTenantJSON is a tenant of the configuration file pointed at f.
func fakeTenantJSON(f *fakeIDP, id string, hosts ...string) map[string]any {
	t := map[string]any{
		"id":            id,
		"issuer":        f.issuer,
		"client_id":     testClientID,
		"client_secret": testClientSecret,
		"redirect_uri":  testRedirectURI,
		"features":      map[string]any{"auth": map[string]any{"password_grant_enabled": true}},
	}
	if len(hosts) > 0 {
		t["hosts"] = hosts
	}
	return t
}

// writeConfigFile writes a configuration document into dir.
func writeConfigFile(t *testing.T, dir string, doc map[string]any) string {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return writeTestFile(t, dir, "scaiwave.json", string(b))
}

// running is a run call in progress.
type running struct {
	cancel         context.CancelFunc
	done           chan struct{} // closed when run has returned err
	err            error
	stdout, stderr *syncBuffer
}

// startRun calls run in a goroutine; stop ends it.
func startRun(t *testing.T, args []string, env map[string]string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{}), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	go func() {
		defer close(r.done)
		r.err = run(ctx, append([]string{"scaiwave-auth"}, args...), envOf(env), r.stdout, r.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Errorf("run still running 10 s after the test's end")
		}
	})
	return r
}

// stop cancels run's context and returns its result, failing the test when
// it does not return within d.
func (r *running) stop(t *testing.T, d time.Duration) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("run did not return within %v of the cancel; log:\n%s", d, r.stderr)
		return nil
	}
}

// waitStatus polls url until it answers want, failing after d or when run
// returns early.
func waitStatus(t *testing.T, r *running, c *http.Client, url string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			t.Fatalf("run returned early: %v; log:\n%s", r.err, r.stderr)
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("GET %s: %s after %v; want %d", url, last, d, want)
}

// call sends a request and decodes the envelope.
func call(t *testing.T, c *http.Client, method, url string, form url.Values, bearer string) (int, envelope) {
	t.Helper()
	status, e, err := send(c, method, url, form, bearer)
	if err != nil {
		t.Fatal(err)
	}
	return status, e
}

// send is call for goroutines other than the test's.
func send(c *http.Client, method, url string, form url.Values, bearer string) (int, envelope, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, envelope{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, envelope{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, envelope{}, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return 0, envelope{}, fmt.Errorf("%s %s = %d, not JSON: %q", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, e, nil
}

// startReadyRun starts run on a configuration of one tenant ("acme") at f,
// with its own database, and waits until it is ready. It returns the run, a
// client and the base URL.
func startReadyRun(t *testing.T, f *fakeIDP) (*running, *http.Client, string) {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	path := writeConfigFile(t, dir, map[string]any{"tenants": []any{fakeTenantJSON(f, "acme")}})
	r := startRun(t, []string{"-config", path, "-addr", addr, "-db", filepath.Join(dir, "auth.db")}, nil)
	c := newTestClient(t)
	base := "http://" + addr
	waitStatus(t, r, c, base+"/readyz", 200, 5*time.Second)
	return r, c, base
}

func newTestClient(t *testing.T) *http.Client {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestRunServesAndShutsDown starts the real program on a loopback port, with
// the address from the flag and the database from SCAIWAVE_DB winning over the
// file, and stops it by cancelling its context.
func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	dir := t.TempDir()
	fileDB := filepath.Join(dir, "from-file.db")
	envDB := filepath.Join(dir, "from-env.db")
	addr := freeAddr(t)
	path := writeConfigFile(t, dir, map[string]any{
		"addr":     "127.0.0.1:1", // overridden by -addr
		"database": fileDB,        // overridden by SCAIWAVE_DB
		"tenants":  []any{fakeTenantJSON(f, "acme")},
	})
	r := startRun(t, []string{"-config", path, "-addr", addr}, map[string]string{"SCAIWAVE_DB": envDB, "SCAIWAVE_ADDR": "127.0.0.1:2"})
	c := newTestClient(t)
	base := "http://" + addr
	waitStatus(t, r, c, base+"/healthz", 200, 5*time.Second)
	waitStatus(t, r, c, base+"/readyz", 200, 5*time.Second)
	status, e := call(t, c, "GET", base+"/v1/auth/config", nil, "")
	if status != 200 || e.Data["issuer"] != f.issuer || e.Data["client_id"] != testClientID {
		t.Errorf("GET /v1/auth/config = %d %v; want 200 with the fake IdP's issuer", status, e.Data)
	}
	c.CloseIdleConnections()

	if err := r.stop(t, 5*time.Second); err != nil {
		t.Fatalf("run after cancel = %v; want nil", err)
	}
	if _, err := os.Stat(envDB); err != nil {
		t.Errorf("database from SCAIWAVE_DB: %v", err)
	}
	if _, err := os.Stat(fileDB); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("database from the file was created (stat: %v); SCAIWAVE_DB must win", err)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after run returned", addr)
	}
	if !strings.Contains(r.stderr.String(), `"msg":"stopped"`) {
		t.Errorf("log lacks the stopped line:\n%s", r.stderr)
	}
}

// TestRunGracefulShutdown cancels run while a token request waits on a slow
// IdP: the request still gets its answer and run returns nil.
func TestRunGracefulShutdown(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) {
		f.tokenFn = func(form url.Values, r *http.Request) (int, any) {
			time.Sleep(500 * time.Millisecond)
			return f.defaultToken(form, r)
		}
	})
	r, c, base := startReadyRun(t, f)

	type answer struct {
		status int
		env    envelope
		err    error
	}
	answers := make(chan answer, 1)
	go func() {
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"}}
		status, e, err := send(c, "POST", base+"/v1/auth/token", form, "")
		answers <- answer{status, e, err}
	}()
	for f.tokenHits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	err := r.stop(t, 5*time.Second)
	if err != nil {
		t.Errorf("run after cancel with a request in flight = %v; want nil", err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("run returned %v after the cancel; want it to wait for the ~500 ms request", waited)
	}
	select {
	case a := <-answers:
		if a.err != nil || a.status != 200 || a.env.Data["access_token"] == nil {
			t.Errorf("in-flight POST /v1/auth/token = %d %+v, %v; want 200 with an access token", a.status, a.env, a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request got no answer")
	}
}

// TestParseFlagsPrecedence: a flag beats the environment, which beats the
// file, which beats the built-in default.
func TestParseFlagsPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                         string
		args                         []string
		env                          map[string]string
		fileAddr, fileDB             string
		wantConfig, wantAddr, wantDB string
	}{
		{"defaults", nil, nil, "", "", "", defaultAddr, defaultDatabase},
		{"file", nil, nil, "127.0.0.1:1111", "file.db", "", "127.0.0.1:1111", "file.db"},
		{"environment over file", nil, map[string]string{"SCAIWAVE_ADDR": "127.0.0.1:2222", "SCAIWAVE_DB": "env.db", "SCAIWAVE_CONFIG": "env.json"},
			"127.0.0.1:1111", "file.db", "env.json", "127.0.0.1:2222", "env.db"},
		{"environment over default", nil, map[string]string{"SCAIWAVE_ADDR": "[::1]:2222", "SCAIWAVE_DB": "env.db"},
			"", "", "", "[::1]:2222", "env.db"},
		{"flags over environment and file", []string{"-config", "flag.json", "-addr", "127.0.0.1:3333", "-db", "flag.db"},
			map[string]string{"SCAIWAVE_ADDR": "127.0.0.1:2222", "SCAIWAVE_DB": "env.db", "SCAIWAVE_CONFIG": "env.json"},
			"127.0.0.1:1111", "file.db", "flag.json", "127.0.0.1:3333", "flag.db"},
		{"flag set to the default still wins", []string{"-addr", defaultAddr, "-db", defaultDatabase},
			map[string]string{"SCAIWAVE_ADDR": "127.0.0.1:2222", "SCAIWAVE_DB": "env.db"},
			"127.0.0.1:1111", "file.db", "", defaultAddr, defaultDatabase},
		{"empty environment is unset", nil, map[string]string{"SCAIWAVE_ADDR": "", "SCAIWAVE_DB": "", "SCAIWAVE_CONFIG": ""},
			"127.0.0.1:1111", "file.db", "", "127.0.0.1:1111", "file.db"},
		{"one of each", []string{"-db", "flag.db"}, map[string]string{"SCAIWAVE_ADDR": "127.0.0.1:2222"},
			"127.0.0.1:1111", "file.db", "", "127.0.0.1:2222", "flag.db"},
	}
	for _, tc := range tests {
		o, rest, err := parseFlags("scaiwave-auth", tc.args, envOf(tc.env), io.Discard)
		if err != nil || len(rest) != 0 {
			t.Errorf("parseFlags (%s) = %v, rest %q", tc.name, err, rest)
			continue
		}
		cfg := &config{Addr: tc.fileAddr, Database: tc.fileDB}
		applyOverrides(cfg, o)
		if o.configPath != tc.wantConfig || cfg.Addr != tc.wantAddr || cfg.Database != tc.wantDB {
			t.Errorf("(%s) config, addr, db = %q, %q, %q; want %q, %q, %q",
				tc.name, o.configPath, cfg.Addr, cfg.Database, tc.wantConfig, tc.wantAddr, tc.wantDB)
		}
	}
}

// TestRunConfigFromEnvironment finds the file through SCAIWAVE_CONFIG, and
// lets -config override it.
func TestRunConfigFromEnvironment(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	dir := t.TempDir()
	path := writeConfigFile(t, dir, map[string]any{"tenants": []any{fakeTenantJSON(f, "from-file")}})
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"SCAIWAVE_CONFIG", []string{"-check"}, map[string]string{"SCAIWAVE_CONFIG": path}},
		{"-config over SCAIWAVE_CONFIG", []string{"-check", "-config", path}, map[string]string{"SCAIWAVE_CONFIG": filepath.Join(dir, "missing.json")}},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"scaiwave-auth"}, tc.args...), envOf(tc.env), &out, io.Discard)
		if err != nil || !strings.HasPrefix(out.String(), "ok   from-file ") {
			t.Errorf("run -check (%s) = %v, output %q; want ok for tenant from-file", tc.name, err, out.String())
		}
	}
}

// TestRunExitCodes: bad usage and bad configuration end with status 2 and a
// one-line message, never a panic.
func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := writeConfigFile(t, dir, map[string]any{"tenants": []any{
		map[string]any{"id": "acme", "issuer": "http://idp.example.com", "client_id": "c", "redirect_uri": "https://a.example/cb"},
	}})
	good := writeTestFile(t, dir, "good.json", cfgJSON(tenants(cfgTenant("acme"))))
	missing := filepath.Join(dir, "missing.json")
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantMsg  string
	}{
		{"invalid config", []string{"-config", bad}, nil, 2, "tenants[0].issuer: must be https unless the host is loopback"},
		{"invalid config from SCAIWAVE_CONFIG", nil, map[string]string{"SCAIWAVE_CONFIG": bad}, 2, "tenants[0].issuer: must be https"},
		{"invalid config with -check", []string{"-check", "-config", bad}, nil, 2, "tenants[0].issuer:"},
		{"missing config file", []string{"-config", missing}, nil, 2, "config " + missing + ": no such file or directory"},
		{"no config, no -dev", nil, nil, 2, "no configuration"},
		{"unknown flag", []string{"-bogus"}, nil, 2, "-bogus"},
		{"flag without value", []string{"-config"}, nil, 2, "-config"},
		{"stray argument", []string{"-config", good, "extra"}, nil, 2, `unexpected argument "extra"`},
		{"-addr not host:port", []string{"-config", good, "-addr", "8080"}, nil, 2, `"8080" must be host:port`},
		{"SCAIWAVE_ADDR not host:port", []string{"-config", good}, map[string]string{"SCAIWAVE_ADDR": "localhost"}, 2, `"localhost" must be host:port`},
		{"-dev on all interfaces", []string{"-dev", "-addr", "0.0.0.0:0"}, nil, 2, "-dev listens only on loopback"},
		{"-dev on an empty host", []string{"-dev", "-addr", ":8080"}, nil, 2, "-dev listens only on loopback"},
		{"-dev on the IPv6 unspecified address", []string{"-dev", "-addr", "[::]:0"}, nil, 2, "-dev listens only on loopback"},
		{"-dev with SCAIWAVE_ADDR on all interfaces", []string{"-dev"}, map[string]string{"SCAIWAVE_ADDR": "0.0.0.0:0"}, 2, "-dev listens only on loopback"},
		{"-dev without port", []string{"-dev", "-addr", "127.0.0.1"}, nil, 2, "host:port"},
		{"-dev and -config", []string{"-dev", "-config", good}, nil, 2, "-dev and -config"},
	}
	// A regression that starts serving must not hang the test.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"scaiwave-auth"}, tc.args...), envOf(tc.env), &stdout, &stderr)
		if err == nil {
			t.Errorf("run %q (%s) = nil; want exit status %d", tc.args, tc.name, tc.wantCode)
			continue
		}
		msg := err.Error()
		if c := exitCode(err); c != tc.wantCode {
			t.Errorf("run %q (%s): exit status %d (%v); want %d", tc.args, tc.name, c, err, tc.wantCode)
		}
		if !strings.Contains(msg, tc.wantMsg) || strings.ContainsAny(msg, "\r\n") {
			t.Errorf("run %q (%s) = %q; want one line containing %q", tc.args, tc.name, msg, tc.wantMsg)
		}
		for _, out := range []string{msg, stdout.String(), stderr.String()} {
			if strings.Contains(out, "goroutine") || strings.Contains(out, "panic") {
				t.Errorf("run %q (%s) printed a stack trace: %s", tc.args, tc.name, out)
			}
		}
	}
}

func TestRunVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"/usr/local/bin/scaiwave-auth", "-version"}, noEnv, &out, io.Discard)
	if err != nil {
		t.Fatalf("run -version = %v; want nil", err)
	}
	v, ok := strings.CutPrefix(out.String(), "scaiwave-auth ")
	if !ok || strings.TrimSpace(v) == "" || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("run -version printed %q; want one line: scaiwave-auth VERSION", out.String())
	}
}

// TestRunCheck fetches each tenant's discovery and keys, one line a tenant,
// and fails with status 1 naming the tenant when one of them is broken.
func TestRunCheck(t *testing.T) {
	t.Parallel()
	good1, good2 := newFakeIDP(t), newFakeIDP(t)
	down, wrongIssuer, noKeys := newFakeIDP(t), newFakeIDP(t), newFakeIDP(t)
	down.set(func(f *fakeIDP) { f.discMode = modeDown })
	wrongIssuer.set(func(f *fakeIDP) { f.discIssuer = f.issuer + "/other" })
	noKeys.set(func(f *fakeIDP) { f.jwksMode = mode500 })

	check := func(t *testing.T, idps ...*fakeIDP) (string, error) {
		t.Helper()
		var ts []any
		for i, f := range idps {
			id := []string{"one", "two", "three"}[i]
			ts = append(ts, fakeTenantJSON(f, id, id+".example.com"))
		}
		path := writeConfigFile(t, t.TempDir(), map[string]any{"tenants": ts})
		var out bytes.Buffer
		err := run(context.Background(), []string{"scaiwave-auth", "-config", path, "-check"}, noEnv, &out, io.Discard)
		return out.String(), err
	}

	out, err := check(t, good1, good2)
	if err != nil {
		t.Fatalf("run -check with good IdPs = %v; output:\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ok   one issuer="+good1.issuer+" ") || !strings.HasPrefix(lines[1], "ok   two issuer="+good2.issuer+" ") {
		t.Errorf("run -check with good IdPs printed:\n%s\nwant one ok line per tenant", out)
	}
	if !strings.Contains(lines[0], "keys=1") {
		t.Errorf("ok line %q does not count the keys", lines[0])
	}

	for _, tc := range []struct {
		name    string
		bad     *fakeIDP
		wantWhy string
	}{
		{"discovery down", down, "discovery"},
		{"wrong issuer", wrongIssuer, "issuer mismatch"},
		{"JWKS 500", noKeys, "status 500"},
	} {
		out, err := check(t, good1, tc.bad)
		if err == nil || exitCode(err) != 1 {
			t.Errorf("run -check (%s) = %v (exit status %d); want exit status 1", tc.name, err, exitCode(err))
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "ok   one ") ||
			!strings.HasPrefix(lines[1], "FAIL two issuer="+tc.bad.issuer+": ") || !strings.Contains(lines[1], tc.wantWhy) {
			t.Errorf("run -check (%s) printed:\n%s\nwant ok for one and a FAIL line for two saying %q", tc.name, out, tc.wantWhy)
		}
		if strings.Contains(out, testClientSecret) {
			t.Errorf("run -check (%s) printed the client secret", tc.name)
		}
	}
}

// TestRunBusyPort: an address another program listens on is named, with the
// setting that chooses another one.
func TestRunBusyPort(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	dir := t.TempDir()
	good := writeTestFile(t, dir, "good.json", cfgJSON(tenants(cfgTenant("acme"))))
	metrics := writeTestFile(t, dir, "metrics.json", cfgJSON(tenants(cfgTenant("acme")), "metrics_addr", addr))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"-dev", []string{"-dev", "-addr", addr, "-db", filepath.Join(dir, "dev.db")}, "choose another address with -addr HOST:PORT"},
		{"-config", []string{"-config", good, "-addr", addr, "-db", filepath.Join(dir, "a.db")}, "choose another address with -addr HOST:PORT (or SCAIWAVE_ADDR"},
		{"metrics_addr", []string{"-config", metrics, "-addr", "127.0.0.1:0", "-db", filepath.Join(dir, "m.db")}, `choose another address with "metrics_addr"`},
	}
	for _, tc := range tests {
		// The deadline only keeps a regression that serves from hanging.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := run(ctx, append([]string{"scaiwave-auth"}, tc.args...), noEnv, io.Discard, io.Discard)
		cancel()
		if err == nil || exitCode(err) != 1 {
			t.Errorf("%s on a busy port: %v (exit %d); want exit status 1", tc.name, err, exitCode(err))
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "listen on "+addr+": the address is already in use") || !strings.Contains(msg, tc.want) {
			t.Errorf("%s on a busy port: %q; want it to name %s as in use and say %q", tc.name, msg, addr, tc.want)
		}
	}
}

func TestVersionOf(t *testing.T) {
	t.Parallel()
	devel := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}}
	tests := []struct {
		name    string
		release string
		bi      *debug.BuildInfo
		want    string
	}{
		{"release build", "v1.4.0", devel, "v1.4.0"},
		{"go build in a clone", "", devel, "(devel) 0123456789ab"},
		{"no VCS", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel)"},
		{"no build info", "", nil, "unknown"},
	}
	for _, tc := range tests {
		if got := versionOf(tc.release, tc.bi); got != tc.want {
			t.Errorf("%s: versionOf = %q; want %q", tc.name, got, tc.want)
		}
	}
}
