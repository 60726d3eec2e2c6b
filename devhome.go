package main

// The page at / in -dev: what development mode is and what to try first,
// with links to the dev app's page and to what the service publishes.

import (
	"html"
	"io"
	"net/http"
	"strings"
)

const devHomeStyle = `<style>
main{width:min(38rem,92vw)}
ol{padding-left:1.2rem;line-height:1.5}
li{margin:.5rem 0}
code{background:#f3f4f6;padding:0 .2rem;border-radius:3px;font-size:.85em}
a.button{display:inline-block;padding:.55rem 1rem;border-radius:6px;background:#1d4ed8;color:#fff;text-decoration:none}
ul.links{padding-left:1.2rem;font-size:.9rem;line-height:1.6}
</style>`

// devHomeHTML is the landing page; users are the demo accounts.
func devHomeHTML(users []devUser) string {
	var who []string
	for _, u := range users {
		who = append(who, "<code>"+html.EscapeString(u.Username)+"</code> / <code>"+html.EscapeString(u.Password)+"</code>")
	}
	return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scaiwave-auth development mode</title>
` + devPageStyle + devHomeStyle + `
</head>
<body>
<main>
<h1>scaiwave-auth development mode</h1>
<p>scaiwave-auth signs people in with your OpenID Connect provider, checks the access tokens your API receives, and keeps one participant per person. Here it runs with a built-in test provider and demo users: ` + strings.Join(who, ", ") + `. Nothing here is for production.</p>
<ol>
<li><strong>Sign in in the browser.</strong> The dev app stands in for your web app: it starts the sign-in, you sign in at the test provider, and it shows the participant you became.<br><a class="button" href="` + devSignedInPath + `">Open the dev app</a></li>
<li><strong>Sign out</strong> with the dev app's button: your tokens stop working here at once and are revoked at the test provider, whose sign-out page sends you back.</li>
<li><strong>Use the API from a terminal.</strong> The service printed ready-to-paste <code>curl</code> lines when it started: get tokens with a password, register, refresh, sign out.</li>
</ol>
<p>What the service publishes:</p>
<ul class="links">
<li><a href="/v1/auth/config">/v1/auth/config</a>: the provider and client a front end needs</li>
<li><a href="/v1/openapi.json">/v1/openapi.json</a>: every endpoint and answer</li>
<li><a href="` + devIDPPath + `/.well-known/openid-configuration">the test provider's discovery document</a></li>
<li><a href="/readyz">/readyz</a>: ready once the provider's keys are known</li>
</ul>
</main>
</body>
</html>
`
}

// handleDevHome serves the landing page. It has no script at all.
func handleDevHome(users []devUser) http.Handler {
	page := devHomeHTML(users)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header(), scriptlessPageCSP)
		io.WriteString(w, page)
	})
}
