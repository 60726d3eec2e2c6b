package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
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
//
// With SCAIWAVE_MINT_DPOP_HTU (the URL the proofs are for), the tokens are
// bound to one ES256 key made here, and each line is a token, a space and
// a fresh DPoP proof for POST to that URL; with SCAIWAVE_MINT_DPOP_SAME=1
// every line has the first token (a cached token, a new proof each time).
// Proofs are good for a minute: mint them just before the run.
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
	var dpopKey dpopKey
	htu, sameToken := os.Getenv("SCAIWAVE_MINT_DPOP_HTU"), os.Getenv("SCAIWAVE_MINT_DPOP_SAME") == "1"
	if htu != "" {
		dpopKey = newDPoPKey(t, jose.ES256)
	}
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
				if dpopKey.priv != nil {
					if i > 0 && sameToken {
						continue
					}
					now := d.now()
					c := d.accessClaims(devClientID, u, devDefaultScope, "", now, now, ttl)
					c.Confirmation = &devConfirmation{JKT: dpopKey.jkt}
					tok, err := d.signAccessClaims(c)
					if err != nil {
						panic(err)
					}
					toks[i] = tok
					continue
				}
				toks[i] = d.mintAccessToken(u, ttl)
			}
		}()
	}
	wg.Wait()
	if htu != "" {
		// The proofs last, so that they are as fresh as they can be.
		first := toks[0] // read before any worker rewrites line 0
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					tok := toks[i]
					if sameToken {
						tok = first
					}
					toks[i] = tok + " " + dpopKey.proof(t, "POST", htu, tok)
				}
			}()
		}
		wg.Wait()
	}
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
