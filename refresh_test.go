package main

// POST /v1/auth/refresh: rotation, errors, scope, and the replay of one
// answer to concurrent and repeated refreshes with the same token.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	off, on := false, true
	tests := []struct {
		name       string
		rotation   *bool
		idpRefresh string // "" means the IdP returns none
		want       string
	}{
		{"rotation by default", nil, "rt-new", "rt-new"},
		{"rotation on", &on, "rt-new", "rt-new"},
		{"rotation off", &off, "rt-new", "rt-sent"},
		{"IdP returns none", nil, "", "rt-sent"},
		{"IdP returns none, rotation off", &off, "", "rt-sent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			cfg := f.tenantConfig()
			cfg.Features.Auth.RefreshTokenRotation = tc.rotation
			a := newTestApp(t, []tenantConfig{cfg})
			answer := f.tokTokens(f.idToken(""))
			delete(answer, "refresh_token")
			if tc.idpRefresh != "" {
				answer["refresh_token"] = tc.idpRefresh
			}
			f.set(func(f *fakeIDP) { f.tokenFn = tokAnswer(200, answer) })
			for _, attempt := range []string{"first", "replayed"} {
				w := a.do("POST", "/v1/auth/refresh", "refresh_token=rt-sent")
				if !tokCheck(t, "/v1/auth/refresh", tc.name+", "+attempt, w, 200, "") {
					return
				}
				d := tokCheckTokens(t, "/v1/auth/refresh", tc.name+", "+attempt, w)
				if d["refresh_token"] != tc.want {
					t.Errorf("POST /v1/auth/refresh (%s, %s): refresh_token %v; want %s", tc.name, attempt, d["refresh_token"], tc.want)
				}
				if d["access_token"] != answer["access_token"] || d["id_token"] != answer["id_token"] {
					t.Errorf("POST /v1/auth/refresh (%s, %s): tokens are not the IdP's", tc.name, attempt)
				}
			}
			var form url.Values
			f.set(func(f *fakeIDP) { form = f.lastForm })
			if form.Get("grant_type") != "refresh_token" || form.Get("refresh_token") != "rt-sent" {
				t.Errorf("POST /v1/auth/refresh (%s): IdP got %v", tc.name, form)
			}
		})
	}
}

func TestRefreshErrors(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	evilKey := newTestKey(t, jose.RS256, "k1", 2)
	past := time.Now().Add(-10 * time.Minute).Unix()
	answer := func(idToken string) tokAnswerFn { return tokAnswer(200, f.tokTokens(idToken)) }
	tests := []struct {
		name       string
		query      string // appended to the path
		body       string
		answer     tokAnswerFn // nil: defaultToken
		wantStatus int
		wantCode   string
		wantIdP    bool
	}{
		{"missing refresh_token", "", "scope=openid", nil, 400, "SW_BAD_REQUEST", false},
		{"empty refresh_token", "", "refresh_token=", nil, 400, "SW_BAD_REQUEST", false},
		{"refresh_token given twice", "", "refresh_token=rt-good&refresh_token=rt-good", nil, 400, "SW_BAD_REQUEST", false},
		{"refresh token in the query only", "?refresh_token=rt-good", "", nil, 400, "SW_BAD_REQUEST", false},
		{"IdP invalid_grant", "", "refresh_token=rt-unknown", nil, 401, "SW_AUTH_REFRESH_FAILED", true},
		{"ID token: bad signature", "", "refresh_token=rt-1", answer(signWith(t, evilKey, f.idClaims(""), nil)), 401, "SW_AUTH_REFRESH_FAILED", true},
		{"ID token: wrong audience", "", "refresh_token=rt-2", answer(f.idToken("", map[string]any{"aud": "another-client", "azp": nil})), 401, "SW_AUTH_REFRESH_FAILED", true},
		{"ID token: wrong issuer", "", "refresh_token=rt-3", answer(f.idToken("", map[string]any{"iss": "https://evil.example"})), 401, "SW_AUTH_REFRESH_FAILED", true},
		{"ID token: expired", "", "refresh_token=rt-4", answer(f.idToken("", map[string]any{"exp": past, "iat": past - 300})), 401, "SW_AUTH_REFRESH_FAILED", true},
		{"ID token: missing sub", "", "refresh_token=rt-5", answer(f.idToken("", map[string]any{"sub": nil})), 401, "SW_AUTH_REFRESH_FAILED", true},
		{"ID token: valid", "", "refresh_token=rt-6", answer(f.idToken("")), 200, "", true},
		{"no ID token", "", "refresh_token=rt-7", answer(""), 200, "", true},
	}
	for _, tc := range tests {
		f.set(func(f *fakeIDP) { f.tokenFn = tc.answer })
		before := f.tokenHits.Load()
		w := a.do("POST", "/v1/auth/refresh"+tc.query, tc.body)
		if tokCheck(t, "/v1/auth/refresh", tc.name, w, tc.wantStatus, tc.wantCode) && w.Code == 200 {
			tokCheckTokens(t, "/v1/auth/refresh", tc.name, w)
		}
		if called := f.tokenHits.Load() > before; called != tc.wantIdP {
			t.Errorf("POST /v1/auth/refresh (%s): token endpoint called = %v; want %v", tc.name, called, tc.wantIdP)
		}
	}
}

func TestRefreshScope(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	noID := tokAnswer(200, f.tokTokens(""))
	f.set(func(f *fakeIDP) { f.tokenFn = noID })
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tests := []struct {
		name, body string
		wantScope  string // "" means absent
	}{
		{"scope given", "refresh_token=rt-a&scope=openid+email", "openid email"},
		{"scope given (JSON)", `{"refresh_token":"rt-b","scope":"openid"}`, "openid"},
		{"no scope", "refresh_token=rt-c", ""},
	}
	for _, tc := range tests {
		hdr := []string{}
		if strings.HasPrefix(tc.body, "{") {
			hdr = []string{"Content-Type", "application/json"}
		}
		w := a.do("POST", "/v1/auth/refresh", tc.body, hdr...)
		tokCheck(t, "/v1/auth/refresh", tc.name, w, 200, "")
		var form url.Values
		f.set(func(f *fakeIDP) { form = f.lastForm })
		if form.Get("scope") != tc.wantScope || form.Has("scope") != (tc.wantScope != "") {
			t.Errorf("POST /v1/auth/refresh (%s): IdP got scope %q (present %v); want %q", tc.name, form.Get("scope"), form.Has("scope"), tc.wantScope)
		}
	}
	// The same token with another scope is another request to the IdP.
	before := f.tokenHits.Load()
	a.do("POST", "/v1/auth/refresh", "refresh_token=rt-a&scope=openid")
	if f.tokenHits.Load() == before {
		t.Errorf("POST /v1/auth/refresh with another scope was answered from the replay of the first")
	}
}

// tokOneTimeRefresh is a token endpoint that, like Keycloak with refresh
// token reuse detection, accepts the refresh token rt only once; each call
// takes delay. calls counts the calls.
func (f *fakeIDP) tokOneTimeRefresh(rt string, delay time.Duration, calls *atomic.Int64) tokAnswerFn {
	var used atomic.Bool
	return func(form url.Values, r *http.Request) (int, any) {
		n := calls.Add(1)
		time.Sleep(delay)
		if form.Get("refresh_token") != rt || used.Swap(true) {
			return 400, map[string]string{"error": "invalid_grant", "error_description": "Maximum allowed refresh token reuse exceeded"}
		}
		return 200, map[string]any{
			"access_token":  f.accessToken(map[string]any{"jti": fmt.Sprintf("at-%d", n)}),
			"token_type":    "Bearer",
			"expires_in":    300,
			"refresh_token": fmt.Sprintf("rt-rotated-%d", n),
			"id_token":      f.idToken(""),
		}
	}
}

func TestRefreshConcurrentRotation(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	var calls atomic.Int64
	f.set(func(f *fakeIDP) { f.tokenFn = f.tokOneTimeRefresh("rt-once", 100*time.Millisecond, &calls) })
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})

	const n = 20
	type result struct {
		status          int
		code            string
		access, refresh string
		noStore         bool
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			w := a.do("POST", "/v1/auth/refresh", "refresh_token=rt-once")
			var e envelope
			json.Unmarshal(w.Body.Bytes(), &e)
			r := result{status: w.Code, noStore: w.Header().Get("Cache-Control") == "no-store"}
			if e.Error != nil {
				r.code = e.Error.Code
			}
			r.access, _ = e.Data["access_token"].(string)
			r.refresh, _ = e.Data["refresh_token"].(string)
			results[i] = r
		})
	}
	close(start)
	wg.Wait()
	if c := calls.Load(); c != 1 {
		t.Errorf("%d concurrent refreshes with one token made %d IdP calls; want 1", n, c)
	}
	first := results[0]
	for i, r := range results {
		if r.status != 200 || !r.noStore {
			t.Errorf("concurrent POST /v1/auth/refresh #%d = %d %s (no-store %v); want 200", i, r.status, r.code, r.noStore)
			continue
		}
		if r.access == "" || r.access != first.access || r.refresh != first.refresh {
			t.Errorf("concurrent POST /v1/auth/refresh #%d got tokens (%.20s…, %s); #0 got (%.20s…, %s); want the same", i, r.access, r.refresh, first.access, first.refresh)
		}
	}
	if first.refresh != "rt-rotated-1" {
		t.Errorf("concurrent refreshes returned refresh token %q; want the rotated rt-rotated-1", first.refresh)
	}

	// A repeat within the replay window (a retry, a late tab) gets the same
	// answer without asking the IdP, which would call it a reuse.
	w := a.do("POST", "/v1/auth/refresh", "refresh_token=rt-once")
	if tokCheck(t, "/v1/auth/refresh", "repeat within the replay window", w, 200, "") {
		d := tokCheckTokens(t, "/v1/auth/refresh", "repeat within the replay window", w)
		if d["access_token"] != first.access || d["refresh_token"] != first.refresh {
			t.Errorf("POST /v1/auth/refresh repeated within the window: other tokens than the first answer")
		}
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("a repeat within the replay window made the IdP calls %d; want 1", c)
	}

	// After the window the answer is gone, and the IdP has its say.
	p := a.srv.tenants[0].prov
	p.now = func() time.Time { return time.Now().Add(refreshReplayWindow + time.Second) }
	w = a.do("POST", "/v1/auth/refresh", "refresh_token=rt-once")
	tokCheck(t, "/v1/auth/refresh", "repeat after the replay window", w, 401, "SW_AUTH_REFRESH_FAILED")
	if c := calls.Load(); c != 2 {
		t.Errorf("a repeat after the replay window made the IdP calls %d; want 2", c)
	}
}

func TestRefreshFailuresAreNotReplayed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		first      tokAnswerFn
		wantStatus int
		wantCode   string
	}{
		{"IdP 500", tokOAuthError(500, "server_error"), 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"IdP invalid_grant", tokOAuthError(400, "invalid_grant"), 401, "SW_AUTH_REFRESH_FAILED"},
		{"IdP invalid_client", tokOAuthError(401, "invalid_client"), 500, "SW_INTERNAL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			var calls atomic.Int64
			f.set(func(f *fakeIDP) {
				f.tokenFn = func(form url.Values, r *http.Request) (int, any) {
					if calls.Add(1) == 1 {
						return tc.first(form, r)
					}
					return 200, f.tokTokens(f.idToken(""))
				}
			})
			a := newTestApp(t, []tenantConfig{f.tenantConfig()})
			w := a.do("POST", "/v1/auth/refresh", "refresh_token=rt-flaky")
			tokCheck(t, "/v1/auth/refresh", tc.name+", first try", w, tc.wantStatus, tc.wantCode)
			w = a.do("POST", "/v1/auth/refresh", "refresh_token=rt-flaky")
			tokCheck(t, "/v1/auth/refresh", tc.name+", retry", w, 200, "")
			if c := calls.Load(); c != 2 {
				t.Errorf("POST /v1/auth/refresh (%s): a retry after a failure made %d IdP calls in all; want 2", tc.name, c)
			}
		})
	}
}

// TestRefreshReplaySeconds: features.auth.refresh_replay_seconds sets how
// long a refresh's answer is given again (the security model's trade: a
// thief replaying a just-rotated refresh token gets it too); 0 replays it
// to nobody after the call, and the IdP judges every later use.
func TestRefreshReplaySeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		seconds   int
		wantCalls int64
		wantCode  string
	}{
		{0, 2, "SW_AUTH_REFRESH_FAILED"},
		{30, 1, ""},
	} {
		f := newFakeIDP(t)
		var calls atomic.Int64
		f.set(func(f *fakeIDP) { f.tokenFn = f.tokOneTimeRefresh("rt-once", 0, &calls) })
		cfg := f.tenantConfig()
		cfg.Features.Auth.RefreshReplaySeconds = &tc.seconds
		a := newTestApp(t, []tenantConfig{cfg})
		step := fmt.Sprintf("refresh_replay_seconds %d", tc.seconds)
		tokCheck(t, "/v1/auth/refresh", step+", first use", a.do("POST", "/v1/auth/refresh", "refresh_token=rt-once"), 200, "")
		// 20 s later: inside a 30 s window, outside the default 10 s one.
		a.srv.tenants[0].prov.now = func() time.Time { return time.Now().Add(20 * time.Second) }
		w := a.do("POST", "/v1/auth/refresh", "refresh_token=rt-once")
		wantStatus := 200
		if tc.wantCode != "" {
			wantStatus = 401
		}
		tokCheck(t, "/v1/auth/refresh", step+", second use 20 s later", w, wantStatus, tc.wantCode)
		if c := calls.Load(); c != tc.wantCalls {
			t.Errorf("POST /v1/auth/refresh (%s): the IdP was called %d times; want %d", step, c, tc.wantCalls)
		}
	}
}
