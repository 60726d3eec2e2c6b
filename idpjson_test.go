package main

// IdP answers with a repeated member name are not the expected JSON, at
// every endpoint the service reads (issue 18, item 5).

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestCheckMembersOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc  string
		wantRepeat bool
		wantErr    bool
	}{
		{"flat object", `{"a":1,"b":2}`, false, false},
		{"repeated at the top", `{"active":false,"active":true}`, true, false},
		{"repeated with other members between", `{"a":1,"b":{"x":1},"a":2}`, true, false},
		{"repeated in a nested object", `{"a":{"x":1,"x":2}}`, true, false},
		{"repeated in an object in an array", `{"keys":[{"kid":"a"},{"kid":"b","kid":"c"}]}`, true, false},
		{"same names in sibling objects", `{"keys":[{"kid":"a"},{"kid":"b"}],"x":{"kid":"c"}}`, false, false},
		{"same name at two depths", `{"a":{"a":{"a":1}}}`, false, false},
		{"names equal once unescaped", `{"a":1,"\u0061":2}`, true, false},
		{"names differing in case", `{"active":false,"Active":true}`, false, false},
		{"an array", `[1,{"a":1},[{"b":2,"b":3}]]`, true, false},
		{"a scalar", `"x"`, false, false},
		{"not JSON", `{"a":`, false, true},
		{"empty", ``, false, true},
	}
	for _, tc := range tests {
		err := checkMembersOnce([]byte(tc.doc))
		if got := errors.Is(err, errRepeatedMember); got != tc.wantRepeat || (err != nil && !got) != tc.wantErr {
			t.Errorf("checkMembersOnce(%s) (%s) = %v; want repeated %v, other error %v", tc.doc, tc.name, err, tc.wantRepeat, tc.wantErr)
		}
	}
}

// TestIntrospectionRepeatedActive is the review's reproduction: an
// introspection answer {"active":false,...,"active":true} was read as
// active (at 57145ee, with encoding/json). It is the IdP answering garbage:
// 503, and no participant. (go-jose's decoder, which reads these answers
// since, refuses repeated keys too; decodeIdPAnswerExact keeps that so
// whichever decoder is used. The token, discovery and JWKS tests below fail
// without checkMembersOnce.)
func TestIntrospectionRepeatedActive(t *testing.T) {
	t.Parallel()
	f, a := newIntrospectionApp(t, nil)
	now := time.Now().Unix()
	good := `"token_type":"Bearer","name":"Opaque User","iss":"` + f.issuer + `","sub":"opaque-sub","client_id":"` + testClientID + `","exp":` + jsonInt(now+300) + `,"iat":` + jsonInt(now)
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"active once", `{"active":true,` + good + `}`, 200, ""},
		{"active false then true", `{"active":false,` + good + `,"active":true}`, 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"sub twice", `{"active":true,` + good + `,"sub":"someone-else"}`, 503, "SW_AUTH_IDP_UNAVAILABLE"},
	}
	for _, tc := range tests {
		f.set(func(f *fakeIDP) { f.introspectFn = introspectAnswer(200, rawBody(tc.body)) })
		tokCheck(t, "/v1/auth/register", "introspection: "+tc.name, a.register(f.opaqueToken()), tc.wantStatus, tc.wantCode)
	}
}

func TestUserinfoRepeatedMember(t *testing.T) {
	t.Parallel()
	f, a := newIntrospectionApp(t, func(f *fakeIDP, tc *tenantConfig) { tc.AccessTokens.Validation = validationUserinfo })
	f.set(func(f *fakeIDP) {
		f.userinfoFn = func(string) (int, any) { return 200, rawBody(`{"sub":"opaque-sub","name":"A","sub":"someone-else"}`) }
	})
	tokCheck(t, "/v1/auth/register", "userinfo with sub twice", a.register(f.opaqueToken()), 503, "SW_AUTH_IDP_UNAVAILABLE")
}

func TestTokenAnswerRepeatedMember(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	access := f.accessToken()
	f.set(func(f *fakeIDP) {
		f.tokenFn = func(url.Values, *http.Request) (int, any) {
			return 200, rawBody(`{"access_token":"` + access + `","token_type":"DPoP","token_type":"Bearer","expires_in":300}`)
		}
	})
	w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=pw")
	tokCheck(t, "/v1/auth/token", "token answer with token_type twice", w, 503, "SW_AUTH_IDP_UNAVAILABLE")
}

func TestDiscoveryAndJWKSRepeatedMember(t *testing.T) {
	t.Parallel()
	if _, _, err := parseJWKS([]byte(`{"keys":[{"kty":"RSA","kid":"a","kid":"b","n":"AQAB","e":"AQAB"}]}`)); !errors.Is(err, errRepeatedMember) {
		t.Errorf("parseJWKS with a key's kid twice = %v; want errRepeatedMember", err)
	}
	if _, _, err := parseJWKS([]byte(`{"keys":[],"keys":[]}`)); !errors.Is(err, errRepeatedMember) {
		t.Errorf("parseJWKS with keys twice = %v; want errRepeatedMember", err)
	}
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	doc := `{"issuer":"` + f.issuer + `","authorization_endpoint":"` + f.issuer + `/authorize","token_endpoint":"` + f.issuer + `/token",` +
		`"jwks_uri":"` + f.issuer + `/jwks"%s}`
	for _, tc := range []struct {
		name, extra string
		wantRepeat  bool
	}{
		{"a good document", ``, false},
		{"jwks_uri twice", `,"jwks_uri":"https://evil.example/jwks"`, true},
	} {
		body := strings.Replace(doc, "%s", tc.extra, 1)
		p.client = &http.Client{Transport: cannedAnswer(body)}
		_, err := p.fetchDiscovery(t.Context())
		if got := errors.Is(err, errRepeatedMember); got != tc.wantRepeat || (err != nil && !got) {
			t.Errorf("fetchDiscovery (%s) = %v; want repeated member %v", tc.name, err, tc.wantRepeat)
		}
	}
}

// cannedAnswer is a transport that answers every request 200 with body.
type cannedAnswer string

func (c cannedAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(string(c))), Request: r,
	}, nil
}

// TestBackchannelLogoutRepeatedClaim: a logout token whose payload names
// sub twice is refused, though its signature is good.
func TestBackchannelLogoutRepeatedClaim(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	payload, err := json.Marshal(f.logoutClaims())
	if err != nil {
		t.Fatal(err)
	}
	dup := json.RawMessage(strings.Replace(string(payload), `"sub":"`+testSubject+`"`, `"sub":"someone-else","sub":"`+testSubject+`"`, 1))
	if string(dup) == string(payload) {
		t.Fatal("the test could not repeat sub in the logout claims")
	}
	tok := signWith(t, f.key(), dup, map[jose.HeaderKey]any{"typ": "logout+jwt"})
	bcCheck(t, "logout token with sub twice", a.backchannel(tok), 400, "SW_BAD_REQUEST")
	bcCheck(t, "the same claims once", a.backchannel(f.logoutToken()), 200, "")
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestAccessTokenRepeatedClaim: a JWT access token whose payload names sub
// twice is refused, though its signature is good (go-jose's claims decoder
// refuses repeated keys; this keeps it so).
func TestAccessTokenRepeatedClaim(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	payload, err := json.Marshal(f.accessClaims())
	if err != nil {
		t.Fatal(err)
	}
	dup := strings.Replace(string(payload), `"sub":"`+testSubject+`"`, `"sub":"someone-else","sub":"`+testSubject+`"`, 1)
	if dup == string(payload) {
		t.Fatal("the test could not repeat sub in the access token's claims")
	}
	checkRegister(t, "access token with sub twice", a.register(signWith(t, f.key(), json.RawMessage(dup), nil)), 401)
	checkRegister(t, "the same claims once", a.register(signWith(t, f.key(), json.RawMessage(payload), nil)), 200)
}
