package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestMintLoadTokens writes access tokens of the development IdP, one per
// line, for the load runs of docs/performance.md (testdata/load/run.sh). It does
// nothing unless SCAIWAVE_MINT_TOKENS is set:
//
//	SCAIWAVE_MINT_TOKENS=40000 SCAIWAVE_MINT_ISSUER=http://127.0.0.1:8080/dev/idp \
//	SCAIWAVE_MINT_KEYDIR=/path/of/dev/db SCAIWAVE_MINT_OUT=/tmp/tokens.txt \
//	go test -run TestMintLoadTokens -v
//
// Each token has a subject never minted before, unless SCAIWAVE_MINT_SUBJECTS
// is set: then token i is for the subject load-(i mod that number), the same
// subjects on every call, so that a run can register them once and then
// send tokens never seen before for people already known. Tokens are valid
// for SCAIWAVE_MINT_TTL (a Go duration, default 1h).
func TestMintLoadTokens(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SCAIWAVE_MINT_TOKENS"))
	if n <= 0 {
		t.Skip("set SCAIWAVE_MINT_TOKENS, SCAIWAVE_MINT_ISSUER, SCAIWAVE_MINT_KEYDIR and SCAIWAVE_MINT_OUT to mint load tokens")
	}
	subjects, _ := strconv.Atoi(os.Getenv("SCAIWAVE_MINT_SUBJECTS"))
	ttl := time.Hour
	if s := os.Getenv("SCAIWAVE_MINT_TTL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("SCAIWAVE_MINT_TTL=%q: want a positive Go duration", s)
		}
		ttl = d
	}
	run := time.Now().Unix()
	d, err := newDevIDP(os.Getenv("SCAIWAVE_MINT_ISSUER"), os.Getenv("SCAIWAVE_MINT_KEYDIR"))
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]string, n)
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				id, sub := i, fmt.Sprintf("load-%d-%d", run, i)
				if subjects > 0 {
					id = i % subjects
					sub = fmt.Sprintf("load-%d", id)
				}
				u := devUser{Username: fmt.Sprintf("load%d", id), Subject: sub,
					Name: fmt.Sprintf("Load User %d", id), Email: fmt.Sprintf("load%d@example.com", id)}
				toks[i] = d.mintAccessToken(u, ttl)
			}
		}()
	}
	wg.Wait()
	f, err := os.Create(os.Getenv("SCAIWAVE_MINT_OUT"))
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	for _, tok := range toks {
		fmt.Fprintln(bw, tok)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
