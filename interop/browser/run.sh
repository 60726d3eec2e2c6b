#!/usr/bin/env bash
# A real browser signs in through scaiwave-auth -dev: Debian's headless
# Chromium, driven by playwright-core (pinned in package-lock.json, never
# downloading a browser of its own), opens the landing page and the dev app,
# signs in as alice on the dev IdP's form, and must land on the dev app's
# page showing alice's participant (then bob, in and out). See signin.mjs.
#
#   bash interop/browser/run.sh
#   BROWSER_SHOTS=/tmp/shots bash interop/browser/run.sh   # where the screenshots go
#
# Installs what is missing (chromium with apt-get, playwright-core with npm
# ci), builds the binary, runs -dev on a free loopback port with a database
# in a temporary directory. Anything that cannot be installed or started is
# a failure that says which, never a skip.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PATH="$PATH:/usr/local/go/bin"
chromium=/usr/bin/chromium

fail() {
  echo "browser: FAILED: $*" >&2
  exit 1
}

if [ ! -x "$chromium" ]; then
  echo "== install Debian's chromium (apt-get)"
  command -v apt-get >/dev/null 2>&1 || fail "$chromium is missing and there is no apt-get to install it"
  apt-get update -qq || fail "apt-get update failed: cannot install chromium"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    || fail "apt-get install chromium failed"
  [ -x "$chromium" ] || fail "apt-get installed chromium, but $chromium is not there"
fi
# Debian's wrapper script prints shell noise on stderr; the version is on stdout.
echo "browser: $("$chromium" --version 2>/dev/null)"

for tool in go node npm; do
  command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is not on PATH; the browser test needs Go, Node.js (20 or later) and npm"
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "node $(node --version) is too old for playwright-core (needs 20 or later)"

echo "== npm ci in interop/browser (playwright-core; no browser download)"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error) \
  || fail "npm ci in interop/browser failed: playwright-core could not be installed from the npm registry"
want=$(node -p 'require(process.argv[1]).dependencies["playwright-core"]' "$here/package.json")
got=$(node -p 'require(process.argv[1]).version' "$here/node_modules/playwright-core/package.json" 2>/dev/null) \
  || fail "playwright-core is missing from interop/browser/node_modules after npm ci"
[ "$got" = "$want" ] || fail "playwright-core $got installed, $want pinned"
echo "browser: playwright-core $got"

work=$(mktemp -d)
shots=${BROWSER_SHOTS:-$(mktemp -d "${TMPDIR:-/tmp}/scaiwave-browser-shots.XXXXXX")}
mkdir -p "$shots"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== build scaiwave-auth"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$work/scaiwave-auth" .) || fail "go build failed"

echo "== start -dev on a free loopback port"
# Port 0: the banner on stdout names the address the kernel chose.
(cd "$work" && exec "$work/scaiwave-auth" -dev -addr 127.0.0.1:0 -db "$work/dev.db") >"$work/stdout" 2>"$work/stderr" &
pid=$!
base=""
for _ in $(seq 1 100); do
  base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/stdout" 2>/dev/null | head -n 1 || true)
  if [ -n "$base" ] && curl -fsS "$base/readyz" >/dev/null 2>&1; then break; fi
  base=""
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$base" ]; then
  cat "$work/stderr" >&2
  fail "scaiwave-auth -dev did not become ready in 10 s"
fi
grep -qx "  $base/" "$work/stdout" || fail "the -dev banner does not print the landing page's link $base/"
echo "browser: scaiwave-auth -dev at $base"

echo "== signin.mjs"
status=0
SCAIWAVE_BASE="$base" SHOT_DIR="$shots" CHROMIUM="$chromium" node "$here/signin.mjs" || status=$?
kill -TERM "$pid"
wait "$pid" || fail "scaiwave-auth -dev exited with status $? after SIGTERM"
pid=""
if [ "$status" -ne 0 ]; then
  echo "-- the service's log:" >&2
  tail -n 40 "$work/stderr" >&2
  fail "the browser sign-in failed (signin.mjs exit status $status); screenshots, if any, in $shots"
fi
echo "browser: ok; screenshots in $shots"
