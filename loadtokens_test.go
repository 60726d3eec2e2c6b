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

// TestMintLoadTokens writes access tokens of the development IdP, one
// distinct subject per line, for the load runs in the README. It does
// nothing unless SCAIWAVE_MINT_TOKENS is set:
//
//	SCAIWAVE_MINT_TOKENS=40000 SCAIWAVE_MINT_ISSUER=http://127.0.0.1:8080/dev/idp \
//	SCAIWAVE_MINT_KEYDIR=/path/of/dev/db SCAIWAVE_MINT_OUT=/tmp/tokens.txt \
//	go test -run TestMintLoadTokens -v
func TestMintLoadTokens(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SCAIWAVE_MINT_TOKENS"))
	if n <= 0 {
		t.Skip("set SCAIWAVE_MINT_TOKENS, SCAIWAVE_MINT_ISSUER, SCAIWAVE_MINT_KEYDIR and SCAIWAVE_MINT_OUT to mint load tokens")
	}
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
				u := devUser{Username: fmt.Sprintf("load%d", i), Subject: fmt.Sprintf("load-%d-%d", time.Now().Unix(), i),
					Name: fmt.Sprintf("Load User %d", i), Email: fmt.Sprintf("load%d@example.com", i)}
				toks[i] = d.mintAccessToken(u, time.Hour)
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
