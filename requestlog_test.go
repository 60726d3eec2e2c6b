package main

// The request log line: formatted by hand exactly as slog formats it, and
// written, through the real server, for every request, a recovered panic
// and a shutdown included.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// slogRequestLine is the line slog's own handler writes for l at t.
func slogRequestLine(t *testing.T, jsonFormat bool, at time.Time, level slog.Level, l *requestLine) string {
	t.Helper()
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if jsonFormat {
		h = slog.NewJSONHandler(&buf, nil)
	}
	r := slog.NewRecord(at, level, "request", 0)
	r.AddAttrs(l.attrs()...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestRequestLogMatchesSlog(t *testing.T) {
	t.Parallel()
	plain := requestLine{method: "POST", path: "/v1/auth/register", status: 200, duration: 123456 * time.Nanosecond,
		tenant: "acme", id: "0123456789abcdef01234567", client: netip.MustParseAddr("192.0.2.1")}
	with := func(f func(l *requestLine)) requestLine { l := plain; f(&l); return l }
	lines := map[string]requestLine{
		"plain":               plain,
		"IPv6 client":         with(func(l *requestLine) { l.client = netip.MustParseAddr("2001:db8::1") }),
		"IPv4-mapped client":  with(func(l *requestLine) { l.client = netip.MustParseAddr("::ffff:192.0.2.1") }),
		"zoned client":        with(func(l *requestLine) { l.client = netip.MustParseAddr("fe80::1%eth0") }),
		"no client":           with(func(l *requestLine) { l.client = netip.Addr{} }),
		"no tenant":           with(func(l *requestLine) { l.tenant = "" }),
		"500":                 with(func(l *requestLine) { l.status = 500 }),
		"long duration":       with(func(l *requestLine) { l.duration = 3*time.Second + 7*time.Millisecond }),
		"zero duration":       with(func(l *requestLine) { l.duration = 0 }),
		"quote in path":       with(func(l *requestLine) { l.path = `/v1/"auth"` }),
		"backslash in path":   with(func(l *requestLine) { l.path = `/a\b` }),
		"space and = in path": with(func(l *requestLine) { l.path = "/a b=c" }),
		"newline in path":     with(func(l *requestLine) { l.path = "/a\nlevel=ERROR msg=forged" }),
		"NUL and DEL in path": with(func(l *requestLine) { l.path = "/a\x00\x7f" }),
		"unicode path":        with(func(l *requestLine) { l.path = "/ünïcødé/\u2028" }),
		"invalid UTF-8 path":  with(func(l *requestLine) { l.path = "/\xff\xfe" }),
		"html in path":        with(func(l *requestLine) { l.path = "/<script>&amp;" }),
		"odd method":          with(func(l *requestLine) { l.method = "M{}" }),
		"empty method":        with(func(l *requestLine) { l.method = "" }),
	}
	times := []time.Time{
		time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC),
		time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
		time.Date(2026, 3, 4, 5, 6, 7, 1_000_000, time.FixedZone("", 2*3600)),
		time.Date(2026, 3, 4, 5, 6, 7, 999_999_999, time.UTC),
	}
	for _, jsonFormat := range []bool{true, false} {
		appendLine := appendRequestText
		if jsonFormat {
			appendLine = appendRequestJSON
		}
		for _, name := range []string{"plain", "IPv6 client", "no tenant", "500", "html in path"} {
			l := lines[name]
			if _, ok := appendLine(nil, times[0], slog.LevelInfo, &l); !ok && !(name == "no tenant" && !jsonFormat) {
				t.Errorf("%s (json %v): left to slog; want it formatted by hand", name, jsonFormat)
			}
		}
		for name, l := range lines {
			for _, at := range times {
				for _, level := range []slog.Level{slog.LevelInfo, slog.LevelError} {
					var out bytes.Buffer
					log, sink := newLogger(&out, jsonFormat)
					rl := newRequestLog(log)
					rl.now = func() time.Time { return at }
					rl.write(context.Background(), level, &l)
					if out.Len() != 0 {
						t.Errorf("%s (json %v): the request line was written before a flush: %q", name, jsonFormat, out.String())
					}
					sink.Close()
					want := slogRequestLine(t, jsonFormat, at, level, &l)
					if out.String() != want {
						t.Errorf("%s (json %v, %s, %v):\n got %q\nwant %q", name, jsonFormat, at.Format(time.RFC3339Nano), level, out.String(), want)
					}
				}
			}
		}
	}
}

// logTo sends the app's log, request lines included, to w through the
// process's own logger (newLogger), as run does; close the sink to read
// every line.
func (a *testApp) logTo(w *syncBuffer) *logSink {
	log, sink := newLogger(w, true)
	a.srv.log = log
	a.srv.reqLog = newRequestLog(log)
	a.t.Cleanup(func() { sink.Close() })
	return sink
}

func TestRequestLogRecoveredPanic(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	var out syncBuffer
	sink := a.logTo(&out)
	a.srv.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	w := a.do("GET", "/v1/auth/config", "", "X-Request-Id", "panicky")
	if w.Code != 500 {
		t.Fatalf("GET /v1/auth/config with a panicking handler = %d; want 500", w.Code)
	}
	sink.Close()
	var panicked, logged bool
	for _, l := range out.logLines() {
		panicked = panicked || l["msg"] == "panic in handler" && l["request_id"] == "panicky"
		logged = logged || l["msg"] == "request" && l["request_id"] == "panicky" && l["status"] == float64(500)
	}
	if !panicked || !logged {
		t.Errorf("log after a recovered panic: panic line %v, request line with status 500 %v; want both:\n%s", panicked, logged, out.String())
	}
}

// TestRequestLogThroughRun serves requests through run and reads the log it
// writes: a line for each request, with the keys the contract names, while
// the service runs (the flusher writes it unprompted) and at shutdown.
func TestRequestLogThroughRun(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	r, c, base := startReadyRun(t, f)

	send := func(id, target string) {
		req, _ := http.NewRequest("POST", base+target, nil)
		req.Header.Set("X-Request-Id", id)
		req.Header.Set("Authorization", "Bearer "+f.accessToken())
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	find := func(id string) map[string]any {
		for _, l := range r.stderr.logLines() {
			if l["msg"] == "request" && l["request_id"] == id {
				return l
			}
		}
		return nil
	}
	send("while-running", "/v1/auth/register")
	deadline := time.Now().Add(5 * time.Second)
	for find("while-running") == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if find("while-running") == nil {
		t.Errorf("no log line for a request within 5 s of its answer, while the service runs")
	}
	send("odd-path", "/v1/%22auth%22/\u00fcber")
	send("at-shutdown", "/v1/auth/register")
	c.CloseIdleConnections()
	if err := r.stop(t, 5*time.Second); err != nil {
		t.Fatalf("run after cancel = %v; want nil", err)
	}

	for id, want := range map[string]map[string]any{
		"while-running": {"method": "POST", "path": "/v1/auth/register", "status": float64(200), "tenant": "acme", "client": "127.0.0.1"},
		"odd-path":      {"method": "POST", "path": `/v1/"auth"/über`, "status": float64(404), "tenant": "", "client": "127.0.0.1"},
		"at-shutdown":   {"method": "POST", "path": "/v1/auth/register", "status": float64(200), "tenant": "acme", "client": "127.0.0.1"},
	} {
		l := find(id)
		if l == nil {
			t.Errorf("request %s: no log line after shutdown", id)
			continue
		}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("request %s: log %s = %v; want %v", id, k, l[k], v)
			}
		}
		if d, ok := l["duration"].(float64); !ok || d <= 0 {
			t.Errorf("request %s: log duration = %v; want nanoseconds > 0", id, l["duration"])
		}
		if _, err := time.Parse(time.RFC3339Nano, l["time"].(string)); err != nil || l["level"] != "INFO" {
			t.Errorf("request %s: log time %v, level %v; want RFC 3339 and INFO", id, l["time"], l["level"])
		}
		keys := make([]string, 0, len(l))
		for k := range l {
			keys = append(keys, k)
		}
		if len(keys) != 10 {
			t.Errorf("request %s: log keys %v; want time, level, msg, method, path, status, duration, tenant, request_id, client", id, keys)
		}
	}
	// The request lines are written in order, before the line that ends the log.
	lines := strings.Split(strings.TrimSpace(r.stderr.String()), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["msg"] != "stopped" {
		t.Errorf("last log line %q; want the stopped line", lines[len(lines)-1])
	}
}

// BenchmarkRequestLog is one request line as slog writes it and as
// requestLog does, both into a sink in front of io.Discard.
func BenchmarkRequestLog(b *testing.B) {
	l := requestLine{method: "POST", path: "/v1/auth/register", status: 200, duration: 123456 * time.Nanosecond,
		tenant: "acme", id: "0123456789abcdef01234567", client: netip.MustParseAddr("192.0.2.1")}
	ctx := context.Background()
	b.Run("slog", func(b *testing.B) {
		sink := newLogSink(io.Discard, logFlushInterval)
		defer sink.Close()
		log := slog.New(slog.NewJSONHandler(sink.buffered(), nil))
		b.ReportAllocs()
		for b.Loop() {
			log.LogAttrs(ctx, slog.LevelInfo, "request", l.attrs()...)
		}
	})
	b.Run("hand", func(b *testing.B) {
		log, sink := newLogger(io.Discard, true)
		defer sink.Close()
		rl := newRequestLog(log)
		b.ReportAllocs()
		for b.Loop() {
			rl.write(ctx, slog.LevelInfo, &l)
		}
	})
}
