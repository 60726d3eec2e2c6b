//go:build postgres

package main

// The proof of SPEC.md "Several replicas": three processes of the real
// binary, built with -tags postgres, on one PostgreSQL and one (fake) IdP,
// and a client that spreads its requests over them. Run by
// scripts/postgres/run.sh.

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReplicasBinaries(t *testing.T) {
	db := newPostgresSchema(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "scaiwave-auth")
	if out, err := exec.Command("go", "build", "-tags", "postgres", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags postgres: %v\n%s", err, out)
	}
	f := newFakeIDP(t)
	// The URL holds the password: from a file, as an operator would.
	tenant := fakeTenantJSON(f, "acme")
	tenant["post_login_redirect_uris"] = []string{testReturnTo}
	cfg := writeConfigFile(t, dir, map[string]any{
		"tenants":           []any{tenant},
		"database_url_file": writeTestFile(t, dir, "db-url", db+"\n"),
	})
	start := func() *binProc { return startBinary(t, bin, "-config", cfg) }
	procs := []*binProc{start(), start(), start()}
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	for i, p := range procs {
		if pw == "" || strings.Contains(p.log.String(), pw) {
			t.Errorf("replica %d logged the database password (or the test has none):\n%s", i, p.log)
		}
	}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	raw, err := sql.Open("postgres", db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })

	t.Run("200 concurrent first /register for one person: one participant", func(t *testing.T) {
		tok := f.accessToken(map[string]any{"sub": "one-person"})
		ids := make([]string, 200)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, id, err := postRegister(client, procs[i%3].addr, tok, fmt.Sprint("r", i))
				if err != nil || status != 200 {
					t.Errorf("register %d on replica %d = %d, %v", i, i%3, status, err)
				}
				ids[i] = id
			}()
		}
		wg.Wait()
		for i, id := range ids {
			if id != ids[0] {
				t.Fatalf("caller %d got participant %q, caller 0 %q", i, id, ids[0])
			}
		}
		var n int
		raw.QueryRow(`SELECT count(*) FROM participants WHERE subject = 'one-person'`).Scan(&n)
		if n != 1 {
			t.Errorf("%d participants for one person; want 1", n)
		}
	})

	t.Run("a browser sign-in: /authorize on one replica, the callback on another, the handoff on the third", func(t *testing.T) {
		browser := &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		verifier := randomValue()
		q := url.Values{"return_to": {testReturnTo}, "code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}
		resp, err := browser.Get("http://" + procs[0].addr + "/v1/auth/authorize?" + q.Encode())
		if err != nil || resp.StatusCode != http.StatusFound {
			t.Fatalf("GET /v1/auth/authorize on replica 0 = %v, %v; want 302", resp, err)
		}
		resp.Body.Close()
		cookies := resp.Cookies()
		authURL, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || len(cookies) != 1 {
			t.Fatalf("/authorize: Location %q (%v), %d cookies; want the IdP and one sign-in cookie", resp.Header.Get("Location"), err, len(cookies))
		}
		code := f.authorize(authURL.String())
		cb := url.Values{"code": {code}, "state": {authURL.Query().Get("state")}, "iss": {f.issuer}}
		req, _ := http.NewRequest("GET", "http://"+procs[1].addr+"/v1/auth/login?"+cb.Encode(), nil)
		req.AddCookie(cookies[0])
		resp, err = browser.Do(req)
		if err != nil || resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("the callback on replica 1 = %v, %v; want 303", resp, err)
		}
		resp.Body.Close()
		back, err := url.Parse(resp.Header.Get("Location"))
		h := back.Query().Get("handoff")
		if err != nil || !strings.HasPrefix(back.String(), testReturnTo) || h == "" {
			t.Fatalf("the callback sent the browser to %q; want %s with a handoff", back, testReturnTo)
		}
		redeem := func(p *binProc, verifier string) int {
			resp, err := client.PostForm("http://"+p.addr+"/v1/auth/login", url.Values{"handoff": {h}, "code_verifier": {verifier}})
			if err != nil {
				t.Fatalf("POST /v1/auth/login: %v", err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if status := redeem(procs[2], verifier); status != 200 {
			t.Fatalf("the handoff on replica 2 = %d; want 200", status)
		}
		for i, p := range procs {
			if status := redeem(p, verifier); status != 401 {
				t.Errorf("the handoff again on replica %d = %d; want 401", i, status)
			}
		}
	})

	t.Run("a back-channel logout on one replica is refused on all three within 2 s", func(t *testing.T) {
		tok := f.accessToken(map[string]any{"sub": "leaving", "sid": "sess-leaving"})
		for i, p := range procs {
			if status, _, err := postRegister(client, p.addr, tok, "before"); err != nil || status != 200 {
				t.Fatalf("before the logout, replica %d = %d, %v", i, status, err)
			}
		}
		form := url.Values{"logout_token": {f.logoutToken(map[string]any{"sid": "sess-leaving", "sub": nil})}}
		resp, err := client.PostForm("http://"+procs[0].addr+"/v1/auth/backchannel-logout", form)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("back-channel logout = %v, %v", resp, err)
		}
		resp.Body.Close()
		sent := time.Now()
		for i, p := range procs {
			for {
				status, _, err := postRegister(client, p.addr, tok, "after")
				if err == nil && status == 401 {
					break
				}
				if time.Since(sent) > 2*time.Second {
					t.Errorf("replica %d still answers %d, %v 2 s after the logout", i, status, err)
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		t.Logf("refused on all three %v after the logout", time.Since(sent).Round(10*time.Millisecond))
	})

	t.Run("50 concurrent /refresh with one token across replicas: one IdP call", func(t *testing.T) {
		f.set(func(f *fakeIDP) { f.tokenMode, f.slow = modeSlow, 300*time.Millisecond })
		defer f.set(func(f *fakeIDP) { f.tokenMode = "" })
		before := f.tokenHits.Load()
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.PostForm("http://"+procs[i%3].addr+"/v1/auth/refresh", url.Values{"refresh_token": {"rt-good"}})
				if err != nil {
					t.Errorf("refresh %d: %v", i, err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("refresh %d on replica %d = %d", i, i%3, resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		if got := f.tokenHits.Load() - before; got != 1 {
			t.Errorf("50 concurrent refreshes over 3 replicas made %d IdP calls; want 1", got)
		}
	})

	t.Run("kill -9 of a replica mid-run loses nothing answered 200", func(t *testing.T) {
		var (
			mu       sync.Mutex
			recorded = map[string]string{}
			next     atomic.Int64
			wg       sync.WaitGroup
			stop     = make(chan struct{})
		)
		for w := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					sub := fmt.Sprintf("kill-%05d", next.Add(1))
					p := procs[w%3]
					status, id, err := postRegister(client, p.addr, f.accessToken(map[string]any{"sub": sub}), sub)
					if err == nil && status == 200 && id != "" {
						mu.Lock()
						recorded[sub] = id
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(500 * time.Millisecond)
		procs[1].cmd.Process.Kill()
		<-procs[1].exited
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		lost := 0
		for sub, id := range recorded {
			var got string
			if err := raw.QueryRow(`SELECT id FROM participants WHERE tenant_id = 'acme' AND subject = $1`, sub).Scan(&got); err != nil || got != id {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("%d of %d registrations answered 200 are not in the database after kill -9", lost, len(recorded))
		}
		t.Logf("%d registrations answered 200 around a kill -9; none lost", len(recorded))
		procs[1] = start()
	})

	t.Run("the database stopped and started: 503, then recovery without restart", func(t *testing.T) {
		pgCtl(t, "stop", "-m", "fast", "-w")
		restarted := false
		defer func() {
			if !restarted {
				pgCtl(t, "start", "-w")
			}
		}()
		for i, p := range procs {
			status, _, _ := postRegister(client, p.addr, f.accessToken(map[string]any{"sub": fmt.Sprint("outage-", i)}), "outage")
			if status != 503 {
				t.Errorf("replica %d with the database stopped = %d; want 503", i, status)
			}
		}
		pgCtl(t, "start", "-w")
		restarted = true
		deadline := time.Now().Add(10 * time.Second)
		for i, p := range procs {
			for {
				status, _, err := postRegister(client, p.addr, f.accessToken(map[string]any{"sub": fmt.Sprint("outage-", i)}), "back")
				if err == nil && status == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replica %d 10 s after the database came back = %d, %v", i, status, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})

	// Last: the IdP answers from here on as relayingIDP makes it.
	t.Run("an ID token relayed by one replica is refused as a bearer by all three within 2 s", func(t *testing.T) {
		relayingIDP(t, f)
		resp, err := client.PostForm("http://"+procs[0].addr+"/v1/auth/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"}})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("password sign-in on replica 0 = %v, %v", resp, err)
		}
		var out struct {
			Data map[string]any `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		idt := tokenOf(out.Data, "id_token")
		if err != nil || idt == "" {
			t.Fatalf("password sign-in: no id_token (%v)", err)
		}
		sent := time.Now()
		for i, p := range procs {
			for {
				status, _, err := postRegister(client, p.addr, idt, "relayed")
				if err == nil && status == 401 {
					break
				}
				if time.Since(sent) > 2*time.Second {
					t.Errorf("replica %d still answers %d, %v to the relayed ID token 2 s after", i, status, err)
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		t.Logf("refused on all three %v after the sign-in", time.Since(sent).Round(10*time.Millisecond))
	})
}
