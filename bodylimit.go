package main

import (
	"io"
	"net/http"
)

// readBody reads r's body through the maxBodyBytes limit. A body of known
// length is read into one buffer of that length rather than grown by
// copying, so that a body costs its size and no more while it is read.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if n := r.ContentLength; n > 0 && n <= maxBodyBytes {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(body)
}
