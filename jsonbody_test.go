package main

import (
	"strings"
	"testing"
)

// TestAttackJSONRepeatedKey sends JSON bodies whose keys repeat, as a
// client that hopes a filter in front reads the first value while the
// service reads the last: 400 naming the key, before the IdP is asked, as
// for a repeated form field. Values other than strings, and anything after
// the object, are 400s too.
func TestAttackJSONRepeatedKey(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	deep := `{"username":` + strings.Repeat("[", 30_000) + strings.Repeat("]", 30_000) + `}`
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantMsg    string // the start of the error message
	}{
		{"username twice", `{"grant_type":"password","username":"alice","username":"bob","password":"alice-pw"}`, 400, "username: given more than once"},
		{"password twice, same value", `{"grant_type":"password","username":"alice","password":"alice-pw","password":"alice-pw"}`, 400, "password: given more than once"},
		{"key repeated through an escape", `{"grant_type":"password","username":"alice","\u0075sername":"bob","password":"alice-pw"}`, 400, "username: given more than once"},
		{"grant_type twice, empty then set", `{"grant_type":"","grant_type":"password","username":"alice","password":"alice-pw"}`, 400, "grant_type: given more than once"},
		{"an object value", `{"grant_type":"password","username":{"a":"b"},"password":"alice-pw"}`, 400, "username: must be a string"},
		{"an array value", `{"grant_type":"password","username":["alice"],"password":"alice-pw"}`, 400, "username: must be a string"},
		{"a deeply nested array", deep, 400, "username: must be a string"},
		{"a boolean value", `{"grant_type":"password","username":true,"password":"alice-pw"}`, 400, "username: must be a string"},
		{"a second object after the first", `{"grant_type":"password","username":"alice","password":"alice-pw"} {"username":"bob"}`, 400, "body is not a JSON object"},
		{"garbage after the object", `{"grant_type":"password","username":"alice","password":"alice-pw"}x`, 400, "body is not a JSON object"},
		{"unterminated object", `{"grant_type":"password","username":"alice"`, 400, "body is not a JSON object"},
		{"a key without a value", `{"grant_type":"password","username"}`, 400, "body is not a JSON object"},
		{"not an object", `"grant_type=password"`, 400, "body is not a JSON object"},
		{"only white space", `   `, 400, "body is not a JSON object"},
		{"null for an optional value", `{"grant_type":"password","username":"alice","password":"alice-pw","scope":null}`, 200, ""},
		{"keys differing in case are two keys", `{"grant_type":"password","username":"alice","Username":"bob","password":"alice-pw"}`, 200, ""},
		{"white space around the object", "\n {\"grant_type\":\"password\",\"username\":\"alice\",\"password\":\"alice-pw\"} \n", 200, ""},
	}
	for _, tc := range tests {
		before := f.tokenHits.Load()
		w := a.do("POST", "/v1/auth/token", tc.body, "Content-Type", "application/json")
		wantCode := ""
		if tc.wantStatus != 200 {
			wantCode = "SW_BAD_REQUEST"
		}
		if !tokCheck(t, "/v1/auth/token", tc.name, w, tc.wantStatus, wantCode) || tc.wantStatus == 200 {
			continue
		}
		if msg := decode(t, w).Error.Message; !strings.HasPrefix(msg, tc.wantMsg) {
			t.Errorf("POST /v1/auth/token (%s): message %q; want it to start with %q", tc.name, msg, tc.wantMsg)
		}
		if f.tokenHits.Load() != before {
			t.Errorf("POST /v1/auth/token (%s): the IdP was asked", tc.name)
		}
	}
}
