package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Paths filled in by TestMain.
var (
	repoRoot   string // the scaiwave-auth checkout
	interopDir string // repoRoot/interop
	workDir    string // scratch directory for binaries, configs, databases, logs
	serviceBin string // the product binary, built from repoRoot or INTEROP_BIN
	zitadelBin string // the zitadel/oidc example OP, built from interop/zitadel
)

// TestMain builds the product and the zitadel OP once, and checks that the
// node provider was installed, before any test runs. A missing piece is a
// failure, never a skip: a harness that skips when it cannot run proves
// nothing.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	interopDir = wd
	repoRoot = filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(repoRoot, "go.mod")); err != nil {
		fmt.Fprintf(os.Stderr, "interop: %s has no go.mod: run the tests from the interop directory of a scaiwave-auth checkout\n", repoRoot)
		return 1
	}
	if _, err := os.Stat(filepath.Join(interopDir, "node", "node_modules", "oidc-provider", "package.json")); err != nil {
		fmt.Fprintln(os.Stderr, "interop: node oidc-provider is not installed in interop/node/node_modules: run interop/run.sh (it runs npm ci there)")
		return 1
	}
	if _, err := exec.LookPath("node"); err != nil {
		fmt.Fprintln(os.Stderr, "interop: node is not on PATH; the node oidc-provider cannot run")
		return 1
	}
	workDir, err = os.MkdirTemp("", "scaiwave-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	keep := os.Getenv("INTEROP_KEEP") != ""
	defer func() {
		if keep {
			fmt.Fprintln(os.Stderr, "interop: kept", workDir)
			return
		}
		os.RemoveAll(workDir)
	}()
	serviceBin = filepath.Join(workDir, "scaiwave-auth")
	zitadelBin = filepath.Join(workDir, "zitadel-op")
	// INTEROP_BIN: a prebuilt product binary (e.g. another branch's) instead
	// of building the checkout around this directory.
	prebuilt := os.Getenv("INTEROP_BIN")
	if prebuilt != "" {
		abs, err := filepath.Abs(prebuilt)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "interop: INTEROP_BIN=%s: %v\n", prebuilt, err)
			return 1
		}
		serviceBin = abs
		fmt.Fprintf(os.Stderr, "interop: using the prebuilt product binary %s (INTEROP_BIN)\n", abs)
	}
	hydraBin = os.Getenv("INTEROP_HYDRA_BIN")

	// Both builds at once: the machine is small, but the two share little.
	started := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	// The product is built as .ci/run builds its linux/amd64 binary
	// (static, -trimpath), so that the compile cache of that step serves
	// this one too; the OP with -trimpath as well, so that both share one
	// compiled standard library (run.sh runs go test with -trimpath too).
	build := func(i int, dir, out string, flags ...string) {
		defer wg.Done()
		errs[i] = goBuild(dir, out, flags...)
	}
	if prebuilt == "" {
		go build(0, repoRoot, serviceBin, "-trimpath", "-ldflags=-s -w")
	} else {
		wg.Done()
	}
	go build(1, filepath.Join(interopDir, "zitadel"), zitadelBin, "-trimpath")
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "interop: build failed:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "interop: built scaiwave-auth and zitadel-op in %s\n", time.Since(started).Round(100*time.Millisecond))
	code := m.Run()
	printResults(os.Stdout)
	if path := os.Getenv("INTEROP_RESULTS"); path != "" {
		if f, err := os.Create(path); err == nil {
			printResults(f)
			f.Close()
		}
	}
	return code
}

func goBuild(dir, out string, flags ...string) error {
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build in %s: %v\n%s", dir, err, b)
	}
	return nil
}

// freePort reserves a free loopback port for one peer or service. The
// service's port has to be known before the providers start (their client
// registration names the service's redirect URI), so it cannot be port 0.
// Ports come from below the kernel's ephemeral range (32768 and up on
// Linux), where nothing that binds port 0 is ever given one, and no port is
// handed out twice in one run: with the providers started in parallel, two
// kernel-chosen ports once collided and a service found its address taken.
func freePort(t *testing.T) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 2000 {
		if nextPort == 0 || nextPort >= 32000 {
			nextPort = 20000 + os.Getpid()%1000*10
		}
		p := nextPort
		nextPort++
		if portsGiven[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatal("free port: none free between 20000 and 32000")
	return 0
}

var (
	portMu     sync.Mutex
	nextPort   int
	portsGiven = map[int]bool{}
)

// proc is a child process whose stdout and stderr go to one log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status, once done is closed
	first   chan string   // the first line of stdout
}

// lockedWriter serialises the stdout and stderr copies into one file.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startProc starts a child process and registers its shutdown (SIGTERM,
// then SIGKILL after 5 s) and, when the test failed, the printing of its log.
func startProc(t *testing.T, name, dir string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(workDir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	lw := &lockedWriter{w: f}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = lw
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{}), first: make(chan string, 1)}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: start %s: %v", name, bin, err)
	}
	var copied sync.WaitGroup
	copied.Add(1)
	go func() {
		defer copied.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		firstSeen := false
		for sc.Scan() {
			line := sc.Text()
			if !firstSeen {
				firstSeen = true
				p.first <- line
			}
			fmt.Fprintln(lw, line)
		}
		close(p.first)
	}()
	go func() {
		copied.Wait()
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			dumpLog(t, p)
		}
	})
	return p
}

// stop ends the process (SIGTERM, SIGKILL after 5 s) and waits for it.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// dumpLog prints the end of a process's log into the test output.
func dumpLog(t *testing.T, p *proc) {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Logf("==== %s log: %v", p.name, err)
		return
	}
	const max = 48 << 10
	cut := ""
	if len(b) > max {
		b = b[len(b)-max:]
		cut = " (last 48 KiB)"
	}
	t.Logf("==== %s log%s, %s ====\n%s==== end of %s log ====", p.name, cut, p.logPath, b, p.name)
}

// readFirstLine waits for the first stdout line of a provider, which names
// its issuer, or for its exit.
func readIssuer(t *testing.T, p *proc) string {
	t.Helper()
	select {
	case line, ok := <-p.first:
		if !ok {
			<-p.done
			t.Fatalf("%s exited before announcing its issuer (%v); its log is printed below", p.name, p.err)
		}
		var v struct {
			Issuer string `json:"issuer"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil || v.Issuer == "" {
			t.Fatalf("%s: first stdout line is not {\"issuer\":...}: %q", p.name, line)
		}
		return v.Issuer
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not announce its issuer within 30 s", p.name)
	}
	return ""
}

// startZitadel starts the zitadel/oidc example OP with the service's
// client registered.
func startZitadel(t *testing.T, p *peer, _, redirectURI string) *idp {
	t.Helper()
	pr := startProc(t, "zitadel-op", workDir, nil, zitadelBin,
		"-addr", "127.0.0.1:0",
		"-client-id", p.clientID,
		"-client-secret", p.clientSecret,
		"-redirect-uri", redirectURI,
		"-username", p.username,
		"-password", p.password,
	)
	return &idp{issuer: readIssuer(t, pr)}
}

// startNodeOP starts node oidc-provider (interop/node/provider.mjs) with the
// service's client registered.
func startNodeOP(t *testing.T, p *peer, svcBase, redirectURI string) *idp {
	t.Helper()
	return startNodeOPWith(t, p, svcBase, redirectURI)
}

// startNodeOPWith is startNodeOP with extra environment for provider.mjs
// (DPOP_NONCE=1: the DPoP nonce test).
func startNodeOPWith(t *testing.T, p *peer, svcBase, redirectURI string, extraEnv ...string) *idp {
	t.Helper()
	relay := newLogoutRelay(t, svcBase+"/v1/auth/backchannel-logout")
	pr := startProc(t, "node-oidc-provider", filepath.Join(interopDir, "node"), append([]string{
		"BACKCHANNEL_LOGOUT_URI=" + relay.url(),
		"POST_LOGOUT_REDIRECT_URI=" + svcBase + "/signed-out",
		"CLIENT_ID=" + p.clientID,
		"CLIENT_SECRET=" + p.clientSecret,
		"REDIRECT_URI=" + redirectURI,
		"API_RESOURCE=" + nodeAPIResource,
		"API_AUDIENCE=" + nodeAPIAudience,
		"NODE_ENV=development",
	}, extraEnv...), "node", "provider.mjs")
	return &idp{issuer: readIssuer(t, pr), logoutTokens: relay.delivered}
}

// service is one running scaiwave-auth.
type service struct {
	base    string // http://127.0.0.1:PORT
	proc    *proc
	cfgPath string // the config file it runs with
}

// startService writes a config with tenant, starts the service on port and
// waits until it is ready; a service that does not start fails the test
// with its last log line.
func startService(t *testing.T, port int, tenant map[string]any) *service {
	t.Helper()
	s, refusal := tryStartService(t, port, tenant)
	if s == nil {
		t.Fatalf("the service did not start: %s", refusal)
	}
	return s
}

// tryStartService starts the service and waits for /readyz. It returns nil
// and the service's last stderr line when the process exits first.
func tryStartService(t *testing.T, port int, tenant map[string]any) (*service, string) {
	t.Helper()
	id, _ := tenant["id"].(string)
	cfg := map[string]any{"tenants": []any{tenant}}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.Now().UnixNano()
	cfgPath := filepath.Join(workDir, fmt.Sprintf("config-%s-%d.json", id, stamp))
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := startProc(t, "scaiwave-auth-"+id, workDir, nil, serviceBin,
		"-config", cfgPath,
		"-addr", addr,
		"-db", filepath.Join(workDir, fmt.Sprintf("%s-%d.db", id, stamp)),
	)
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			return nil, fmt.Sprintf("%v: %s", p.err, lastLine(p.logPath))
		}
		st, body, err := get(base + "/readyz")
		if err == nil && st == http.StatusOK {
			t.Logf("service %s ready at %s (config %s)", id, base, cfgPath)
			return &service{base: base, proc: p, cfgPath: cfgPath}, ""
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", st, strings.TrimSpace(string(body)))
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop()
	return nil, "not ready within 20 s: /readyz said " + last
}

func lastLine(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

var apiClient = &http.Client{Timeout: 15 * time.Second}

func get(u string) (int, []byte, error) { return getWithin(u, 5*time.Second) }

func getWithin(u string, d time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// discovery is the part of a provider's discovery document the tests use.
type discovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	EndSessionEndpoint    string `json:"end_session_endpoint"`
	// GrantTypesSupported and BackchannelLogoutSupported back the named
	// skips: a skip whose reason discovery contradicts fails instead.
	GrantTypesSupported        []string `json:"grant_types_supported"`
	BackchannelLogoutSupported bool     `json:"backchannel_logout_supported"`
	RevocationEndpoint         string   `json:"revocation_endpoint"`
	UserinfoEndpoint           string   `json:"userinfo_endpoint"`
}

func fetchDiscovery(t *testing.T, issuer string) discovery {
	t.Helper()
	st, b, err := get(issuer + "/.well-known/openid-configuration")
	if err != nil || st != http.StatusOK {
		t.Fatalf("discovery of %s: status %d, %v", issuer, st, err)
	}
	var d discovery
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("discovery of %s: %v", issuer, err)
	}
	if d.Issuer != issuer {
		t.Fatalf("discovery issuer %q differs from %q", d.Issuer, issuer)
	}
	var all map[string]any
	_ = json.Unmarshal(b, &all)
	for _, k := range []string{"introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported", "token_endpoint_auth_methods_supported"} {
		t.Logf("provider discovery %s: %v", k, all[k])
	}
	return d
}

// apiCall is one answer of the service's JSON API.
type apiCall struct {
	status int
	header http.Header
	body   []byte
	data   map[string]any // the envelope's data, on success
	code   string         // the envelope's error.code, on failure
	msg    string         // the envelope's error.message
}

// describe summarises an answer without any token in it: for a success the
// data's keys with string values replaced by their lengths where they are
// credentials; for a failure the error envelope (which by contract never
// holds a token).
func (a *apiCall) describe() string {
	if a.data != nil {
		return fmt.Sprintf("%d data=%s", a.status, redacted(a.data))
	}
	if a.code != "" {
		return fmt.Sprintf("%d %s: %s", a.status, a.code, a.msg)
	}
	body := a.body
	if len(body) > 300 {
		body = body[:300]
	}
	return fmt.Sprintf("%d (not the API envelope) %q", a.status, body)
}

var secretKeys = map[string]bool{"access_token": true, "refresh_token": true, "id_token": true, "code": true, "handoff": true}

func redacted(m map[string]any) string {
	out := map[string]any{}
	for k, v := range m {
		if s, ok := v.(string); ok && secretKeys[k] {
			out[k] = fmt.Sprintf("<%d chars>", len(s))
			continue
		}
		out[k] = v
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// callAPI POSTs a JSON body (nil for none) with an optional bearer to the
// service.
func callAPI(t *testing.T, s *service, path string, body map[string]string, bearer string) *apiCall {
	t.Helper()
	h := http.Header{}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	return postAPI(t, s, path, body, h)
}

// postAPI POSTs a JSON body (nil for none) with the given request headers
// (Authorization, DPoP) to the service.
func postAPI(t *testing.T, s *service, path string, body map[string]string, header http.Header) *apiCall {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(http.MethodPost, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("POST %s: reading the answer: %v", path, err)
	}
	a := &apiCall{status: resp.StatusCode, header: resp.Header, body: b}
	a.parse()
	return a
}

// parse reads the envelope of a.body into data, or code and msg.
func (a *apiCall) parse() {
	var env struct {
		Data  map[string]any `json:"data"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(a.body, &env) == nil {
		a.data = env.Data
		if env.Error != nil {
			a.code, a.msg = env.Error.Code, env.Error.Message
		}
	}
}
