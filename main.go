// Command scaiwave-auth fronts an OpenID Connect identity provider: it
// exchanges codes, passwords and refresh tokens for tokens, verifies bearer
// access tokens itself, and keeps a SQLite table of participants.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// The live heap is a few MB, so the default (collect at 100% growth)
		// runs the collector every few MB of token parsing. 400 costs a few
		// MB of memory and gave 9% more verified requests per second under
		// wrk here. The soft memory limit (serve) caps what it may cost:
		// under it, 400 still served cached requests with 5% less CPU than
		// 100 and as little as off, which holds the heap at the limit even
		// when the live set is small. GOGC in the environment still wins.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scaiwave-auth:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries an exit status: 2 for bad usage or configuration, 1 for
// everything else.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func exitCode(err error) int {
	var ee *exitError
	var ce *configError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ce):
		return 2
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	return 1
}

// options are the command line after flags and environment are merged.
type options struct {
	configPath string
	addr       string
	db         string
	dev        bool
	check      bool
	version    bool
	addrSet    bool
	dbSet      bool
	configSet  bool // -config given as a flag, not from SCAIWAVE_CONFIG
	// given are the flags set on the command line, by name, as written.
	given map[string]string
	// memoryLimit is -memory-limit in MiB, when memoryLimitSet.
	memoryLimit    int
	memoryLimitSet bool
}

// parseFlags reads flags, then the SCAIWAVE_* environment for flags not
// given. Flags override the environment, which overrides the file.
func parseFlags(name string, args []string, getenv func(string) string, stderr io.Writer) (*options, []string, error) {
	o := &options{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", "", "configuration file (JSON); env SCAIWAVE_CONFIG")
	fs.StringVar(&o.addr, "addr", defaultAddr, "listen address; env SCAIWAVE_ADDR")
	fs.StringVar(&o.db, "db", defaultDatabase, "SQLite database file, or a postgres:// URL (built with -tags postgres); env SCAIWAVE_DB")
	fs.BoolVar(&o.dev, "dev", false, "run on embedded defaults with a development IdP on loopback")
	fs.BoolVar(&o.check, "check", false, "validate the configuration, fetch each tenant's discovery and JWKS, and exit")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.IntVar(&o.memoryLimit, "memory-limit", 0, "soft memory limit in MiB, 0 for none (default: the file's memory_limit_mb, else token_cache_mb + 32); GOMEMLIMIT in the environment wins")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [-dev | -config FILE [-check]] [-addr HOST:PORT] [-db FILE]\n", name)
		fmt.Fprintf(stderr, "       %s participants list [-tenant T] [-json] | show ID | delete ID\n", name)
		fmt.Fprintf(stderr, "       %s backup FILE\n\nflags:\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, &exitError{code: 2, err: err}
	}
	set := map[string]bool{}
	o.given = map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		set[f.Name] = true
		o.given[f.Name] = f.Value.String()
	})
	o.configSet = set["config"]
	if !o.configSet {
		o.configPath = getenv("SCAIWAVE_CONFIG")
	}
	o.addrSet, o.dbSet, o.memoryLimitSet = set["addr"], set["db"], set["memory-limit"]
	if !o.addrSet {
		if v := getenv("SCAIWAVE_ADDR"); v != "" {
			o.addr, o.addrSet = v, true
		}
	}
	if !o.dbSet {
		if v := getenv("SCAIWAVE_DB"); v != "" {
			o.db, o.dbSet = v, true
		}
	}
	return o, fs.Args(), nil
}

// run is the whole program; main only supplies the process's context,
// arguments, environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name := "scaiwave-auth"
	if len(args) > 0 {
		name = filepath.Base(args[0])
		args = args[1:]
	}
	if len(args) > 0 && isAdminCommand(args[0]) {
		return runAdmin(ctx, name, nil, args, getenv, stdout, stderr)
	}
	o, rest, err := parseFlags(name, args, getenv, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 && isAdminCommand(rest[0]) {
		// Flags before the command ("-config X participants list") are
		// the command's, as they would be after it.
		given, err := adminFlags(rest[0], o)
		if err != nil {
			return err
		}
		return runAdmin(ctx, name, given, rest, getenv, stdout, stderr)
	}
	if len(rest) > 0 {
		return usageErrorf("unexpected argument %q (see -h)", rest[0])
	}
	if o.version {
		fmt.Fprintln(stdout, name, version())
		return nil
	}
	if o.dev {
		// -dev on the command line wins over a SCAIWAVE_CONFIG left in the
		// environment; only an explicit -config clashes with it.
		if o.configSet {
			return usageErrorf("-dev and -config exclude each other")
		}
		return runDev(ctx, o, stdout, stderr)
	}
	if o.configPath == "" {
		return usageErrorf("no configuration: give -config FILE (or SCAIWAVE_CONFIG), or -dev to try it out")
	}
	cfg, err := loadConfig(o.configPath, getenv)
	if err != nil {
		return err
	}
	if err := applyOverrides(cfg, o); err != nil {
		return err
	}
	if o.addrSet {
		// The file's addr was checked with the rest of it; a flag or
		// SCAIWAVE_ADDR is configuration too, and gets the same exit status.
		if err := checkListenAddr(cfg.Addr); err != nil {
			return usageErrorf("-addr (or SCAIWAVE_ADDR): %v", err)
		}
	}
	log, sink := newLogger(stderr, true)
	// Closed last: every line logged until run returns is written.
	defer sink.Close()
	if o.check {
		return runCheck(ctx, cfg, log, stdout)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return listenError(cfg.Addr, err, `-addr HOST:PORT (or SCAIWAVE_ADDR, or "addr" in the configuration)`)
	}
	// The process's default logger as well, set where the program chooses
	// its logger rather than inside serve: what the standard library writes
	// with the log package goes to the same JSON log.
	slog.SetDefault(log)
	return serve(ctx, cfg, ln, log, nil)
}

// listenError says what to do when addr cannot be listened on; busy names
// the setting that chooses another address when the address is in use.
func listenError(addr string, err error, setting string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("listen on %s: the address is already in use (another program, perhaps another scaiwave-auth, listens there): stop that one, or choose another address with %s", addr, setting)
	}
	return fmt.Errorf("listen on %s: %w", addr, err)
}

// applyOverrides lets flags and environment win over the validated file.
// A bad -memory-limit is a usage error.
func applyOverrides(cfg *config, o *options) error {
	if o.addrSet || cfg.Addr == "" {
		cfg.Addr = o.addr
	}
	if o.dbSet || cfg.Database == "" {
		cfg.Database = o.db
	}
	return overrideMemoryLimit(cfg, o)
}

// overrideMemoryLimit lets -memory-limit win over memory_limit_mb.
func overrideMemoryLimit(cfg *config, o *options) error {
	if !o.memoryLimitSet {
		return nil
	}
	if err := checkMemoryLimit(o.memoryLimit, *cfg.TokenCacheMB); err != nil {
		return usageErrorf("-memory-limit: %v", err)
	}
	cfg.MemoryLimitMB = &o.memoryLimit
	return nil
}

// serve runs the service on ln until ctx ends, then shuts down gracefully:
// in-flight requests finish, then the database is closed. devIDP, when not
// nil, is served under devIDPPath (-dev).
func serve(ctx context.Context, cfg *config, ln net.Listener, log *slog.Logger, devIDP http.Handler) error {
	met := newMetrics()
	st, err := openStore(ctx, cfg.Database, onParticipantCreated(met.participantCreated))
	if err != nil {
		ln.Close()
		return err
	}
	s := newServer(cfg, st, log, met, devIDP)
	if err := s.loadRevocations(ctx); err != nil {
		ln.Close()
		st.Close()
		return err
	}
	if err := s.loadRelayed(ctx); err != nil {
		ln.Close()
		st.Close()
		return err
	}
	// The runtime's environment, not run's: GOMEMLIMIT is what the
	// runtime itself read at start.
	memLimit := applyMemoryLimit(*cfg.MemoryLimitMB, os.Getenv("GOMEMLIMIT"))

	pctx, stopProviders := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProviders()
	s.startProviders(pctx)

	limited := limitListener(ln, cfg.MaxConnections)
	servers := []*http.Server{newHTTPServer(s, log)}
	servers[0].ConnState = limited.connState
	listeners := []net.Listener{limited}
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			st.Close()
			return listenError(cfg.MetricsAddr, err, `"metrics_addr" in the configuration`)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", handleMetrics(met, s.discoveryAges))
		mlimited := limitListener(mln, metricsMaxConnections)
		msrv := newHTTPServer(mux, log)
		msrv.ConnState = mlimited.connState
		servers = append(servers, msrv)
		listeners = append(listeners, mlimited)
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	log.Info("listening", "addr", ln.Addr().String(), "database", databaseForLog(cfg.Database), "tenants", len(cfg.Tenants), "version", version(),
		"memory_limit", memLimit)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	stopProviders()
	if err := st.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database: %w", err))
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		errs = append(errs, serveErr)
	}
	log.Info("stopped")
	return errors.Join(errs...)
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// Long enough for an IdP call that hits its own timeout.
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 32 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// runCheck fetches every tenant's discovery document and key set and prints
// one line per tenant. It fails when any tenant fails.
func runCheck(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	failed := 0
	for i := range cfg.Tenants {
		t := &cfg.Tenants[i]
		p := newProvider(t, quiet, nil)
		cctx, cancel := context.WithTimeout(ctx, 2*idpRequestTimeout)
		d, ks, err := p.check(cctx)
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL %s issuer=%s: %v\n", t.ID, t.Issuer, err)
			continue
		}
		note := ""
		if t.secret == "" {
			note = " public-client (" + publicClientNote + ")"
		}
		fmt.Fprintf(stdout, "ok   %s issuer=%s token_endpoint=%s keys=%d%s\n", t.ID, d.Issuer, d.TokenEndpoint, len(ks.keys), note)
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("check: %d of %d tenants failed", failed, len(cfg.Tenants))}
	}
	return nil
}

// releaseVersion is set by the release build (scripts/release.sh):
// go build -ldflags "-X main.releaseVersion=v1.2.3". It is the only
// package-level variable, since -X can set nothing else.
var releaseVersion string

// version is what -version and the start log line say of the binary.
func version() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(releaseVersion, bi)
}

// versionOf is the release version when the build set one, else the module
// version and VCS revision the binary was built from, as far as known.
func versionOf(release string, bi *debug.BuildInfo) string {
	if release != "" {
		return release
	}
	if bi == nil {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return strings.TrimSpace(v)
}
