package main

// The flight group: one call per key, cancellation when the last caller
// leaves, and its bound.

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestFlightCancelledWhenLastCallerLeaves: the call goes on while one
// caller still waits, and is cancelled once none does; the key is then free
// for a new call at once.
func TestFlightCancelledWhenLastCallerLeaves(t *testing.T) {
	t.Parallel()
	g := newFlightGroup[int, string](time.Now, time.Minute, 0, 10)
	started, cancelled := make(chan struct{}, 2), make(chan struct{}, 2)
	fn := func(ctx context.Context) (string, error) {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- struct{}{}
		return "", ctx.Err()
	}
	ctx1, leave1 := context.WithCancel(context.Background())
	ctx2, leave2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := g.do(ctx1, 1, fn); errs <- err }()
	<-started
	go func() { _, err := g.do(ctx2, 1, fn); errs <- err }()
	waitUntil(time.Second, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.m[1] != nil && g.m[1].waiters == 2 })
	leave1()
	if err := <-errs; !errors.Is(err, errIdPUnavailable) {
		t.Errorf("first caller leaving: %v; want errIdPUnavailable", err)
	}
	select {
	case <-cancelled:
		t.Fatal("the call was cancelled while a caller still waited")
	case <-time.After(50 * time.Millisecond):
	}
	leave2()
	<-errs
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the call was not cancelled after the last caller left")
	}
	if g.len() != 0 {
		t.Errorf("%d keys held after the cancelled call; want 0", g.len())
	}
}

// TestFlightGroupBound: with max calls in flight, a new key fails at once
// with errIdPUnavailable, while a key in flight can still be joined.
func TestFlightGroupBound(t *testing.T) {
	t.Parallel()
	g := newFlightGroup[int, int](time.Now, time.Minute, 0, 3)
	release := make(chan struct{})
	block := func(ctx context.Context) (int, error) { <-release; return 7, nil }
	results := make(chan int, 4)
	for k := range 3 {
		go func() { v, _ := g.do(context.Background(), k, block); results <- v }()
	}
	waitUntil(time.Second, func() bool { return g.len() == 3 })
	if _, err := g.do(context.Background(), 99, block); !errors.Is(err, errIdPUnavailable) {
		t.Errorf("a 4th key with 3 in flight (max 3): %v; want errIdPUnavailable at once", err)
	}
	go func() { v, _ := g.do(context.Background(), 0, block); results <- v }()
	close(release)
	for range 4 {
		if v := <-results; v != 7 {
			t.Errorf("a caller got %d; want 7", v)
		}
	}
}
