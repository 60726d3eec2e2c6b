package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAttackDevDNSRebinding sends -dev the requests a browser would after
// a DNS rebinding (evil.example resolving to 127.0.0.1): the Host is the
// attacker's, and every route, the development IdP's included, answers 404
// in the envelope. Loopback names and addresses, with any port, still pass.
func TestAttackDevDNSRebinding(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	base := "http://" + addr
	r := startRun(t, []string{"-dev", "-addr", addr, "-db", filepath.Join(t.TempDir(), "dev.db")}, nil)
	c := newTestClient(t)
	waitStatus(t, r, c, base+"/readyz", 200, 10*time.Second)
	_, port, _ := strings.Cut(addr, ":")

	send := func(method, path, host, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Origin", "http://"+host)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e envelope
		json.Unmarshal(b, &e)
		code := ""
		if e.Error != nil {
			code = e.Error.Code
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "" && resp.StatusCode == 404 {
			t.Errorf("%s %s (Host %s): CORS headers on a refused request", method, path, host)
		}
		return resp.StatusCode, code
	}
	password := "grant_type=password&username=alice&password=alice-password"
	for _, host := range []string{"evil.example", "evil.example:" + port, "127.0.0.1.evil.example", "localhost.evil.example", "[::2]:" + port, "10.0.0.1"} {
		for _, rq := range [][3]string{
			{"POST", "/v1/auth/token", password},
			{"GET", "/v1/auth/config", ""},
			{"OPTIONS", "/v1/auth/token", ""},
			{"GET", "/dev/idp/.well-known/openid-configuration", ""},
			{"GET", "/readyz", ""},
		} {
			if status, code := send(rq[0], rq[1], host, rq[2]); status != 404 || code != "SW_NOT_FOUND" {
				t.Errorf("%s %s with Host %q = %d %s; want 404 SW_NOT_FOUND", rq[0], rq[1], host, status, code)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST", "localhost.", "127.0.0.2", "[::1]:" + port, "[::1]"} {
		if status, code := send("POST", "/v1/auth/token", host, password); status != 200 {
			t.Errorf("POST /v1/auth/token with Host %q = %d %s; want 200", host, status, code)
		}
	}
}

// TestServiceAnswersAnyHost: outside -dev, the Host check does not apply
// (a single tenant without hosts serves every Host).
func TestServiceAnswersAnyHost(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	if w := a.do("GET", "http://auth.example.com/v1/auth/config", ""); w.Code != 200 {
		t.Errorf("GET /v1/auth/config with Host auth.example.com = %d %s; want 200", w.Code, w.Body)
	}
}
