#!/usr/bin/env bash
# Interop tests of scaiwave-auth against two real OpenID providers:
# zitadel/oidc's example OP (Go module in interop/zitadel) and node
# oidc-provider (npm package in interop/node). Installs both at the pinned
# versions, then runs the Go tests of interop/ (their own module, so the
# product's `go test ./...` never runs them). Everything listens on
# 127.0.0.1 only.
#
#   bash interop/run.sh                    # all of it
#   bash interop/run.sh -run 'TestNode'    # extra arguments go to `go test`
#   INTEROP_KEEP=1 bash interop/run.sh     # keep the scratch directory (logs, configs)
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

echo "== install node oidc-provider (npm ci in interop/node)"
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error) \
  || fail "npm ci in interop/node failed: node oidc-provider could not be installed from the npm registry"
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

echo "== interop tests (go test in interop/; builds the product and the zitadel OP first)"
status=0
(cd "$here" && go test -trimpath -count=1 -v -timeout 8m "$@" .) || status=$?
echo "interop: $(( $(date +%s) - started )) s in all"
if [ "$status" -ne 0 ]; then
  echo "interop: FAILED (go test exit status $status); the failing subtests are listed above with their reasons" >&2
fi
exit "$status"
