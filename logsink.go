package main

import (
	"io"
	"sync"
	"time"
)

// Bounds of the log buffer: what a crash can lose is what it holds.
const (
	// logFlushInterval is the longest a buffered line waits to be written.
	logFlushInterval = 50 * time.Millisecond
	// logFlushBytes wakes the writer early; logMaxBuffered makes a request
	// write the buffer itself, so that a stalled stderr holds up requests
	// rather than growing memory.
	logFlushBytes  = 64 << 10
	logMaxBuffered = 256 << 10
)

// logSink is the process's log output: a buffer in front of w that a
// goroutine writes out at least every logFlushInterval, so that a busy
// service makes one write(2) for many log lines instead of one for each.
//
// Lines come in two ways. Write, for the slog handlers, writes the line at
// once, behind whatever is buffered, so warnings, errors and the start and
// stop lines are never held back and the order of lines is kept. The request
// log lines go through buffered and wait for the next flush. Close writes
// out what is left; after it every line is written at once. A kill -9 (or a
// runtime fatal error, or a panic outside a handler) loses the lines of at
// most the last logFlushInterval: the buffer, at most logMaxBuffered bytes
// and a line, and the one being written out.
type logSink struct {
	w        io.Writer
	interval time.Duration

	mu     sync.Mutex // guards buf and closed
	buf    []byte
	closed bool

	// wmu serialises writes to w, so that buffers are written in the order
	// they were filled; it guards spare.
	wmu   sync.Mutex
	spare []byte

	pending chan struct{} // a line was buffered into an empty buffer
	full    chan struct{} // the buffer passed logFlushBytes
	stop    chan struct{}
	done    chan struct{}
}

// newLogSink starts a sink in front of w, flushing at least every interval.
func newLogSink(w io.Writer, interval time.Duration) *logSink {
	s := &logSink{
		w:        w,
		interval: interval,
		buf:      make([]byte, 0, logFlushBytes),
		spare:    make([]byte, 0, logFlushBytes),
		pending:  make(chan struct{}, 1),
		full:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go s.run()
	return s
}

// Write writes p, one log line, behind what is buffered, before it returns.
func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf = append(s.buf, p...)
	s.mu.Unlock()
	if err := s.flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// buffered returns an io.Writer whose lines wait for the next flush.
func (s *logSink) buffered() io.Writer { return bufferedSink{s} }

type bufferedSink struct{ s *logSink }

func (b bufferedSink) Write(p []byte) (int, error) {
	b.s.appendLine(func(buf []byte) []byte { return append(buf, p...) })
	return len(p), nil
}

// appendLine lets add append one line to the buffer, to be written with the
// next flush.
func (s *logSink) appendLine(add func([]byte) []byte) {
	s.mu.Lock()
	wasEmpty := len(s.buf) == 0
	s.buf = add(s.buf)
	n, closed := len(s.buf), s.closed
	s.mu.Unlock()
	switch {
	case closed || n >= logMaxBuffered:
		s.flush()
	case n >= logFlushBytes:
		notify(s.full)
	case wasEmpty:
		notify(s.pending)
	}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// flush writes out what is buffered.
func (s *logSink) flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	b := s.buf
	s.buf = s.spare[:0]
	s.mu.Unlock()
	var err error
	if len(b) > 0 {
		_, err = s.w.Write(b)
	}
	if cap(b) > 2*logMaxBuffered {
		b = make([]byte, 0, logFlushBytes) // let a burst's buffer go
	}
	s.spare = b[:0]
	return err
}

// run writes the buffer out interval after a line arrives in an empty one,
// or as soon as it fills, until Close.
func (s *logSink) run() {
	defer close(s.done)
	t := time.NewTimer(s.interval)
	t.Stop()
	for {
		select {
		case <-s.pending:
			// Give the line company for up to interval.
			t.Reset(s.interval)
			select {
			case <-t.C:
			case <-s.full:
				t.Stop()
			case <-s.stop:
				t.Stop()
				return
			}
		case <-s.full:
		case <-s.stop:
			return
		}
		s.flush()
	}
}

// Close writes out what is buffered and stops the flushing goroutine; lines
// that come later are written at once. It is safe to call more than once.
func (s *logSink) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if !already {
		close(s.stop)
		<-s.done
	}
	return s.flush()
}
