package main

// The log buffer: what waits and what does not, order, the flusher, its
// bound, and no line lost at Close.

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func bufferedLine(s *logSink, line string) {
	s.appendLine(func(b []byte) []byte { return append(b, line...) })
}

func TestLogSinkOrderAndClose(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	s := newLogSink(&out, time.Hour) // the flusher never fires on its own here
	bufferedLine(s, "request 1\n")
	bufferedLine(s, "request 2\n")
	if got := out.String(); got != "" {
		t.Fatalf("buffered lines written before a flush: %q", got)
	}
	fmt.Fprint(s, "warning\n")
	if got, want := out.String(), "request 1\nrequest 2\nwarning\n"; got != want {
		t.Fatalf("after a slog line: %q; want the buffered lines, then it, at once: %q", got, want)
	}
	bufferedLine(s, "request 3\n")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bufferedLine(s, "after close\n")
	if got, want := out.String(), "request 1\nrequest 2\nwarning\nrequest 3\nafter close\n"; got != want {
		t.Errorf("after Close: %q; want %q", got, want)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestLogSinkFlushesUnprompted(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	s := newLogSink(&out, 5*time.Millisecond)
	defer s.Close()
	for i := range 3 {
		line := fmt.Sprintf("request %d\n", i)
		bufferedLine(s, line)
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(out.String(), line) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if !strings.Contains(out.String(), line) {
			t.Fatalf("a buffered line was not written within 5 s, with a 5 ms flush interval")
		}
	}
}

// gatedWriter blocks every write until open is closed: a stalled stderr.
type gatedWriter struct {
	syncBuffer
	open chan struct{}
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	<-w.open
	return w.syncBuffer.Write(p)
}

// TestLogSinkBounded logs far more than the buffer may hold while stderr is
// stalled: once the buffer is full, requests wait for the writer instead of
// growing it, and every line still comes out once stderr drains.
func TestLogSinkBounded(t *testing.T) {
	t.Parallel()
	out := &gatedWriter{open: make(chan struct{})}
	s := newLogSink(out, time.Millisecond)
	line := strings.Repeat("x", 199) + "\n"
	const n = 10_000 // 2 MB
	var most atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			bufferedLine(s, line)
			s.mu.Lock()
			b := int64(len(s.buf))
			s.mu.Unlock()
			if b > most.Load() {
				most.Store(b)
			}
		}
	}()
	// Wait until the lines have filled the buffer (or, unbounded, all of
	// them went into it), then let stderr drain.
	for most.Load() < logMaxBuffered-int64(len(line)) {
		select {
		case <-done:
		case <-time.After(time.Millisecond):
			continue
		}
		break
	}
	close(out.open)
	<-done
	s.Close()
	if m := most.Load(); m > logMaxBuffered+int64(len(line)) {
		t.Errorf("%d bytes buffered while stderr was stalled; want at most the %d-byte bound and a line", m, logMaxBuffered)
	}
	if got := strings.Count(out.String(), "\n"); got != n {
		t.Errorf("%d lines written; want %d", got, n)
	}
}

func TestLogSinkConcurrentLinesAllWritten(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	s := newLogSink(&out, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				if i%100 == 0 {
					fmt.Fprintf(s, "slog %d %d\n", g, i)
				} else {
					bufferedLine(s, fmt.Sprintf("request %d %d\n", g, i))
				}
			}
		}()
	}
	wg.Wait()
	s.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8000 {
		t.Fatalf("%d lines written; want 8000", len(lines))
	}
	// Each goroutine's lines come out in the order it wrote them.
	next := map[string]int{}
	for _, l := range lines {
		var kind string
		var g, i int
		if _, err := fmt.Sscanf(l, "%s %d %d", &kind, &g, &i); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if k := fmt.Sprint(g); i != next[k] {
			t.Fatalf("goroutine %d: line %d after line %d; want them in order", g, i, next[k]-1)
		}
		next[fmt.Sprint(g)] = i + 1
	}
}
