package main

// Request bodies: how they are read, and the budget of bodies in flight.

import (
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadBodyOneBuffer: a body of declared length is read into a buffer
// of exactly that length; one that ends early is an error, not a shorter
// body.
func TestReadBodyOneBuffer(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 4 << 10, maxBodyBytes} {
		r := httptest.NewRequest("POST", "/", iotest.HalfReader(strings.NewReader(strings.Repeat("a", n))))
		r.ContentLength = int64(n)
		b, err := readBody(httptest.NewRecorder(), r)
		if err != nil || len(b) != n || cap(b) != n {
			t.Errorf("readBody (Content-Length %d) = %d bytes in a buffer of %d, %v; want %d in %d, nil", n, len(b), cap(b), err, n, n)
		}
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader("short"))
	r.ContentLength = 100
	if b, err := readBody(httptest.NewRecorder(), r); err == nil {
		t.Errorf("readBody (5 of 100 declared bytes) = %q, nil; want an error", b)
	}
	r = httptest.NewRequest("POST", "/", iotest.OneByteReader(strings.NewReader("grant_type=password")))
	r.ContentLength = -1
	if b, err := readBody(httptest.NewRecorder(), r); err != nil || string(b) != "grant_type=password" {
		t.Errorf("readBody (unknown length) = %q, %v; want the body", b, err)
	}
}
