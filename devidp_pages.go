package main

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"
)

// devLoginPage is the data of the login form.
type devLoginPage struct {
	Action, Error, Username string
	Hidden                  []devField
	Users                   []devUser
}

// devAutoPost is the data of the form_post response page.
type devAutoPost struct {
	Action string
	Fields []devField
}

func (d *devIDP) renderLogin(w http.ResponseWriter, req devAuthRequest, username, problem string) {
	d.renderHTML(w, http.StatusOK, devLoginHTML(devLoginPage{
		Action: d.basePath + "/authorize", Error: problem, Username: username,
		Hidden: req.fields(), Users: d.users,
	}))
}

// renderHTML writes a whole page with headers that keep it from being
// framed, cached or sniffed, and allow only its own inline script.
func (d *devIDP) renderHTML(w http.ResponseWriter, status int, page string) {
	sum := sha256.Sum256([]byte(devAutoSubmitJS))
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-"+
		base64.StdEncoding.EncodeToString(sum[:])+"'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	io.WriteString(w, page)
}

// The pages are built by hand with html.EscapeString on every value rather
// than with html/template: the template package's reflection keeps the
// linker from dropping unused methods, which cost the binary 2.4 MB.

const devPageStyle = `<style>
body{font-family:system-ui,-apple-system,sans-serif;background:#f3f4f6;color:#111827;margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center}
main{background:#fff;padding:2rem;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.12);width:min(22rem,90vw)}
h1{font-size:1.2rem;margin:0 0 1.25rem}
label{display:block;margin:.8rem 0 .3rem;font-size:.9rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #d1d5db;border-radius:6px;font-size:1rem}
button{margin-top:1.4rem;width:100%;padding:.65rem;border:0;border-radius:6px;background:#1d4ed8;color:#fff;font-size:1rem;cursor:pointer}
.error{background:#fee2e2;color:#991b1b;padding:.6rem;border-radius:6px;margin:0 0 .5rem}
.hint{color:#6b7280;font-size:.8rem;margin:1.25rem 0 0}
</style>`

// devPage wraps a body in the common head; title and body are HTML already
// escaped by the caller.
func devPage(title, body string) string {
	return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>` + title + ` · scaiwave dev IdP</title>
` + devPageStyle + `
</head>
<body>
<main>
` + body + `</main>
</body>
</html>
`
}

var esc = html.EscapeString

func devHiddenFields(b *strings.Builder, fields []devField) {
	for _, f := range fields {
		fmt.Fprintf(b, "<input type=\"hidden\" name=\"%s\" value=\"%s\">\n", esc(f.Name), esc(f.Value))
	}
}

func devLoginHTML(p devLoginPage) string {
	var b strings.Builder
	b.WriteString("<h1>Sign in to scaiwave (development)</h1>\n")
	if p.Error != "" {
		fmt.Fprintf(&b, "<p class=\"error\" role=\"alert\">%s</p>\n", esc(p.Error))
	}
	fmt.Fprintf(&b, "<form method=\"post\" action=\"%s\">\n", esc(p.Action))
	devHiddenFields(&b, p.Hidden)
	fmt.Fprintf(&b, `<label for="username">Username</label>
<input id="username" name="username" type="text" value="%s" autocomplete="username" autocapitalize="none" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p class="hint">Demo accounts: `, esc(p.Username))
	for i, u := range p.Users {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "<code>%s</code> / <code>%s</code>", esc(u.Username), esc(u.Password))
	}
	b.WriteString("</p>\n")
	return devPage("Sign in", b.String())
}

func devErrorHTML(msg string) string {
	return devPage("Request refused", `<h1>Request refused</h1>
<p class="error" role="alert">`+esc(msg)+`</p>
<p class="hint">The application that sent you here made an invalid sign-in request.</p>
`)
}

// devSignedOutHTML is the signed-out page; note, when not "", says what
// became of the back-channel logout.
func devSignedOutHTML(note string) string {
	body := "<h1>Signed out</h1>\n<p>You are signed out of the scaiwave development IdP.</p>\n"
	if note != "" {
		body += "<p class=\"hint\">" + esc(note) + ".</p>\n"
	}
	return devPage("Signed out", body)
}

func devAutoPostHTML(p devAutoPost) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<form method=\"post\" action=\"%s\">\n", esc(p.Action))
	devHiddenFields(&b, p.Fields)
	b.WriteString("<noscript><p>JavaScript is off: press the button to continue.</p><button type=\"submit\">Continue</button></noscript>\n</form>\n")
	b.WriteString("<script>" + devAutoSubmitJS + "</script>\n")
	return devPage("Signing in", b.String())
}
