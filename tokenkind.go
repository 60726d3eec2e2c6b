package main

// What kind of token a bearer is: one decision from every signal a token or
// an IdP's answer about it carries, for locally verified JWTs and
// introspection answers alike. Verification says whether a token is genuine;
// this says whether it may be a bearer at all (SPEC.md "Token kinds"). Every
// rule names the IdP and version it was seen in; idp-tokens/ beside SPEC.md
// holds what those IdPs really issued, and the tests re-sign those tokens.

import (
	"bytes"
	"strings"

	"github.com/go-jose/go-jose/v4/jwt"
)

// tokenClass is what a token says it is.
type tokenClass int

const (
	// classUnnamed is a token that names no kind: acceptable as an access
	// token when nothing else refuses it (Dex v2.45.1's access tokens name
	// none, and neither do Hydra v2.3.0's and LemonLDAP::NG 2.16.1's JWT
	// access tokens).
	classUnnamed tokenClass = iota
	classAccess
	classID
	classRefresh
	classLogout
	classProof // a DPoP proof (RFC 9449): never a credential by itself
)

func (k tokenClass) String() string {
	switch k {
	case classAccess:
		return "access token"
	case classID:
		return "ID token"
	case classRefresh:
		return "refresh token"
	case classLogout:
		return "logout token"
	case classProof:
		return "DPoP proof"
	}
	return "token of no named kind"
}

// kindSignals is every way a token, or an IdP's answer about it, says what
// it is. Empty strings and false say nothing.
type kindSignals struct {
	headerTyp string // JOSE header typ
	typ       string // payload (or introspection) typ: Keycloak
	tokenType string // payload tokenType: Casdoor v3.158.0
	typeClaim string // payload type: Pocket ID v2.9.0
	tokenUse  string // token_use: Cognito (payload), Dex v2.45.1 and Hydra v2.3.0 (introspection)
	events    bool   // an events member: a Security Event Token, as logout tokens are
	cHash     bool   // c_hash: only an ID token from the code flow has it
	// introTokenType is an introspection answer's token_type (RFC 7662).
	introTokenType string
	// relayed is what this service passed the token on as in an answer of
	// /login, /token, /refresh or a handoff (relayed.go); classUnnamed when
	// it never did.
	relayed tokenClass
}

// kindSignal is one signal's verdict, and its name and value for the log.
type kindSignal struct {
	class       tokenClass
	name, value string
}

// why names the signal for the log; built only for the deciding one, so
// that deciding costs no allocation.
func (s kindSignal) why() string {
	if s.value == "" {
		return s.name
	}
	return s.name + " " + short(s.value)
}

// decideKind answers what the token is, by every signal at once. A token
// that any signal names as something other than an access token is that
// other thing, whatever the rest say (an access-token typ does not launder a
// payload that says Refresh). why names the deciding signal, for the log;
// it never holds the token. at_hash and nonce are no signal: Dex v2.45.1
// puts both in its access tokens, shaped exactly like its ID tokens.
func decideKind(s kindSignals) (class tokenClass, why string) {
	sigs := s.signals()
	named := -1
	for i, sig := range sigs {
		if sig.class == classUnnamed {
			continue
		}
		if sig.class != classAccess {
			return sig.class, sig.why()
		}
		if named < 0 {
			named = i
		}
	}
	if named >= 0 {
		return classAccess, sigs[named].why()
	}
	return classUnnamed, "no kind named"
}

// bearerRefusal is the reason a token of class may not be a bearer here, or
// "" when it may: access tokens and tokens that name no kind may.
func bearerRefusal(class tokenClass, why string) string {
	if class == classAccess || class == classUnnamed {
		return ""
	}
	return "a " + class.String() + " (" + why + ") is not an access token"
}

func (s kindSignals) signals() [9]kindSignal {
	return [...]kindSignal{
		{s.relayed, "relayed by this service as a", s.relayed.String()},
		{headerTypClass(s.headerTyp), "header typ", s.headerTyp},
		{keycloakTypClass(s.typ), "typ", s.typ},
		{hyphenKindClass(s.tokenType), "tokenType", s.tokenType},
		{hyphenKindClass(s.typeClaim), "type", s.typeClaim},
		{tokenUseClass(s.tokenUse), "token_use", s.tokenUse},
		{boolClass(s.events, classLogout), "events", ""},
		{boolClass(s.cHash, classID), "c_hash", ""},
		{introTokenTypeClass(s.introTokenType), "token_type", s.introTokenType},
	}
}

func short(s string) string { return truncate(s, 40) }

func boolClass(b bool, c tokenClass) tokenClass {
	if b {
		return c
	}
	return classUnnamed
}

// headerTypClass reads the JOSE header typ (RFC 7515 §4.1.9: any case,
// "application/" optional). at+jwt is RFC 9068's access token, logout+jwt
// a back-channel logout token, dpop+jwt a DPoP proof. "JWT" and none say
// nothing: Casdoor v3.158.0, Pocket ID v2.9.0, Hydra v2.3.0, Authelia
// v4.39.20 and LemonLDAP::NG 2.16.1 type every token they sign "JWT", Dex
// v2.45.1 types none.
func headerTypClass(typ string) tokenClass {
	switch strings.TrimPrefix(strings.ToLower(typ), "application/") {
	case "at+jwt":
		return classAccess
	case "logout+jwt":
		return classLogout
	case "dpop+jwt":
		return classProof
	}
	return classUnnamed
}

// keycloakTypClass reads Keycloak's payload typ, which it writes in its
// tokens and in its introspection answers: Bearer, ID, Refresh, Offline
// (an offline refresh token), Logout. No Keycloak capture is in
// idp-tokens/; the values are SPEC.md's table's.
func keycloakTypClass(typ string) tokenClass {
	switch strings.ToLower(typ) {
	case "bearer":
		return classAccess
	case "id":
		return classID
	case "refresh", "offline":
		return classRefresh
	case "logout":
		return classLogout
	}
	return classUnnamed
}

// hyphenKindClass reads Casdoor v3.158.0's tokenType ("access-token",
// "refresh-token") and Pocket ID v2.9.0's type ("oauth-access-token",
// "refresh-token", "id-token"). Other values say nothing: Casdoor's
// tokenFormat JWT copies its user object into every token, with type
// "normal-user".
func hyphenKindClass(v string) tokenClass {
	switch strings.ToLower(v) {
	case "access-token", "oauth-access-token":
		return classAccess
	case "refresh-token":
		return classRefresh
	case "id-token":
		return classID
	}
	return classUnnamed
}

// tokenUseClass reads token_use: Cognito writes "access" and "id" in its
// tokens (SPEC.md's table; no capture here); Dex v2.45.1 and Hydra v2.3.0
// answer "access_token" and "refresh_token" at introspection.
func tokenUseClass(v string) tokenClass {
	switch strings.ToLower(v) {
	case "access", "access_token":
		return classAccess
	case "id", "id_token":
		return classID
	case "refresh", "refresh_token":
		return classRefresh
	}
	return classUnnamed
}

// introTokenTypeClass reads an introspection answer's token_type: "Bearer"
// (Casdoor v3.158.0, and Hydra v2.3.0 and Dex v2.45.1 beside token_use),
// "DPoP" or Pocket ID v2.9.0's "access_token" name an access token, Pocket
// ID's "refresh_token" (or any other value naming a refresh token) a refresh
// token.
func introTokenTypeClass(v string) tokenClass {
	l := strings.ToLower(v)
	switch {
	case strings.Contains(l, "refresh"):
		return classRefresh
	case strings.Contains(l, "id_token") || l == "id-token":
		return classID
	case l == "bearer" || l == "dpop" || l == "access_token" || strings.HasSuffix(l, ":access_token"):
		return classAccess
	}
	return classUnnamed
}

// kindMarkers are the payload members that name a JWT's kind, beside the
// typ and c_hash that claims keeps. They are decoded on the cold path of an
// access token only, and never cached: the verified-token cache holds claims,
// and every byte of those counts against its budget.
type kindMarkers struct {
	TokenType looseString `json:"tokenType"` // Casdoor v3.158.0
	TypeClaim looseString `json:"type"`      // Pocket ID v2.9.0
	TokenUse  looseString `json:"token_use"` // Cognito
	Events    markerClaim `json:"events"`    // logout tokens (Casdoor v3.158.0, Hydra v2.3.0)
}

// jwtSignals are the signals of a verified JWT tok (compact form raw) with
// claims c, with relayed what this service passed it on as (classUnnamed
// when it did not).
func jwtSignals(raw string, tok *jwt.JSONWebToken, c *claims, relayed tokenClass) (kindSignals, error) {
	var m kindMarkers
	if mayHoldMarkers(raw) {
		// Decoded into a variable of its own, so that m stays on the stack
		// for the tokens that name no kind.
		dec := new(kindMarkers)
		if err := tok.UnsafeClaimsWithoutVerification(dec); err != nil {
			return kindSignals{}, refuse(reasonMalformed, "claims: %s", claimsErrorKind(err))
		}
		m = *dec
	}
	typ, _ := tok.Headers[0].ExtraHeaders["typ"].(string)
	return kindSignals{
		headerTyp: typ,
		typ:       string(c.Type),
		tokenType: string(m.TokenType),
		typeClaim: string(m.TypeClaim),
		tokenUse:  string(m.TokenUse),
		events:    m.Events.set,
		cHash:     c.CodeHash.set,
		relayed:   relayed,
	}, nil
}

// checkBearerKind refuses the verified JWT tok (claims c, tokenKey key)
// unless it may be a bearer: a *verifyError with reasonTokenType naming the
// signal that decided. Otherwise it returns the class decided: classAccess
// or classUnnamed.
func (p *provider) checkBearerKind(raw string, tok *jwt.JSONWebToken, c *claims, key [32]byte) (tokenClass, error) {
	s, err := jwtSignals(raw, tok, c, p.relayed.classOf(key))
	if err != nil {
		return classUnnamed, err
	}
	class, why := decideKind(s)
	if refusal := bearerRefusal(class, why); refusal != "" {
		return class, refuse(reasonTokenType, "%s", refusal)
	}
	return class, nil
}

// markerNames are kindMarkers' member names as they appear in a payload.
var markerNames = [][]byte{[]byte(`"tokenType"`), []byte(`"type"`), []byte(`"token_use"`), []byte(`"events"`)}

// mayHoldMarkers reports whether the payload of the compact JWS raw may
// have a member of kindMarkers: it names one, or spells some name with an
// escape. Most access tokens (Dex's, Hydra's, LemonLDAP::NG's, Keycloak's)
// name none, and then the payload is not decoded a second time. Payloads up
// to 4 KiB are decoded on the stack.
func mayHoldMarkers(raw string) bool {
	_, rest, _ := strings.Cut(raw, ".")
	seg, _, _ := strings.Cut(rest, ".")
	var buf [4 << 10]byte
	dst := buf[:]
	if n := strictB64.DecodedLen(len(seg)); n > len(buf) {
		dst = make([]byte, n)
	}
	n, err := strictB64.Decode(dst, []byte(seg))
	if err != nil {
		return true
	}
	p := dst[:n]
	if bytes.IndexByte(p, '\\') >= 0 {
		return true
	}
	for _, name := range markerNames {
		if bytes.Contains(p, name) {
			return true
		}
	}
	return false
}
