package main

import (
	"encoding/json"

	josejson "github.com/go-jose/go-jose/v4/json"
)

// decodeIdPAnswer reads an IdP's JSON answer (discovery, keys, token,
// userinfo, error bodies) into v, after checking that no object in it
// repeats a member name: an answer like {"active":false,"active":true} is
// not the expected JSON, whichever member a decoder would keep. The callers
// turn any error into the IdP being unavailable (503
// SW_AUTH_IDP_UNAVAILABLE).
func decodeIdPAnswer(body []byte, v any) error {
	if err := checkMembersOnce(body); err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// decodeIdPAnswerExact is decodeIdPAnswer with go-jose's decoder, which
// matches member names exactly, as a JWT's claims are read ("Active" is
// not "active").
func decodeIdPAnswerExact(body []byte, v any) error {
	if err := checkMembersOnce(body); err != nil {
		return err
	}
	return josejson.Unmarshal(body, v)
}
