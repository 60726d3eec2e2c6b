package main

// Errors of the browser sign-in as a person sees them: /authorize and the
// callback are opened by a browser, not by code, so when the request
// prefers text/html an error is a short page that says what happened and
// where to go, instead of the JSON envelope.

import (
	"errors"
	"html"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// writeBrowserError answers err as writeError does, or, when the request
// prefers HTML, as a page with the same status. The page says what
// happened in plain words, links back to the tenant's app (its first
// post_login_redirect_uri) when there is one, since a sign-in must begin
// there, and shows the envelope's code and message for the app's
// developer. Nothing from the request is echoed: the callback's URL holds
// the IdP's code, and the page is served at that URL.
func writeBrowserError(w http.ResponseWriter, r *http.Request, t *tenant, err error) {
	if !prefersHTML(r) {
		writeError(w, r, err)
		return
	}
	ae := errorAnswer(w, r, err)
	back := ""
	if t != nil && len(t.cfg.PostLoginRedirectURIs) > 0 {
		back = t.cfg.PostLoginRedirectURIs[0]
	}
	title, what := browserErrorText(err, ae)
	var b strings.Builder
	b.WriteString(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>`)
	b.WriteString(html.EscapeString(title))
	b.WriteString(`</title>
<style>
body{font-family:system-ui,-apple-system,sans-serif;background:#f3f4f6;color:#111827;margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center}
main{background:#fff;padding:2rem;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.12);width:min(26rem,90vw)}
h1{font-size:1.2rem;margin:0 0 1rem}
a.button{display:inline-block;margin-top:.8rem;padding:.55rem 1rem;border-radius:6px;background:#1d4ed8;color:#fff;text-decoration:none}
.detail{color:#6b7280;font-size:.8rem;margin:1.4rem 0 0;overflow-wrap:anywhere}
</style>
</head>
<body>
<main>
<h1>`)
	b.WriteString(html.EscapeString(title))
	b.WriteString("</h1>\n<p>")
	b.WriteString(html.EscapeString(what))
	b.WriteString("</p>\n")
	if back != "" {
		b.WriteString(`<p><a class="button" href="`)
		b.WriteString(html.EscapeString(back))
		b.WriteString(`">Go back and sign in again</a></p>` + "\n")
	}
	b.WriteString(`<p class="detail">For the app's developer: `)
	b.WriteString(html.EscapeString(strconv.Itoa(ae.Status) + " " + ae.Code + ": " + ae.Message))
	b.WriteString("</p>\n</main>\n</body>\n</html>\n")

	// The page sits at the callback's URL, code and all: no Referer
	// (setPageHeaders).
	setPageHeaders(w.Header(), scriptlessPageCSP)
	w.WriteHeader(ae.Status)
	io.WriteString(w, b.String())
}

// browserErrorText is the page's title and what it says happened.
func browserErrorText(err error, ae *apiError) (title, what string) {
	switch {
	case errors.Is(err, errUnknownState):
		return "This sign-in has expired", "This sign-in link has expired or was already used. " +
			"That happens after the back button, after more than 10 minutes at the sign-in page, " +
			"or when the sign-in was begun in another browser. Start again from the app."
	case ae.Status == http.StatusServiceUnavailable:
		return "Sign-in is unavailable right now", "The sign-in service cannot reach the identity provider at the moment. Try again in a minute."
	case ae.Status == http.StatusTooManyRequests:
		return "Too many attempts", "There were too many sign-in attempts. Wait a minute, then try again."
	case ae.Status >= 500:
		return "Sign-in failed", "Something went wrong on our side. Try again; if it keeps happening, tell the app's administrator."
	default:
		return "This sign-in link is not valid", "The app sent the browser here with a sign-in request that cannot be used. Start again from the app; if it keeps happening, tell the app's developer."
	}
}

// prefersHTML reports whether the request's Accept header ranks text/html
// above application/json (a tie is JSON), as a browser's navigation does ("text/html,…,
// */*;q=0.8"); fetch and curl send */* and get JSON.
func prefersHTML(r *http.Request) bool {
	htmlQ, jsonQ := -1.0, -1.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 && v <= 1 {
				q = v
			}
		}
		switch mt {
		case "text/html":
			htmlQ = max(htmlQ, q)
		case "application/json":
			jsonQ = max(jsonQ, q)
		}
	}
	return htmlQ > 0 && htmlQ > jsonQ
}

// scriptlessPageCSP is the Content-Security-Policy of a page with no script.
const scriptlessPageCSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// setPageHeaders sets the headers of every HTML page the service serves: not
// cached, not sniffed, not framed, no Referer to where it links (a page may
// sit at a URL that carries a code), and the page's csp.
func setPageHeaders(h http.Header, csp string) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", csp)
}
