package main

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"time"
)

// newLogger returns the process's logger, JSON lines on w (text lines with
// json false, for -dev), written through a logSink, and that sink, which the
// caller closes last so that no line is lost at exit.
func newLogger(w io.Writer, json bool) (*slog.Logger, *logSink) {
	sink := newLogSink(w, logFlushInterval)
	h := &logHandler{sink: sink, json: json}
	if json {
		h.Handler = slog.NewJSONHandler(sink, nil)
		h.slow = slog.NewJSONHandler(sink.buffered(), nil)
	} else {
		h.Handler = slog.NewTextHandler(sink, nil)
		h.slow = slog.NewTextHandler(sink.buffered(), nil)
	}
	return slog.New(h), sink
}

// logHandler is the handler of newLogger's logger: slog's own, writing
// through the sink, which the request log line shares (requestLog).
type logHandler struct {
	slog.Handler
	sink *logSink
	json bool
	// slow is the same format writing buffered lines: the request lines
	// whose values the hand formatting leaves to slog.
	slow slog.Handler
}

// requestLine is what the log line of one request says, in this order.
type requestLine struct {
	method, path string
	status       int
	duration     time.Duration
	tenant, id   string
	client       netip.Addr
}

// requestLog writes the one log line of each request. With a logger of
// newLogger it formats the line by hand into the sink's buffer, exactly as
// slog would (same keys, order and encoding; TestRequestLogMatchesSlog), for
// a fraction of the cost of a slog record; a value that would need escaping
// or quoting sends the line through slog instead. With any other logger it
// logs through that logger.
type requestLog struct {
	log *slog.Logger
	h   *logHandler // nil: not newLogger's
	now func() time.Time
}

func newRequestLog(log *slog.Logger) *requestLog {
	h, _ := log.Handler().(*logHandler)
	return &requestLog{log: log, h: h, now: time.Now}
}

// write logs l at level, as of now.
func (rl *requestLog) write(ctx context.Context, level slog.Level, l *requestLine) {
	if rl.h == nil {
		rl.log.LogAttrs(ctx, level, "request", l.attrs()...)
		return
	}
	if !rl.h.Enabled(ctx, level) {
		return
	}
	now := rl.now()
	done := false
	rl.h.sink.appendLine(func(b []byte) []byte {
		n := len(b)
		if rl.h.json {
			b, done = appendRequestJSON(b, now, level, l)
		} else {
			b, done = appendRequestText(b, now, level, l)
		}
		if !done {
			return b[:n]
		}
		return b
	})
	if !done {
		r := slog.NewRecord(now, level, "request", 0)
		r.AddAttrs(l.attrs()...)
		rl.h.slow.Handle(ctx, r)
	}
}

// attrs are the line's fields as slog attributes.
func (l *requestLine) attrs() []slog.Attr {
	return []slog.Attr{
		slog.String("method", l.method),
		slog.String("path", l.path),
		slog.Int("status", l.status),
		slog.Duration("duration", l.duration),
		slog.String("tenant", l.tenant),
		slog.String("request_id", l.id),
		slog.String("client", l.client.String()),
	}
}

// appendRequestJSON appends the line as slog's JSONHandler writes it. It
// reports false, with b in any state, when a value needs escaping.
func appendRequestJSON(b []byte, t time.Time, level slog.Level, l *requestLine) ([]byte, bool) {
	ok := true
	str := func(key, v string) {
		b = append(b, `,"`...)
		b = append(b, key...)
		b = append(b, `":"`...)
		ok = ok && plainJSON(v)
		b = append(b, v...)
		b = append(b, '"')
	}
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":"request"`...)
	str("method", l.method)
	str("path", l.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(l.duration), 10)
	str("tenant", l.tenant)
	str("request_id", l.id)
	if !l.client.IsValid() || l.client.Zone() != "" {
		return b, false
	}
	b = append(b, `,"client":"`...)
	b = l.client.AppendTo(b)
	b = append(b, "\"}\n"...)
	return b, ok
}

// appendRequestText appends the line as slog's TextHandler writes it. It
// reports false, with b in any state, when a value needs quoting.
func appendRequestText(b []byte, t time.Time, level slog.Level, l *requestLine) ([]byte, bool) {
	ok := true
	str := func(key, v string) {
		b = append(b, ' ')
		b = append(b, key...)
		b = append(b, '=')
		ok = ok && v != "" && plainText(v)
		b = append(b, v...)
	}
	b = append(b, "time="...)
	b = appendRFC3339Millis(b, t)
	b = append(b, " level="...)
	b = append(b, level.String()...)
	b = append(b, " msg=request"...)
	str("method", l.method)
	str("path", l.path)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, " duration="...)
	b = append(b, l.duration.String()...)
	str("tenant", l.tenant)
	str("request_id", l.id)
	if !l.client.IsValid() || l.client.Zone() != "" {
		return b, false
	}
	b = append(b, " client="...)
	b = l.client.AppendTo(b)
	b = append(b, '\n')
	return b, ok
}

// appendRFC3339Millis is slog's text time: RFC 3339 with exactly three
// digits of milliseconds.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	// RFC3339Nano drops trailing zeros; a tenth of a millisecond added to
	// the truncated time keeps four digits, of which the fourth is dropped.
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	b = t.Truncate(time.Millisecond).Add(time.Millisecond/10).AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// plainJSON reports whether s is printable ASCII with nothing to escape in
// a JSON string.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// plainText reports whether s is printable ASCII that slog's TextHandler
// writes unquoted.
func plainText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '=' {
			return false
		}
	}
	return true
}
