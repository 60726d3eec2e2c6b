package interop

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// logoutRelay is the backchannel_logout_uri registered at a provider: it
// keeps each logout token the provider posts and hands the same form on,
// unchanged, to the service's /v1/auth/backchannel-logout, answering the
// provider with the service's status. So a test sees both what the
// provider sent (to try it as a bearer) and what the service made of it.
type logoutRelay struct {
	t         *testing.T
	srv       *httptest.Server
	target    string
	delivered chan delivery
}

// delivery is one back-channel logout token a provider sent and what the
// service answered when the relay handed it on.
type delivery struct {
	token   string
	status  int
	svcBody string
}

func newLogoutRelay(t *testing.T, target string) *logoutRelay {
	r := &logoutRelay{t: t, target: target, delivered: make(chan delivery, 8)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /backchannel-logout", r.relay)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *logoutRelay) url() string { return r.srv.URL + "/backchannel-logout" }

func (r *logoutRelay) relay(w http.ResponseWriter, req *http.Request) {
	if err := req.ParseForm(); err != nil {
		http.Error(w, "unreadable form", http.StatusBadRequest)
		return
	}
	tok := req.PostForm.Get("logout_token")
	d := delivery{token: tok}
	resp, err := apiClient.PostForm(r.target, url.Values{"logout_token": {tok}})
	if err != nil {
		d.svcBody = err.Error()
	} else {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		d.status, d.svcBody = resp.StatusCode, string(b)
	}
	r.t.Logf("the provider posted a back-channel logout token (%d chars); the service answered %d", len(tok), d.status)
	select {
	case r.delivered <- d:
	default:
	}
	if d.status == 0 {
		d.status = http.StatusBadGateway
	}
	w.WriteHeader(d.status)
}

// rpLogout runs the RP-initiated logout at the provider's
// end_session_endpoint in the browser that signed in (its session cookie),
// confirming where the provider asks, until the provider sends the browser
// to post_logout_redirect_uri. A provider sends its back-channel logout
// tokens on the way.
func rpLogout(t *testing.T, e *env, s *session) {
	t.Helper()
	if e.disc.EndSessionEndpoint == "" {
		t.Fatal("the provider's discovery names no end_session_endpoint")
	}
	back := e.svc.base + "/signed-out"
	u := e.disc.EndSessionEndpoint + "?" + url.Values{
		"id_token_hint":            {s.idToken},
		"client_id":                {e.p.clientID},
		"post_logout_redirect_uri": {back},
		"state":                    {randomString(8)},
	}.Encode()
	b := *s.browser
	b.t, b.stopAt = t, back
	if _, err := b.signIn(u); err != nil {
		t.Fatalf("RP-initiated logout at the provider: %v", err)
	}
	t.Logf("RP-initiated logout done: the provider sent the browser to post_logout_redirect_uri")
}
