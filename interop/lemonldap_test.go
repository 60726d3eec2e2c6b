package interop

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// llngPortalPSGI is the portal application of Debian's
// liblemonldap-ng-portal-perl; run.sh installs it with apt-get.
const llngPortalPSGI = "/usr/share/lemonldap-ng/portal/htdocs/index.psgi"

// startLemonLDAP runs the LemonLDAP::NG portal (its OpenID provider) under
// plackup on a loopback port, with no web server in front: the
// configuration is interop/lemonldap/lmConf-1.json (a File backend) with
// this run's port, directories, signing key and the service's redirect URI
// filled in. Users come from the Demo backend (dwho/dwho, "Doctor Who").
func startLemonLDAP(t *testing.T, p *peer, svcBase, redirectURI string) *idp {
	t.Helper()
	plackup, err := exec.LookPath("plackup")
	if err != nil {
		t.Fatalf("plackup is not on PATH: install libplack-perl (interop/run.sh does)")
	}
	if _, err := os.Stat(llngPortalPSGI); err != nil {
		t.Fatalf("LemonLDAP::NG's portal is not installed (%v): interop/run.sh installs liblemonldap-ng-portal-perl with apt-get", err)
	}
	dir := filepath.Join(workDir, fmt.Sprintf("lemonldap-%s-%d", p.name, time.Now().UnixNano()))
	for _, sub := range []string{"conf", "cache", "sessions/lock", "psessions/lock"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	portal := fmt.Sprintf("http://127.0.0.1:%d", port)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	jsonStr := func(s string) string { b, _ := json.Marshal(s); return string(b[1 : len(b)-1]) }
	fill := strings.NewReplacer(
		"@DIR@", jsonStr(dir),
		"@PORTAL@", portal,
		"@KEY@", randomString(24),
		"@PRIVATE_KEY@", jsonStr(string(privPEM)),
		"@PUBLIC_KEY@", jsonStr(string(pubPEM)),
		"@KID@", "interop-"+randomString(6),
		"@CLIENT_SECRET@", jsonStr(p.clientSecret),
		"@REDIRECT_URI@", jsonStr(redirectURI),
		"@REDIRECT_URI_JWT@", jsonStr(redirectURI),
		"@POST_LOGOUT_URI@", jsonStr(svcBase+"/signed-out"),
		"@POST_LOGOUT_URI_JWT@", jsonStr(svcBase+"/signed-out"),
	)
	copyFilled := func(src, dst string, r *strings.Replacer) {
		b, err := os.ReadFile(filepath.Join(interopDir, "lemonldap", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(r.Replace(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFilled("lmConf-1.json", filepath.Join(dir, "conf", "lmConf-1.json"), fill)
	if b, _ := os.ReadFile(filepath.Join(dir, "conf", "lmConf-1.json")); !json.Valid(b) {
		t.Fatal("the filled-in lmConf-1.json is not valid JSON")
	}
	ini := filepath.Join(dir, "lemonldap-ng.ini")
	copyFilled("lemonldap-ng.ini", ini, strings.NewReplacer("@DIR@", dir))

	proc := startProc(t, "lemonldap-"+p.name, dir, []string{"LLNG_DEFAULTCONFFILE=" + ini}, plackup,
		"-s", "HTTP::Server::PSGI", "--host", "127.0.0.1", "--port", fmt.Sprint(port), llngPortalPSGI)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if proc.exited() {
			t.Fatalf("LemonLDAP::NG exited before it was ready (%v): %s", proc.err, lastLine(proc.logPath))
		}
		st, body, err := get(portal + "/.well-known/openid-configuration")
		if err == nil && st == http.StatusOK {
			break
		}
		if err == nil && st >= 500 {
			// The portal answers 500 "Initialization failed" for a
			// configuration or a Perl module it cannot load: that will not
			// heal by waiting.
			t.Fatalf("LemonLDAP::NG answers %d: %s (the reason is in its log below)", st, pageText(body))
		}
		if time.Now().After(deadline) {
			t.Fatalf("LemonLDAP::NG not ready within 60 s (last: %d %v)", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return &idp{issuer: portal}
}
