package interop

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pkce is one PKCE pair (RFC 7636, S256).
type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := randomString(32) // 43 characters of base64url
	sum := sha256.Sum256([]byte(v))
	return pkce{verifier: v, challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// browser is a minimal user agent: a cookie jar, redirects followed by
// hand so that the one to the service's redirect URI can be caught, and HTML
// forms filled in and submitted as a person would.
type browser struct {
	t        *testing.T
	client   *http.Client
	stopAt   string // the service's redirect URI
	username string
	password string
}

func newBrowser(t *testing.T, stopAt, username, password string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{
		t: t,
		client: &http.Client{
			Jar:     jar,
			Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		stopAt:   stopAt,
		username: username,
		password: password,
	}
}

// signIn starts at authURL and walks the provider's pages until the
// provider sends the browser to the redirect URI; it returns that URL's
// query (code, state, iss or error). Each step is logged by method, path
// and status only: queries carry state, codes and PKCE values.
func (b *browser) signIn(authURL string) (url.Values, error) {
	method, target, form := http.MethodGet, authURL, url.Values(nil)
	for step := 1; step <= 12; step++ {
		if b.isCallback(target) {
			u, _ := url.Parse(target)
			if method == http.MethodPost {
				return form, nil // response_mode=form_post
			}
			return u.Query(), nil
		}
		var req *http.Request
		var err error
		if method == http.MethodPost {
			req, err = http.NewRequest(method, target, strings.NewReader(form.Encode()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		} else {
			req, err = http.NewRequest(method, target, nil)
		}
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		resp, err := b.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("step %d %s %s: %v", step, method, pathOf(target), err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		b.t.Logf("browser step %d: %s %s -> %d", step, method, pathOf(target), resp.StatusCode)

		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				return nil, fmt.Errorf("step %d: redirect without Location", step)
			}
			method, target, form = http.MethodGet, loc.String(), nil
		case resp.StatusCode == http.StatusOK:
			f, err := b.pickForm(string(body), req.URL)
			if err != nil {
				return nil, fmt.Errorf("step %d %s %s: %v; page text: %q", step, method, pathOf(target), err, pageText(body))
			}
			b.t.Logf("browser step %d: page has a form: %s %s with fields %v", step, f.method, pathOf(f.action), fieldNames(f.values))
			method, target, form = f.method, f.action, f.values
		default:
			return nil, fmt.Errorf("step %d %s %s: status %d; page text: %q", step, method, pathOf(target), resp.StatusCode, pageText(body))
		}
	}
	return nil, fmt.Errorf("no redirect to %s after 12 steps", b.stopAt)
}

func (b *browser) isCallback(target string) bool {
	u, err := url.Parse(target)
	if err != nil {
		return false
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String() == b.stopAt
}

// htmlForm is a form ready to submit.
type htmlForm struct {
	method string
	action string
	values url.Values
}

var (
	formRe   = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRe  = regexp.MustCompile(`(?is)<(input|button)\b([^>]*)>`)
	attrRe   = regexp.MustCompile(`(?is)([a-z_:][-a-z0-9_:.]*)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?`)
	tagRe    = regexp.MustCompile(`(?s)<[^>]*>`)
	styleRe  = regexp.MustCompile(`(?is)<(style|script)\b.*?</(style|script)>`)
	spacesRe = regexp.MustCompile(`\s+`)
)

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRe.FindAllStringSubmatch(s, -1) {
		name := strings.ToLower(a[1])
		if _, seen := m[name]; seen {
			continue
		}
		m[name] = html.UnescapeString(a[2] + a[3] + a[4])
	}
	return m
}

// pickForm finds the form a person would submit: the one with a password
// field (a login page), else the only form on the page (consent, or a
// form_post to the redirect URI). It fills the username and password fields
// and keeps every hidden field as it is.
func (b *browser) pickForm(page string, base *url.URL) (*htmlForm, error) {
	forms := formRe.FindAllStringSubmatch(page, -1)
	if len(forms) == 0 {
		return nil, fmt.Errorf("page has no form")
	}
	chosen := -1
	for i, f := range forms {
		if regexp.MustCompile(`(?i)type\s*=\s*["']?password`).MatchString(f[2]) {
			chosen = i
			break
		}
	}
	if chosen < 0 {
		if len(forms) > 1 {
			return nil, fmt.Errorf("page has %d forms and none asks for a password", len(forms))
		}
		chosen = 0
	}
	fa := attrs(forms[chosen][1])
	method := strings.ToUpper(fa["method"])
	if method == "" {
		method = http.MethodGet
	}
	action := base
	if a := fa["action"]; a != "" {
		u, err := base.Parse(a)
		if err != nil {
			return nil, fmt.Errorf("form action %q: %v", a, err)
		}
		action = u
	}
	vals := url.Values{}
	submitted := false
	for _, in := range inputRe.FindAllStringSubmatch(forms[chosen][2], -1) {
		tag := strings.ToLower(in[1])
		a := attrs(in[2])
		name := a["name"]
		typ := strings.ToLower(a["type"])
		if tag == "button" {
			// The first named submit button is the one pressed.
			if name != "" && !submitted && (typ == "" || typ == "submit") {
				vals.Set(name, a["value"])
				submitted = true
			}
			continue
		}
		if name == "" {
			continue
		}
		switch typ {
		case "password":
			vals.Set(name, b.password)
		case "hidden":
			vals.Set(name, a["value"])
		case "submit":
			if !submitted {
				vals.Set(name, a["value"])
				submitted = true
			}
		case "checkbox", "radio":
			if _, on := a["checked"]; on {
				vals.Add(name, a["value"])
			}
		default: // text, email, or no type
			switch strings.ToLower(name) {
			case "username", "login", "user", "email", "loginname":
				vals.Set(name, b.username)
			default:
				vals.Set(name, a["value"])
			}
		}
	}
	// A submit button outside the form that names it (form="ID"), as
	// oidc-provider's logout page has: the first named one is pressed.
	if id := fa["id"]; id != "" && !submitted {
		for _, in := range inputRe.FindAllStringSubmatch(page, -1) {
			a := attrs(in[2])
			typ := strings.ToLower(a["type"])
			if a["form"] == id && a["name"] != "" && (typ == "" || typ == "submit") {
				vals.Set(a["name"], a["value"])
				break
			}
		}
	}
	if method == http.MethodGet {
		q := action.Query()
		for k, v := range vals {
			q[k] = v
		}
		u := *action
		u.RawQuery = q.Encode()
		return &htmlForm{method: method, action: u.String()}, nil
	}
	return &htmlForm{method: method, action: action.String(), values: vals}, nil
}

func fieldNames(v url.Values) []string {
	var names []string
	for k := range v {
		names = append(names, k)
	}
	return names
}

// pathOf is a URL without its query: what may be logged of it.
func pathOf(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<bad URL>"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// pageText is the visible text of a page, shortened, for an error message.
func pageText(b []byte) string {
	s := styleRe.ReplaceAllString(string(b), " ")
	s = tagRe.ReplaceAllString(s, " ")
	s = strings.TrimSpace(spacesRe.ReplaceAllString(html.UnescapeString(s), " "))
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
