// Command trivial is the floor of the load runs (testdata/load/run.sh): a
// net/http server that answers every request with the smallest success
// envelope, so that a run of scaiwave-auth can be given as a ratio of what
// the machine serves at all.
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "listen address")
	flag.Parse()
	body := []byte(`{"data":{"ok":true}}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, h))
}
