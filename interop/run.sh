#!/usr/bin/env bash
# Interop tests of scaiwave-auth against real OpenID providers, one
# scenario for all (interop/README.md has the table): zitadel/oidc's example
# OP (Go module in interop/zitadel), node oidc-provider (npm, interop/node),
# Ory Hydra (Go module in interop/hydra, built once per version and cached)
# and LemonLDAP::NG 2.16 (Debian packages, apt-get), plus Debian's Chromium
# for the browser_chromium step. Installs them at the
# pinned versions, then runs the Go tests of interop/ (their own module, so
# the product's `go test ./...` never runs them). Everything listens on
# 127.0.0.1 only.
#
#   bash interop/run.sh                                  # all of it
#   bash interop/run.sh -run 'TestInterop/hydra'         # extra arguments go to `go test`
#   INTEROP_KEEP=1 bash interop/run.sh                   # keep the scratch directory (logs, configs)
#   INTEROP_BIN=/tmp/other-build bash interop/run.sh     # test a prebuilt product binary
#   INTEROP_CACHE=DIR                                    # where the Hydra binary is cached
#                                                        # (default: beside the Go build cache)
#
# A provider that cannot be installed is a failure with a message saying
# which, never a skip.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
export PATH="$PATH:/usr/local/go/bin"

fail() {
  echo "interop: FAILED: $*" >&2
  exit 1
}

started=$(date +%s)
elapsed() { echo "interop: $1 done at $(( $(date +%s) - started )) s"; }
for tool in go node npm; do
  command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is not on PATH; the interop tests need Go, Node.js (20.19 or later) and npm"
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "node $(node --version) is too old for oidc-provider 9 (needs 20.19 or later)"
echo "interop: $(go version), node $(node --version), npm $(npm --version)"

# Hydra builds in the background (cgo, about two minutes cold) while the
# other providers install; a cached binary for the same go.sum is reused.
hydra_version=$(cd "$here/hydra" && go list -m -f '{{.Version}}' github.com/ory/hydra/v2) \
  || fail "interop/hydra does not resolve github.com/ory/hydra/v2"
cache="${INTEROP_CACHE:-$(dirname "$(go env GOCACHE)")/scaiwave-interop}"
hydra_key=$(sha256sum "$here/hydra/go.sum" | cut -c1-12)
export INTEROP_HYDRA_BIN="$cache/hydra-$hydra_version-$hydra_key"
hydra_log=$(mktemp)
hydra_pid=""
trap 'rm -f "$hydra_log"' EXIT
if [ -x "$INTEROP_HYDRA_BIN" ]; then
  echo "== Ory Hydra $hydra_version: cached at $INTEROP_HYDRA_BIN"
else
  command -v gcc >/dev/null 2>&1 || fail "Ory Hydra is built with cgo (its SQLite driver) and needs gcc; install gcc (apt-get install -y gcc)"
  echo "== Ory Hydra $hydra_version: building into $INTEROP_HYDRA_BIN (in the background)"
  mkdir -p "$cache"
  (
    cd "$here/hydra" &&
    go mod download &&
    CGO_ENABLED=1 go build -trimpath -tags sqlite,sqlite_omit_load_extension -o "$INTEROP_HYDRA_BIN.tmp.$$" github.com/ory/hydra/v2 &&
    mv "$INTEROP_HYDRA_BIN.tmp.$$" "$INTEROP_HYDRA_BIN"
  ) >"$hydra_log" 2>&1 &
  hydra_pid=$!
fi

echo "== install LemonLDAP::NG and Chromium (Debian packages, apt-get)"
# The portal, the FastCGI server package that satisfies its web-server
# dependency without Apache or nginx, plackup to run it, and the Perl
# modules its portal and OpenID provider load at start (captcha, random
# strings, HMAC) that are only Recommends or Suggests of the packages.
# Chromium (the browser_chromium step) is Debian's, never a downloaded one.
llng_pkgs="liblemonldap-ng-portal-perl lemonldap-ng-fastcgi-server libplack-perl libgd-securityimage-perl libimage-magick-perl libstring-random-perl libdigest-hmac-perl libcrypt-openssl-bignum-perl"
missing=""
for p in $llng_pkgs chromium; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  command -v apt-get >/dev/null 2>&1 || fail "LemonLDAP::NG needs the Debian packages$missing, and apt-get is not available here"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "installing$missing needs root (or sudo) for apt-get"
    sudo="sudo"
  fi
  echo "installing:$missing"
  $sudo apt-get update -qq >/dev/null || fail "apt-get update failed: the Debian package lists could not be fetched"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || fail "apt-get install$missing failed: LemonLDAP::NG or Chromium could not be installed from Debian"
fi
llng=$(dpkg-query -W -f='${Version}' liblemonldap-ng-portal-perl)
case "$llng" in
  2.16.*) echo "LemonLDAP::NG $llng" ;;
  *) fail "LemonLDAP::NG $llng installed; the tests and interop/lemonldap/lmConf-1.json are for 2.16" ;;
esac
[ -x /usr/bin/chromium ] || fail "the chromium package is installed, but /usr/bin/chromium is not there"
echo "$(/usr/bin/chromium --version 2>/dev/null)"
elapsed "LemonLDAP::NG and Chromium install"

echo "== install node oidc-provider and playwright-core (npm ci in interop/node, interop/browser)"
# npm ci empties node_modules every time; skip it when node_modules was
# installed by this script from the same package-lock.json.
npm_ci() { # dir, what
  local lock_sum stamp
  lock_sum=$(sha256sum "$1/package-lock.json" | cut -d' ' -f1)
  stamp="$1/node_modules/.scaiwave-installed-from"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$lock_sum" ]; then
    echo "$1/node_modules already installed from this package-lock.json"
    return
  fi
  (cd "$1" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
    || fail "npm ci in $1 failed: $2 could not be installed from the npm registry"
  echo "$lock_sum" >"$stamp"
}
npm_ci "$here/node" "node oidc-provider"
npm_ci "$here/browser" "playwright-core (it drives Debian's Chromium; no browser is downloaded)"
want_node=$(node -p 'require(process.argv[1]).dependencies["oidc-provider"]' "$here/node/package.json")
got_node=$(node -p 'require(process.argv[1]).version' "$here/node/node_modules/oidc-provider/package.json" 2>/dev/null) \
  || fail "oidc-provider is missing from interop/node/node_modules after npm ci"
[ "$got_node" = "$want_node" ] || fail "oidc-provider $got_node installed, $want_node pinned"
echo "oidc-provider $got_node"
elapsed "npm ci"

echo "== download zitadel/oidc (go mod download in interop/zitadel)"
(cd "$here/zitadel" && go mod download) \
  || fail "go mod download in interop/zitadel failed: github.com/zitadel/oidc could not be fetched from the Go module proxy"
zitadel=$(cd "$here/zitadel" && go list -m -f '{{.Version}}' github.com/zitadel/oidc/v3) \
  || fail "github.com/zitadel/oidc/v3 is not resolvable in interop/zitadel"
echo "github.com/zitadel/oidc/v3 $zitadel"
elapsed "zitadel download"

echo "== download the product's modules"
(cd "$root" && go mod download) || fail "go mod download in the repository root failed"
elapsed "product download"

if [ -n "$hydra_pid" ]; then
  echo "== waiting for the Hydra build"
  wait "$hydra_pid" || { cat "$hydra_log" >&2; fail "building Ory Hydra $hydra_version in interop/hydra failed (output above)"; }
  elapsed "Hydra build"
fi
rm -f "$hydra_log"
got_hydra=$(go version -m "$INTEROP_HYDRA_BIN" | awk '$1 == "mod" && $2 == "github.com/ory/hydra/v2" {print $3}')
[ "$got_hydra" = "$hydra_version" ] || fail "$INTEROP_HYDRA_BIN is Hydra '$got_hydra', $hydra_version pinned"
echo "Ory Hydra $got_hydra"

echo "== interop tests (go test in interop/; builds the product and the zitadel OP first)"
status=0
# The providers run in parallel (t.Parallel per provider; each has its own
# ports): they mostly wait on each other's HTTP, so more than GOMAXPROCS.
export INTEROP_RESULTS="${INTEROP_RESULTS:-$(mktemp)}"
(cd "$here" && go test -trimpath -count=1 -v -timeout 10m -parallel "${INTEROP_PARALLEL:-7}" "$@" .) || status=$?
[ -s "$INTEROP_RESULTS" ] && cat "$INTEROP_RESULTS"
echo "interop: $(( $(date +%s) - started )) s in all"
if [ "$status" -ne 0 ]; then
  echo "interop: FAILED (go test exit status $status); the failing subtests are listed above with their reasons" >&2
fi
exit "$status"
