package main

// The page of -dev's stand-in web app, where the browser sign-in ends: it
// redeems the handoff with fetch, registers, and shows the participant. It
// plays the app, not the service, and shares nothing with the service but
// the URLs it calls.

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
)

// devSignedInPath is the dev app's page, the dev tenant's only
// post_login_redirect_uri.
const devSignedInPath = "/dev/signed-in"

// devSignedInVerifierKey is where the page keeps, in sessionStorage, the
// PKCE verifier of a sign-in it began with a code_challenge.
const devSignedInVerifierKey = "scaiwave-dev-verifier"

// devSignedInJS redeems the handoff in the page's URL (with the verifier,
// when this page began the sign-in with a challenge), calls /register with
// the access token and fills in the participant. It writes text only
// (textContent), so no claim can become markup. The tokens stay in this
// script's memory.
const devSignedInJS = `(async () => {
  const $ = (id) => document.getElementById(id);
  const say = (text) => { $("status").textContent = text; };
  const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  $("pkce").addEventListener("click", async () => {
    const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    sessionStorage.setItem("` + devSignedInVerifierKey + `", verifier);
    location.assign("/v1/auth/authorize?code_challenge=" + challenge + "&code_challenge_method=S256");
  });
  const q = new URLSearchParams(location.search);
  // One-time or not, the handoff has no business in the history.
  history.replaceState(null, "", location.pathname);
  if (q.has("error")) { say("The sign-in did not finish: " + q.get("error")); return; }
  if (!q.has("handoff")) { say("Not signed in yet."); return; }
  const form = new URLSearchParams({ handoff: q.get("handoff") });
  const verifier = sessionStorage.getItem("` + devSignedInVerifierKey + `");
  sessionStorage.removeItem("` + devSignedInVerifierKey + `");
  if (verifier) form.set("code_verifier", verifier);
  say("Redeeming the handoff…");
  const login = await (await fetch("/v1/auth/login", { method: "POST", body: form })).json();
  if (login.error) { say("The handoff was refused: " + login.error.code + ": " + login.error.message); return; }
  const reg = await (await fetch("/v1/auth/register", {
    method: "POST", headers: { Authorization: "Bearer " + login.data.access_token },
  })).json();
  if (reg.error) { say("/v1/auth/register refused: " + reg.error.code + ": " + reg.error.message); return; }
  for (const k of ["display_name", "email", "participant_id", "tenant_id", "personal_workspace_id"]) {
    $(k).textContent = reg.data[k] || "(none)";
  }
  $("participant").hidden = false;
  say(verifier ? "Signed in, with PKCE. Your participant:" : "Signed in. Your participant:");
})().catch((e) => { document.getElementById("status").textContent = "Something went wrong: " + e.message; });`

const devSignedInStyle = `<style>
dl{display:grid;grid-template-columns:auto 1fr;gap:.35rem .9rem;margin:1rem 0;font-size:.9rem}
dt{color:#6b7280}
dd{margin:0;overflow-wrap:anywhere}
#status{margin:0 0 .5rem}
.again{display:flex;gap:.6rem;margin-top:1.2rem}
.again a,.again button{flex:1;margin:0;padding:.55rem;font-size:.9rem;text-align:center;border-radius:6px}
.again a{border:1px solid #1d4ed8;color:#1d4ed8;text-decoration:none}
</style>`

// devSignedInHTML is the whole page; nothing in it depends on the request.
var devSignedInHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Signed in · scaiwave dev app</title>
` + devPageStyle + devSignedInStyle + `
</head>
<body>
<main>
<h1>scaiwave dev app</h1>
<p id="status" role="status">Loading…</p>
<dl id="participant" hidden>
<dt>Name</dt><dd id="display_name"></dd>
<dt>Email</dt><dd id="email"></dd>
<dt>Participant</dt><dd id="participant_id"></dd>
<dt>Tenant</dt><dd id="tenant_id"></dd>
<dt>Workspace</dt><dd id="personal_workspace_id"></dd>
</dl>
<div class="again">
<a href="/v1/auth/authorize">Sign in again</a>
<button id="pkce" type="button">Sign in with PKCE</button>
</div>
<p class="hint">This page stands in for your web app: it redeemed the one-time handoff with <code>POST /v1/auth/login</code> and called <code>/v1/auth/register</code>.</p>
</main>
<script>` + devSignedInJS + `</script>
</body>
</html>
`

// handleDevSignedIn serves the dev app's page. Its script may only talk to
// this origin, and the page sends no Referer, so the handoff in its URL
// goes nowhere else.
func handleDevSignedIn() http.Handler {
	sum := sha256.Sum256([]byte(devSignedInJS))
	csp := "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; style-src 'unsafe-inline'; " +
		"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", csp)
		io.WriteString(w, devSignedInHTML)
	})
}

// devHandler serves what -dev adds beside the service: the development IdP
// under devIDPPath and the dev app's page at devSignedInPath.
func devHandler(idp *devIDP) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(devIDPPath+"/", idp.Handler())
	mux.Handle("GET "+devSignedInPath, handleDevSignedIn())
	return mux
}
