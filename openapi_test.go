package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// contractCodes is the error table of SPEC.md: each code and its status.
var contractCodes = map[string]int{
	"SW_BAD_REQUEST":                  400,
	"SW_AUTH_REDIRECT_MISMATCH":       400,
	"SW_AUTH_OIDC_FAILED":             401,
	"SW_AUTH_INVALID_CREDENTIALS":     401,
	"SW_AUTH_REFRESH_FAILED":          401,
	"SW_AUTH_UNAUTHENTICATED":         401,
	"SW_AUTH_PASSWORD_GRANT_DISABLED": 403,
	"SW_NOT_FOUND":                    404,
	"SW_TENANT_NOT_FOUND":             404,
	"SW_METHOD_NOT_ALLOWED":           405,
	"SW_REQUEST_TOO_LARGE":            413,
	"SW_UNSUPPORTED_MEDIA_TYPE":       415,
	"SW_RATE_LIMITED":                 429,
	"SW_INTERNAL":                     500,
	"SW_AUTH_IDP_UNAVAILABLE":         503,
	"SW_STORE_UNAVAILABLE":            503,
}

// statusExceptions are documented answers whose code comes with another
// status than the table's, because the handler sends them that way.
var statusExceptions = map[string]bool{
	// handleHealth answers a silent database with 503 SW_INTERNAL and no
	// Retry-After: a liveness probe must see it fail, not as a bug.
	"GET /healthz 503 SW_INTERNAL": true,
}

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

var codePattern = regexp.MustCompile(`SW_[A-Z_]+`)

// openAPIDoc is the parsed document, with helpers to follow its references.
type openAPIDoc struct {
	t    testing.TB
	root map[string]any
}

func loadOpenAPI(t testing.TB) *openAPIDoc {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal(openAPIDocument, &root); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return &openAPIDoc{t: t, root: root}
}

// resolve follows $ref (local JSON pointers only) until it reaches a node
// that is not a reference.
func (d *openAPIDoc) resolve(node any) map[string]any {
	d.t.Helper()
	for range 10 {
		m, ok := node.(map[string]any)
		if !ok {
			d.t.Fatalf("not an object: %v", node)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		node = d.pointer(ref)
	}
	d.t.Fatalf("reference chain too long at %v", node)
	return nil
}

// pointer returns the node a "#/..." reference names.
func (d *openAPIDoc) pointer(ref string) any {
	d.t.Helper()
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		d.t.Fatalf("$ref %q: only local references are used", ref)
	}
	var node any = d.root
	for _, tok := range strings.Split(p, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := node.(map[string]any)
		if !ok {
			d.t.Fatalf("$ref %q: %q is not in an object", ref, tok)
		}
		if node, ok = m[tok]; !ok {
			d.t.Fatalf("$ref %q: no %q", ref, tok)
		}
	}
	return node
}

// operations returns "METHOD /path" → operation, without HEAD and OPTIONS.
func (d *openAPIDoc) operations() map[string]map[string]any {
	ops := map[string]map[string]any{}
	paths, _ := d.root["paths"].(map[string]any)
	for path, item := range paths {
		for _, m := range httpMethods {
			op, ok := item.(map[string]any)[m].(map[string]any)
			if !ok || m == "head" || m == "options" {
				continue
			}
			ops[strings.ToUpper(m)+" "+path] = op
		}
	}
	return ops
}

// dataSchema returns the properties and required fields of the success
// answer's data for an operation.
func (d *openAPIDoc) dataSchema(op string) (props, required []string) {
	d.t.Helper()
	o, ok := d.operations()[op]
	if !ok {
		d.t.Fatalf("%s: not in the document", op)
	}
	resp := d.resolve(o["responses"].(map[string]any)["200"])
	media := resp["content"].(map[string]any)["application/json"].(map[string]any)
	env := d.resolve(media["schema"])
	data := d.resolve(env["properties"].(map[string]any)["data"])
	for name := range data["properties"].(map[string]any) {
		props = append(props, name)
	}
	for _, r := range data["required"].([]any) {
		required = append(required, r.(string))
	}
	slices.Sort(props)
	slices.Sort(required)
	return props, required
}

// walk calls fn for every string in node, not following references.
func walk(node any, fn func(s string)) {
	switch v := node.(type) {
	case map[string]any:
		for k, c := range v {
			fn(k)
			walk(c, fn)
		}
	case []any:
		for _, c := range v {
			walk(c, fn)
		}
	case string:
		fn(v)
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	d := loadOpenAPI(t)
	if v, _ := d.root["openapi"].(string); !strings.HasPrefix(v, "3.1") {
		t.Errorf("openapi = %q; want 3.1.x", v)
	}
	if v, _ := d.root["info"].(map[string]any)["version"].(string); v != "1" {
		t.Errorf("info.version = %q; want \"1\"", v)
	}

	// The route table without a metrics_addr, so /metrics is on it.
	var want []string
	for _, rt := range (&server{cfg: &config{}}).routes() {
		want = append(want, rt.method+" "+rt.path)
	}
	got := slices.Collect(maps.Keys(d.operations()))
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("documented operations:\n  %s\nroute table:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// Every reference resolves.
	walkRefs(d.root, func(ref string) { d.pointer(ref) })

	// Every SW_ code anywhere in the document is one of the contract's, and
	// the Error schema lists exactly the contract's codes.
	seen := map[string]bool{}
	walk(d.root, func(s string) {
		for _, c := range codePattern.FindAllString(s, -1) {
			seen[c] = true
			if _, ok := contractCodes[c]; !ok {
				t.Errorf("openapi.json mentions %s, which is not in the contract's error table", c)
			}
		}
	})
	enum := d.pointer("#/components/schemas/Error/properties/code/enum").([]any)
	var enumCodes []string
	for _, c := range enum {
		enumCodes = append(enumCodes, c.(string))
	}
	slices.Sort(enumCodes)
	if all := slices.Sorted(maps.Keys(contractCodes)); !slices.Equal(enumCodes, all) {
		t.Errorf("Error.code enum = %v; want the contract's codes %v", enumCodes, all)
	}

	for op, o := range d.operations() {
		responses := o["responses"].(map[string]any)
		_, ok := responses["200"]
		// The browser sign-in's steps succeed with a redirect.
		for _, redirect := range []string{"302", "303"} {
			_, is := responses[redirect]
			ok = ok || is && strings.HasPrefix(op, "GET /v1/auth/")
		}
		if !ok {
			t.Errorf("%s: no 200 response", op)
		}
		for status, ref := range responses {
			resp := d.resolve(ref)
			headers, _ := resp["headers"].(map[string]any)
			where := op + " " + status
			if _, ok := headers["X-Request-Id"]; !ok {
				t.Errorf("%s: no X-Request-Id header", where)
			}
			n, err := strconv.Atoi(status)
			if err != nil {
				t.Errorf("%s: status is not a number", where)
				continue
			}
			if n < 400 {
				continue
			}
			// The codes this answer can carry are those its own object
			// names; the shared Error schema (all codes) is not followed.
			codes := map[string]bool{}
			walk(resp, func(s string) {
				for _, c := range codePattern.FindAllString(s, -1) {
					codes[c] = true
				}
			})
			if len(codes) == 0 {
				t.Errorf("%s: names no error code", where)
			}
			excepted := false
			for c := range codes {
				switch {
				case statusExceptions[where+" "+c]:
					excepted = true
				case contractCodes[c] != n && contractCodes[c] != 0: // unknown codes are reported above
					t.Errorf("%s: code %s has status %d in the contract", where, c, contractCodes[c])
				}
			}
			needs := map[int]string{405: "Allow", 429: "Retry-After", 503: "Retry-After"}
			if op == "POST /v1/auth/register" {
				needs[401] = "WWW-Authenticate"
			}
			if h := needs[n]; h != "" && headers[h] == nil && !excepted {
				t.Errorf("%s: no %s header", where, h)
			}
		}
	}
	for c := range contractCodes {
		if !seen[c] {
			t.Errorf("the contract's code %s appears nowhere in openapi.json", c)
		}
	}

	// Responses that carry tokens say no-store.
	for _, op := range []string{"POST /v1/auth/login", "POST /v1/auth/token", "POST /v1/auth/refresh"} {
		resp := d.resolve(d.operations()[op]["responses"].(map[string]any)["200"])
		cc, ok := resp["headers"].(map[string]any)["Cache-Control"]
		if !ok {
			t.Errorf("%s 200: no Cache-Control header", op)
			continue
		}
		if v := d.resolve(d.resolve(cc)["schema"])["const"]; v != "no-store" {
			t.Errorf("%s 200: Cache-Control = %v; want no-store", op, v)
		}
	}
}

// walkRefs calls fn for every $ref in node.
func walkRefs(node any, fn func(ref string)) {
	switch v := node.(type) {
	case map[string]any:
		for k, c := range v {
			if s, ok := c.(string); ok && k == "$ref" {
				fn(s)
			}
			walkRefs(c, fn)
		}
	case []any:
		for _, c := range v {
			walkRefs(c, fn)
		}
	}
}

// TestOpenAPIFormatted keeps the hand-written document in one layout:
// 2-space indent, as json.Indent writes it, and a final newline.
func TestOpenAPIFormatted(t *testing.T) {
	t.Parallel()
	var compact, want bytes.Buffer
	if err := json.Compact(&compact, openAPIDocument); err != nil {
		t.Fatal(err)
	}
	json.Indent(&want, compact.Bytes(), "", "  ")
	want.WriteByte('\n')
	if !bytes.Equal(openAPIDocument, want.Bytes()) {
		a, b := strings.Split(string(openAPIDocument), "\n"), strings.Split(want.String(), "\n")
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("openapi.json is not laid out with a 2-space indent: line %d is %q; want %q", i+1, a[i], b[i])
			}
		}
		t.Fatalf("openapi.json is not laid out with a 2-space indent (%d lines; want %d)", len(a), len(b))
	}
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	s := newServer(&config{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics(), nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json = %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET /v1/openapi.json: Content-Type %q; want application/json", ct)
	}
	file, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.Body.Bytes(), file) {
		t.Errorf("GET /v1/openapi.json: body (%d bytes) differs from openapi.json (%d bytes)", w.Body.Len(), len(file))
	}
}

// TestOpenAPIDataFields checks that each success answer's documented data
// fields are exactly those the handler sends. The fake IdP is made to give
// everything optional (an end_session_endpoint, a scope) so that no
// omitempty field is missing from the answers.
func TestOpenAPIDataFields(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			f.serve(w, r)
			return
		}
		rec := httptest.NewRecorder()
		f.serve(rec, r)
		var doc map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		doc["end_session_endpoint"] = f.issuer + "/logout"
		doc["dpop_signing_alg_values_supported"] = []string{"ES256"}
		writeTestJSON(w, 200, doc)
	}))
	t.Cleanup(front.Close)
	f.issuer = front.URL // before any request: the IdP now answers as front
	f.set(func(f *fakeIDP) {
		f.tokenFn = func(form url.Values, r *http.Request) (int, any) {
			status, body := f.defaultToken(form, r)
			if m, ok := body.(map[string]any); ok && status == 200 {
				m["scope"] = "openid profile email"
			}
			return status, body
		}
	})
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	d := loadOpenAPI(t)

	tests := []struct {
		op   string
		body string
		hdr  []string
	}{
		{"GET /v1/auth/config", "", nil},
		{"POST /v1/auth/login", "code=good-code&code_verifier=" + tokVerifier, nil},
		{"POST /v1/auth/token", "grant_type=password&username=alice&password=alice-pw", nil},
		{"POST /v1/auth/refresh", "refresh_token=rt-good", nil},
		{"POST /v1/auth/register", "", []string{"Authorization", "Bearer " + f.accessToken()}},
		{"POST /v1/auth/logout", "refresh_token=rt-good", nil},
		{"POST /v1/auth/backchannel-logout", "logout_token=" + f.logoutToken(), nil},
		{"GET /healthz", "", nil},
		{"GET /readyz", "", nil},
	}
	for _, tc := range tests {
		method, path, _ := strings.Cut(tc.op, " ")
		w := a.do(method, path, tc.body, tc.hdr...)
		if w.Code != http.StatusOK {
			t.Errorf("%s = %d %s; want 200", tc.op, w.Code, w.Body)
			continue
		}
		got := slices.Sorted(maps.Keys(decode(t, w).Data))
		props, required := d.dataSchema(tc.op)
		if !slices.Equal(got, props) {
			t.Errorf("%s: data fields %v; openapi.json documents %v", tc.op, got, props)
		}
		for _, r := range required {
			if !slices.Contains(got, r) {
				t.Errorf("%s: required field %s missing from the answer", tc.op, r)
			}
		}
	}
}

// TestOpenAPIDocumentsErrors drives the handlers into their error answers
// and checks that openapi.json documents each one: the status under the
// operation, the code under that status, and the headers it promises.
func TestOpenAPIDocumentsErrors(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	on := f.tenantConfig()
	on.Hosts = []string{"a.example"}
	off := f.tenantConfig()
	// Another client at the same IdP: one issuer and client_id are one tenant.
	off.ID, off.Hosts, off.ClientID = "off", []string{"b.example"}, "scaiwave-off"
	off.Features.Auth.PasswordGrantEnabled = false
	a := newTestApp(t, []tenantConfig{on, off})

	down := newFakeIDP(t)
	down.set(func(f *fakeIDP) { f.discMode = modeDown })
	notReady := newTestApp(t, []tenantConfig{down.tenantConfig()}, true)

	d := loadOpenAPI(t)
	const form = "application/x-www-form-urlencoded"
	big := "code=" + strings.Repeat("a", maxBodyBytes+1)
	type request struct {
		op, method, target, body string
		hdr                      []string
	}
	check := func(app *testApp, rq request, wantStatus int) {
		t.Helper()
		w := app.do(rq.method, rq.target, rq.body, rq.hdr...)
		got := code(t, w)
		name := fmt.Sprintf("%s %s (%s)", rq.method, rq.target, rq.op)
		if w.Code != wantStatus {
			t.Errorf("%s = %d %s; want %d", name, w.Code, got, wantStatus)
			return
		}
		ref, ok := d.operations()[rq.op]["responses"].(map[string]any)[strconv.Itoa(w.Code)]
		if !ok {
			t.Errorf("%s = %d %s: openapi.json has no %d under %s", name, w.Code, got, w.Code, rq.op)
			return
		}
		resp := d.resolve(ref)
		named := false
		walk(resp, func(s string) { named = named || s == got })
		if !named {
			t.Errorf("%s = %d %s: openapi.json does not name %s under %s %d", name, w.Code, got, got, rq.op, w.Code)
		}
		headers, _ := resp["headers"].(map[string]any)
		for h, hv := range headers {
			hd := d.resolve(hv)
			v := w.Header().Get(h)
			if req, _ := hd["required"].(bool); req && v == "" {
				t.Errorf("%s = %d %s: no %s header, which openapi.json promises", name, w.Code, got, h)
			}
			if c, ok := d.resolve(hd["schema"])["const"].(string); ok && v != c {
				t.Errorf("%s = %d %s: %s = %q; openapi.json says %q", name, w.Code, got, h, v, c)
			}
		}
	}

	const login, token, refresh, register = "POST /v1/auth/login", "POST /v1/auth/token", "POST /v1/auth/refresh", "POST /v1/auth/register"
	const config = "GET /v1/auth/config"
	const authorize, callback = "GET /v1/auth/authorize", "GET /v1/auth/login"
	tests := []struct {
		req        request
		wantStatus int
	}{
		{request{config, "GET", "http://nope.example/v1/auth/config", "", nil}, 404},
		{request{config, "DELETE", "http://a.example/v1/auth/config", "", nil}, 405},
		{request{login, "DELETE", "http://a.example/v1/auth/login", "", nil}, 405},
		{request{login, "POST", "http://a.example/v1/auth/login", "handoff=" + randomValue(), nil}, 401},
		{request{login, "POST", "http://a.example/v1/auth/login", "handoff=x&code=y", nil}, 400},
		{request{authorize, "GET", "http://a.example/v1/auth/authorize?return_to=https://evil.example/", "", nil}, 400},
		{request{authorize, "GET", "http://nope.example/v1/auth/authorize", "", nil}, 404},
		{request{authorize, "POST", "http://a.example/v1/auth/authorize", "", nil}, 405},
		{request{callback, "GET", "http://a.example/v1/auth/login?state=x&code=y", "", nil}, 400},
		{request{callback, "GET", "http://nope.example/v1/auth/login?state=x&code=y", "", nil}, 404},
		{request{login, "POST", "http://a.example/v1/auth/login", "nonce=x", nil}, 400},
		{request{login, "POST", "http://a.example/v1/auth/login?code=a", "code=b", nil}, 400},
		{request{login, "POST", "http://a.example/v1/auth/login", "code=x&redirect_uri=https://evil.example/", nil}, 400},
		{request{login, "POST", "http://a.example/v1/auth/login?code=bad-code&code_verifier=" + tokVerifier, "", nil}, 401},
		{request{login, "POST", "http://a.example/v1/auth/login", big, nil}, 413},
		{request{login, "POST", "http://a.example/v1/auth/login", "code=x", []string{"Content-Type", "text/plain"}}, 415},
		{request{token, "POST", "http://b.example/v1/auth/token", "grant_type=password&username=alice&password=alice-pw", nil}, 403},
		{request{token, "POST", "http://a.example/v1/auth/token", "grant_type=password&username=alice", nil}, 400},
		{request{token, "POST", "http://a.example/v1/auth/token", `{"grant_type":"password","username":"alice","password":"wrong"}`, []string{"Content-Type", "application/json"}}, 401},
		{request{refresh, "POST", "http://a.example/v1/auth/refresh", "", nil}, 400},
		{request{refresh, "POST", "http://a.example/v1/auth/refresh", "refresh_token=rt-bad", nil}, 401},
		{request{register, "POST", "http://a.example/v1/auth/register", "", nil}, 401},
		{request{register, "POST", "http://a.example/v1/auth/register", "", []string{"Authorization", "Bearer not.a.token"}}, 401},
		{request{register, "POST", "http://a.example/v1/auth/register", "x", []string{"Authorization", "Bearer " + f.accessToken(), "Content-Type", "text/plain"}}, 415},
		{request{"POST /v1/auth/logout", "POST", "http://a.example/v1/auth/logout", "", nil}, 400},
		{request{"POST /v1/auth/logout", "POST", "http://a.example/v1/auth/logout", "", []string{"Authorization", "Bearer not.a.token"}}, 401},
		{request{"POST /v1/auth/backchannel-logout", "POST", "http://a.example/v1/auth/backchannel-logout", "logout_token=x.y.z", nil}, 400},
		{request{"GET /healthz", "POST", "/healthz", "", nil}, 405},
		{request{"GET /metrics", "PUT", "/metrics", "", nil}, 405},
		{request{"GET /v1/openapi.json", "DELETE", "/v1/openapi.json", "", nil}, 405},
	}
	for _, tc := range tests {
		if tc.req.body != "" && len(tc.req.hdr) == 0 {
			tc.req.hdr = []string{"Content-Type", form}
		}
		check(a, tc.req, tc.wantStatus)
	}

	// Failed passwords for one username from one address, until the limit answers 429.
	bad := request{token, "POST", "http://a.example/v1/auth/token", "grant_type=password&username=mallory&password=guess", nil}
	for range pairFailLimit {
		a.do(bad.method, bad.target, bad.body)
	}
	check(a, bad, 429)

	// Large bodies while the budget of bodies in flight is taken.
	a.srv.bodies.reserve(a.srv.bodies.max)
	large := strings.Repeat("a", smallBodyBytes+1)
	for _, op := range []string{login, token, refresh, register} {
		path := strings.TrimPrefix(op, "POST ")
		check(a, request{op, "POST", "http://a.example" + path, "x=" + large, []string{"Content-Type", form}}, 429)
	}
	a.srv.bodies.release(a.srv.bodies.max)

	// Before the first discovery document.
	check(notReady, request{config, "GET", "/v1/auth/config", "", nil}, 503)
	check(notReady, request{"GET /readyz", "GET", "/readyz", "", nil}, 503)
	check(notReady, request{authorize, "GET", "/v1/auth/authorize", "", nil}, 503)

	// The IdP failing, then refusing our own client credentials.
	f.set(func(f *fakeIDP) { f.tokenMode = mode500 })
	check(a, request{refresh, "POST", "http://a.example/v1/auth/refresh", "refresh_token=rt-good", nil}, 503)
	f.set(func(f *fakeIDP) {
		f.tokenMode = modeOK
		f.tokenFn = func(url.Values, *http.Request) (int, any) {
			return 401, map[string]string{"error": "invalid_client"}
		}
	})
	check(a, request{login, "POST", "http://a.example/v1/auth/login", "code=good-code&code_verifier=" + tokVerifier, nil}, 500)

	// The database gone (the read pool closed; Close in cleanup is idempotent).
	a.store.r.Close()
	check(a, request{"GET /healthz", "GET", "/healthz", "", nil}, 503)
}
