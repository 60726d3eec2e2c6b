package main

// The email a participant is given: only one its IdP has not said is
// unverified. An unverified address is anyone's to type in at sign-up, so
// it must not stand for a person, as a stored email or as a name.

import (
	"encoding/json"
	"strings"
)

// claimBool is a boolean claim that some IdPs send as a string ("false",
// as Cognito does): known is false when the claim is absent, null, or
// neither a boolean nor such a string.
type claimBool struct {
	known, value bool
}

func (b *claimBool) UnmarshalJSON(data []byte) error {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return nil // a validly signed token is not refused for an odd claim
	}
	switch v := v.(type) {
	case bool:
		*b = claimBool{known: true, value: v}
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			*b = claimBool{known: true, value: true}
		case "false":
			*b = claimBool{known: true, value: false}
		}
	}
	return nil
}

// verifiedEmail is the token's email unless its email_verified claim says
// false (as a boolean or the string "false"), else "". An absent
// email_verified leaves the email as it is (SPEC.md POST /v1/auth/register:
// only false excludes it).
func verifiedEmail(c *claims) string {
	if c.EmailVerified.known && !c.EmailVerified.value {
		return ""
	}
	return string(c.Email)
}
