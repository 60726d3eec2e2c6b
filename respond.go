package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
)

// statusClientClosed is logged for requests whose client left before the
// answer (nginx's convention); no client ever reads it.
const statusClientClosed = 499

// maxBodyBytes is the limit on every request body (SPEC.md: 413 beyond).
const maxBodyBytes = 64 << 10

// apiError is an error with its place in the contract's table.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "SW_BAD_REQUEST", fmt.Sprintf(format, args...)}
}

// writeError is the one place an error becomes a response. An *apiError is
// sent as it is; errIdPUnavailable becomes 503 with Retry-After (IdP
// timeouts are wrapped in it), and so does errStoreUnavailable (a database
// the store could not reach; a local SQLite failure is not and is a 500); anything
// else is logged with the request id and answered SW_INTERNAL, so no driver
// or upstream text reaches a client.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := errorAnswer(w, r, err)
	writeJSON(w, ae.Status, map[string]any{"error": map[string]string{"code": ae.Code, "message": ae.Message}})
}

// errorAnswer is what writeError answers for err: the *apiError in it, or
// one it makes (logging the error, and setting Retry-After) for any other.
func errorAnswer(w http.ResponseWriter, r *http.Request, err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		var ne *dpopNonceError
		if errors.As(err, &ne) {
			w.Header().Set("DPoP-Nonce", ne.nonce)
		}
	case errors.Is(r.Context().Err(), context.Canceled) && (errors.Is(err, context.Canceled) || errors.Is(err, errIdPUnavailable)):
		// The client went away, which is what cut the work short, and nobody
		// reads this answer. 499 (nginx's "client closed request") keeps it
		// out of the 5xx logs and counts.
		ae = &apiError{statusClientClosed, "SW_BAD_REQUEST", "request canceled by the client"}
	case errors.Is(err, errIdPUnavailable):
		info(r).log.Warn("identity provider unavailable", "request_id", info(r).id, "err", err)
		w.Header().Set("Retry-After", "5")
		ae = &apiError{http.StatusServiceUnavailable, "SW_AUTH_IDP_UNAVAILABLE", "the identity provider is unavailable; try again shortly"}
	case errors.Is(err, errStoreUnavailable):
		info(r).log.Warn("database unavailable", "request_id", info(r).id, "err", err)
		w.Header().Set("Retry-After", "5")
		ae = &apiError{http.StatusServiceUnavailable, "SW_STORE_UNAVAILABLE", "the database is unavailable; try again shortly"}
	default:
		info(r).log.Error("internal error", "request_id", info(r).id, "err", err)
		ae = &apiError{http.StatusInternalServerError, "SW_INTERNAL", "internal error; the server log has details under request id " + info(r).id}
	}
	if ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusServiceUnavailable {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "5")
		}
	}
	return ae
}

// writeJSON writes v as the response body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"SW_INTERNAL","message":"internal error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// dataEnvelope is the success envelope; a struct, not a map, because it is
// encoded on every request.
type dataEnvelope[T any] struct {
	Data T `json:"data"`
}

// writeData writes the success envelope.
func writeData[T any](w http.ResponseWriter, v T) {
	writeJSON(w, http.StatusOK, dataEnvelope[T]{Data: v})
}

// readParams reads a POST body, form-encoded or JSON (an object of strings),
// through the size limit. With fromQuery, the query's parameters count too;
// a parameter given twice, or differently in query and body, is a 400.
func readParams(w http.ResponseWriter, r *http.Request, fromQuery bool) (url.Values, error) {
	v := url.Values{}
	if r.ContentLength > maxBodyBytes {
		return nil, &apiError{http.StatusRequestEntityTooLarge, "SW_REQUEST_TOO_LARGE", fmt.Sprintf("request body is over %d bytes", maxBodyBytes)}
	}
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		body, err := readBody(w, r)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "SW_REQUEST_TOO_LARGE", fmt.Sprintf("request body is over %d bytes", maxBodyBytes)}
		}
		if err != nil {
			return nil, badRequest("unreadable request body")
		}
		if len(body) > 0 {
			if v, err = parseBody(r.Header.Get("Content-Type"), body); err != nil {
				return nil, err
			}
		}
	}
	for k, vs := range v {
		if len(vs) > 1 {
			return nil, badRequest("%s: given more than once", truncate(k, 40))
		}
	}
	if fromQuery && r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, badRequest("malformed query string")
		}
		for k, vs := range q {
			if len(vs) > 1 {
				return nil, badRequest("%s: given more than once", truncate(k, 40))
			}
			if b, ok := v[k]; ok && b[0] != vs[0] {
				return nil, badRequest("%s: differs between query and body", truncate(k, 40))
			}
			v[k] = vs
		}
	}
	return v, nil
}

// parseBody decodes a form or JSON body into values.
func parseBody(contentType string, body []byte) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if contentType == "" || err != nil {
		return nil, &apiError{http.StatusUnsupportedMediaType, "SW_UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/x-www-form-urlencoded or application/json"}
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, badRequest("malformed form body")
		}
		return v, nil
	case "application/json":
		return parseJSONParams(body)
	}
	return nil, &apiError{http.StatusUnsupportedMediaType, "SW_UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/x-www-form-urlencoded or application/json"}
}

// required returns a non-empty parameter or a 400 naming it.
func required(v url.Values, name string) (string, error) {
	s := v.Get(name)
	if s == "" {
		return "", badRequest("%s: required", name)
	}
	return s, nil
}

// tokenData is the data of /login, /token and /refresh.
type tokenData struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func writeTokens(w http.ResponseWriter, tr *tokenResponse) {
	if tr.dpopNonce != "" {
		w.Header().Set("DPoP-Nonce", tr.dpopNonce)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeData(w, tokenData{
		AccessToken:  tr.AccessToken,
		RefreshToken: tr.RefreshToken,
		TokenType:    tr.TokenType,
		ExpiresIn:    int64(tr.ExpiresIn),
		IDToken:      tr.IDToken,
		Scope:        string(tr.Scope),
	})
}

// idpError maps a token-endpoint failure to the contract: an OAuth error
// answer becomes rejected (the endpoint's own code), our own bad client
// credentials a loud log line and SW_INTERNAL, the rest 503.
func idpError(t *tenant, err error, rejected *apiError) error {
	var oe *oauthError
	if errors.As(err, &oe) {
		if oe.clientCredentialsInvalid() {
			t.prov.log.Error("the IdP refused this tenant's client credentials", "code", oe.Code,
				"client_id", t.cfg.ClientID, "cause", clientRefusedCause(t.cfg, oe.Code), "err", err)
			return fmt.Errorf("tenant %s: client credentials rejected: %w", t.cfg.ID, err)
		}
		t.prov.log.Info("the IdP refused a grant", "code", oe.Code)
		if err := dpopGrantError(oe); err != nil {
			return err
		}
		return rejected
	}
	return err
}

// verifyFailed maps an ID token verification failure to code.
func verifyFailed(t *tenant, err error, code string) error {
	var ve *verifyError
	if errors.As(err, &ve) {
		t.prov.log.Warn("id token refused", "reason", ve.Reason, "detail", ve.Detail)
		return &apiError{http.StatusUnauthorized, code, "the ID token from the identity provider failed verification"}
	}
	return err
}

// writeUnauthenticated answers 401 with the RFC 6750 challenge, or passes on
// errors that are not about the token (the IdP being down).
func writeUnauthenticated(w http.ResponseWriter, r *http.Request, t *tenant, err error) {
	var ve *verifyError
	switch {
	case errors.Is(err, errNoBearer):
		setChallenges(w, r, t.prov, nil)
		writeError(w, r, &apiError{http.StatusUnauthorized, "SW_AUTH_UNAUTHENTICATED", "Authorization: Bearer <access token> is required"})
	case errors.As(err, &ve):
		t.prov.log.Info("bearer token refused", "reason", ve.Reason, "detail", ve.Detail, "request_id", info(r).id)
		setChallenges(w, r, t.prov, ve)
		writeError(w, r, &apiError{http.StatusUnauthorized, "SW_AUTH_UNAUTHENTICATED", unauthenticatedMessage(ve)})
	default:
		writeError(w, r, err)
	}
}
