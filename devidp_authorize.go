package main

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// devAuthRequest is an authorization request, as received by GET /authorize
// and carried through the login form's hidden fields.
type devAuthRequest struct {
	ClientID, RedirectURI, ResponseType, ResponseMode, Scope string
	State, Nonce, CodeChallenge, CodeChallengeMethod         string
}

// devField is one hidden form field.
type devField struct{ Name, Value string }

// fields lists the request's non-empty parameters, in a fixed order.
func (a devAuthRequest) fields() []devField {
	all := []devField{
		{"client_id", a.ClientID}, {"redirect_uri", a.RedirectURI}, {"response_type", a.ResponseType},
		{"response_mode", a.ResponseMode}, {"scope", a.Scope}, {"state", a.State}, {"nonce", a.Nonce},
		{"code_challenge", a.CodeChallenge}, {"code_challenge_method", a.CodeChallengeMethod},
	}
	var out []devField
	for _, f := range all {
		if f.Value != "" {
			out = append(out, f)
		}
	}
	return out
}

// devPageError refuses an authorization request on an error page: the
// client or redirect URI is not trusted, and redirecting to it would make the
// IdP an open redirector.
type devPageError struct{ msg string }

func (e *devPageError) Error() string { return e.msg }

// devParseAuthRequest reads and checks an authorization request. It returns
// the request even on error, so a redirectable error can reach the client: a
// *devPageError when the client or redirect URI is bad, else a *devOAuthError.
func devParseAuthRequest(v url.Values) (devAuthRequest, error) {
	req := devAuthRequest{
		ClientID: v.Get("client_id"), RedirectURI: v.Get("redirect_uri"),
		ResponseType: v.Get("response_type"), ResponseMode: v.Get("response_mode"),
		Scope: v.Get("scope"), State: v.Get("state"), Nonce: v.Get("nonce"),
		CodeChallenge: v.Get("code_challenge"), CodeChallengeMethod: v.Get("code_challenge_method"),
	}
	if len(v["client_id"]) > 1 || req.ClientID != devClientID {
		return req, &devPageError{"unknown client_id"}
	}
	if len(v["redirect_uri"]) > 1 || !devLoopbackURL(req.RedirectURI) {
		return req, &devPageError{"redirect_uri must be an absolute http(s) URL on a loopback host (127.0.0.0/8, ::1 or localhost)"}
	}
	// From here on the redirect URI is trusted, and errors go back to it.
	for _, vals := range v {
		if len(vals) > 1 {
			return req, devInvalidRequest("a parameter is repeated")
		}
	}
	if v.Get("request") != "" {
		return req, &devOAuthError{code: "request_not_supported", desc: "request objects are not supported"}
	}
	if v.Get("request_uri") != "" {
		return req, &devOAuthError{code: "request_uri_not_supported", desc: "request_uri is not supported"}
	}
	switch req.ResponseType {
	case "code":
	case "":
		return req, devInvalidRequest("response_type is required")
	default:
		return req, &devOAuthError{code: "unsupported_response_type", desc: "only response_type code is supported"}
	}
	if m := req.ResponseMode; m != "" && m != "query" && m != "form_post" {
		return req, devInvalidRequest("response_mode must be query or form_post")
	}
	scope, err := devParseScope(req.Scope)
	if err != nil {
		return req, err
	}
	if !devHasWord(scope, "openid") {
		return req, devInvalidScope("scope must contain openid")
	}
	req.Scope = scope
	return req, devCheckChallenge(req.CodeChallenge, req.CodeChallengeMethod)
}

// devCheckChallenge checks the PKCE parameters of an authorization request
// (RFC 7636): optional, but S256 only, since plain protects nothing.
func devCheckChallenge(challenge, method string) error {
	switch {
	case challenge == "" && method != "":
		return devInvalidRequest("code_challenge_method without code_challenge")
	case challenge == "":
		return nil
	case method != "S256": // an absent method means plain
		return devInvalidRequest("code_challenge_method must be S256")
	case len(challenge) != 43 || strings.Trim(challenge, devBase64URL) != "":
		return devInvalidRequest("code_challenge must be a base64url SHA-256 digest")
	}
	return nil
}

// handleAuthorize shows the login form for a valid authorization request.
func (d *devIDP) handleAuthorize() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		req, err := devParseAuthRequest(q)
		if err == nil && devHasWord(q.Get("prompt"), "none") {
			// No browser session is kept, so a silent sign-in can never succeed.
			err = &devOAuthError{code: "login_required", desc: "the user must sign in"}
		}
		if err != nil {
			d.refuse(w, r, req, err, http.StatusFound)
			return
		}
		d.renderLogin(w, req, q.Get("login_hint"), "")
	})
}

// handleLogin checks the login form's credentials and, when they are right,
// sends a fresh code back to the client. The request is checked again: the
// hidden fields are as untrusted as the original query.
func (d *devIDP) handleLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, devMaxBody)
		if err := r.ParseForm(); err != nil {
			d.renderHTML(w, http.StatusBadRequest, devErrorHTML("the sign-in form could not be read"))
			return
		}
		form := r.PostForm
		req, err := devParseAuthRequest(form)
		if err != nil {
			d.refuse(w, r, req, err, http.StatusSeeOther)
			return
		}
		u, ok := d.checkPassword(form.Get("username"), form.Get("password"))
		if !ok {
			d.renderLogin(w, req, form.Get("username"), "invalid username or password")
			return
		}
		code := devRandom(32)
		now := d.now()
		d.mu.Lock()
		d.sweepLocked(now)
		d.codes[code] = &devCode{req: req, user: u, authTime: now, expires: now.Add(devCodeTTL)}
		d.mu.Unlock()
		d.respond(w, r, req, url.Values{"code": {code}}, http.StatusSeeOther)
	})
}

// refuse answers a failed authorization request: on an error page when the
// client or redirect URI is not trusted, else at the redirect URI.
func (d *devIDP) refuse(w http.ResponseWriter, r *http.Request, req devAuthRequest, err error, status int) {
	var pe *devPageError
	if errors.As(err, &pe) {
		d.renderHTML(w, http.StatusBadRequest, devErrorHTML(pe.msg))
		return
	}
	var oe *devOAuthError
	if !errors.As(err, &oe) {
		oe = &devOAuthError{code: "server_error", desc: "internal error"}
	}
	d.respond(w, r, req, url.Values{"error": {oe.code}, "error_description": {oe.desc}}, status)
}

// respond sends an authorization response to the client's redirect URI, in
// its query or, with response_mode=form_post, as an auto-submitted form.
func (d *devIDP) respond(w http.ResponseWriter, r *http.Request, req devAuthRequest, params url.Values, status int) {
	params.Set("iss", d.issuer) // RFC 9207: lets a client talking to several IdPs spot a mix-up
	if req.State != "" {
		params.Set("state", req.State)
	}
	if req.ResponseMode == "form_post" {
		d.renderHTML(w, http.StatusOK, devAutoPostHTML(devAutoPost{Action: req.RedirectURI, Fields: devSortedFields(params)}))
		return
	}
	u, err := url.Parse(req.RedirectURI)
	if err != nil { // checked by devParseAuthRequest
		d.renderHTML(w, http.StatusBadRequest, devErrorHTML("invalid redirect_uri"))
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), status)
}

func devSortedFields(v url.Values) []devField {
	var out []devField
	for k, vals := range v {
		for _, val := range vals {
			out = append(out, devField{k, val})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
