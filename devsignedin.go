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
// PKCE verifier of the sign-in it began; devSignedOutKey marks a sign-out
// it began, for the page the IdP sends the browser back to.
const (
	devSignedInVerifierKey = "scaiwave-dev-verifier"
	devSignedOutKey        = "scaiwave-dev-signed-out"
)

// devSignedInJS plays the app: it begins every sign-in itself, with a PKCE
// verifier kept in this tab's sessionStorage, and redeems a handoff only
// with that verifier, so a handoff link someone else began (login CSRF) is
// never used. Then it calls /register with the access token and shows the
// participant, and signs out with /logout and the IdP's end-session URL. It
// writes text only (textContent), so no claim can become markup. The tokens
// stay in this script's memory.
const devSignedInJS = `(async () => {
  const $ = (id) => document.getElementById(id);
  const say = (text) => { $("status").textContent = text; };
  const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  let tokens = null;
  const show = (signedIn) => {
    $("participant").hidden = !signedIn;
    $("signout").hidden = !signedIn;
    $("signin").textContent = signedIn ? "Switch account" : "Sign in";
  };
  $("signin").addEventListener("click", async () => {
    const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    sessionStorage.setItem("` + devSignedInVerifierKey + `", verifier);
    location.assign("/v1/auth/authorize?code_challenge=" + challenge + "&code_challenge_method=S256");
  });
  $("signout").addEventListener("click", async () => {
    if (!tokens) return;
    say("Signing out…");
    const form = new URLSearchParams();
    if (tokens.refresh_token) form.set("refresh_token", tokens.refresh_token);
    // No id_token_hint: it would put the ID token in the end-session URL.
    const out = await (await fetch("/v1/auth/logout", {
      method: "POST", headers: { Authorization: "Bearer " + tokens.access_token }, body: form,
    })).json();
    tokens = null;
    show(false);
    if (out.error) { say("The sign-out was refused: " + out.error.code + ": " + out.error.message); return; }
    const said = out.data.revoked ? "You are signed out. Your tokens were revoked here and at the IdP."
      : "You are signed out here. The IdP did not confirm that it revoked your tokens.";
    if (out.data.end_session_url) {
      // The IdP's sign-out page, which sends the browser back here.
      sessionStorage.setItem("` + devSignedOutKey + `", said);
      location.assign(out.data.end_session_url);
      return;
    }
    say(said);
  });
  show(false);
  const q = new URLSearchParams(location.search);
  // One-time or not, the handoff has no business in the history.
  history.replaceState(null, "", location.pathname);
  const verifier = sessionStorage.getItem("` + devSignedInVerifierKey + `");
  sessionStorage.removeItem("` + devSignedInVerifierKey + `");
  const signedOut = sessionStorage.getItem("` + devSignedOutKey + `");
  sessionStorage.removeItem("` + devSignedOutKey + `");
  if (signedOut) { say(signedOut); return; }
  if (q.has("error")) { say("The sign-in did not finish (" + q.get("error") + "). You can try again."); return; }
  if (!q.has("handoff")) { say("You are not signed in."); return; }
  if (!verifier) {
    say("This page did not begin this sign-in, so it left the link alone: a link like this from someone else would sign you in as them. Sign in yourself instead.");
    return;
  }
  say("Finishing the sign-in…");
  const form = new URLSearchParams({ handoff: q.get("handoff"), code_verifier: verifier });
  const login = await (await fetch("/v1/auth/login", { method: "POST", body: form })).json();
  if (login.error) { say("The sign-in could not be finished: " + login.error.code + ": " + login.error.message); return; }
  const reg = await (await fetch("/v1/auth/register", {
    method: "POST", headers: { Authorization: "Bearer " + login.data.access_token },
  })).json();
  if (reg.error) { say("/v1/auth/register refused: " + reg.error.code + ": " + reg.error.message); return; }
  tokens = login.data;
  for (const k of ["display_name", "email", "participant_id", "tenant_id", "personal_workspace_id"]) {
    $(k).textContent = reg.data[k] || "(none)";
  }
  show(true);
  say("Signed in. Your participant:");
})().catch((e) => { document.getElementById("status").textContent = "Something went wrong: " + e.message; });`

const devSignedInStyle = `<style>
[hidden]{display:none !important}
dl{display:grid;grid-template-columns:auto 1fr;gap:.35rem .9rem;margin:1rem 0;font-size:.9rem}
dt{color:#6b7280}
dd{margin:0;overflow-wrap:anywhere}
#status{margin:0 0 .5rem}
.again{display:flex;gap:.6rem;margin-top:1.2rem}
.again button{flex:1;margin:0;padding:.55rem;font-size:.9rem;border-radius:6px}
.again button.secondary{background:#fff;border:1px solid #1d4ed8;color:#1d4ed8}
</style>`

// devSignedInHTML is the whole page; nothing in it depends on the request.
var devSignedInHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scaiwave dev app</title>
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
<button id="signin" type="button">Sign in</button>
<button id="signout" type="button" class="secondary" hidden>Sign out</button>
</div>
<p class="hint">This page plays your web app. To sign you in it makes a one-time secret, keeps it in this tab and sends only its hash to <code>/v1/auth/authorize</code>; when you come back, it trades the handoff and that secret for tokens (<code>POST /v1/auth/login</code>) and calls <code>/v1/auth/register</code>. Sign out calls <code>/v1/auth/logout</code>, then the IdP. <a href="/">Development mode home</a></p>
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
		setPageHeaders(w.Header(), csp)
		io.WriteString(w, devSignedInHTML)
	})
}

// devHandler serves what -dev adds beside the service: the development IdP
// under devIDPPath, the dev app's page at devSignedInPath, and the landing
// page at /.
func devHandler(idp *devIDP) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(devIDPPath+"/", idp.Handler())
	mux.Handle("GET "+devSignedInPath, handleDevSignedIn())
	mux.Handle("GET /{$}", handleDevHome(idp.users))
	return mux
}
