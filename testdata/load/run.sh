#!/usr/bin/env bash
# run.sh: the load runs of docs/performance.md, in one go.
#
#   bash testdata/load/run.sh            # needs go, wrk (apt-get install wrk) and curl
#
# It builds scaiwave-auth from this tree and a trivial net/http handler (the
# floor: what this machine serves at all), mints access tokens with the
# development IdP's key, registers their subjects once, and then, ROUNDS
# times and for each number of connections in CONNS, runs on a fresh process
# each:
#   trivial  the floor, sent the same request as "cached"
#   cached   POST /v1/auth/register with one token, again and again
#   cold     POST /v1/auth/register with a token never seen before each time,
#            for people already registered (verification, not fsync, is the cost)
#   cached-dpop, cold-dpop (only when RUNS names them): the same with
#            DPoP-bound tokens and a fresh proof per request, minted just
#            before the run (proofs are good for a minute): DPOP_REQUESTS
#            (default 100000) proofs for one token, DPOP_COLD_REQUESTS
#            (default 30000) tokens with a proof each
# and prints requests per second, the ratio to the floor of the same round,
# p50 and p99 latency, non-2xx answers (wrk counts status >= 400) and socket
# errors, the server's peak RSS (VmHWM) and its CPU time per request. A fresh
# process per run makes VmHWM that run's own peak and starts "cold" with an
# empty cache.
#
# Settings (environment):
#   ROUNDS=3 CONNS="32 256" DURATION=10s THREADS=1 (wrk -t)
#   TOKENS=150000 SUBJECTS=1000   tokens minted for the cold runs, and people
#   LOAD_DIR=/tmp/scaiwave-load   work directory (database, key, tokens, logs)
#   PORT=18080                    the service (the floor listens on PORT+1)
#   BIN=path                      measure this binary instead of building one
#   COMPARE=path                  also measure this binary (label "compare"),
#                                 e.g. a build of main, in the same rounds
#   NOCACHE=1                     also measure a -tags tokencacheoff build
#   PG_URL=postgres://…           also measure a -tags postgres build on this
#                                 database (label "pg"); its CPU per request
#                                 counts the server's postgres processes too
#                                 (same machine), in column pg_cpu_us/req
#   SERVICE_ENV="GOGC=100 GOMEMLIMIT=64MiB"   environment of the service runs only
#   RUNS="trivial cached cold"    which runs to make
# The machine may be shared: compare the ratios within a round, and read the
# spread over rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"32 256"}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-1}
TOKENS=${TOKENS:-150000}
SUBJECTS=${SUBJECTS:-1000}
LOAD_DIR=${LOAD_DIR:-/tmp/scaiwave-load}
PORT=${PORT:-18080}
RUNS=${RUNS:-"trivial cached cold"}
ADDR=127.0.0.1:$PORT
FLOOR_ADDR=127.0.0.1:$((PORT + 1))
ISSUER=http://$ADDR/dev/idp

for tool in go wrk curl; do
	command -v $tool >/dev/null || { echo "run.sh: $tool is needed" >&2; exit 1; }
done
mkdir -p "$LOAD_DIR"
LOAD_DIR=$(cd "$LOAD_DIR" && pwd)

echo "== building"
if [ -z "${BIN:-}" ]; then
	BIN=$LOAD_DIR/scaiwave-auth
	CGO_ENABLED=0 go build -o "$BIN" .
fi
go build -o "$LOAD_DIR/trivial" ./testdata/load/trivial
BINS=("service=$BIN")
if [ -n "${COMPARE:-}" ]; then BINS+=("compare=$COMPARE"); fi
if [ -n "${PG_URL:-}" ]; then
	CGO_ENABLED=0 go build -tags postgres -o "$LOAD_DIR/scaiwave-auth-pg" .
	BINS+=("pg=$LOAD_DIR/scaiwave-auth-pg")
fi
if [ "${NOCACHE:-}" = 1 ]; then
	CGO_ENABLED=0 go build -tags tokencacheoff -o "$LOAD_DIR/scaiwave-auth-nocache" .
	BINS+=("nocache=$LOAD_DIR/scaiwave-auth-nocache")
fi

PID=
stop() {
	if [ -n "$PID" ]; then
		kill -TERM "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
		PID=
	fi
}
trap stop EXIT

# start BIN [LABEL]: the service in -dev on ADDR with the load database of
# LABEL (default: service); the dev IdP keeps its key beside it, in LOAD_DIR,
# so tokens minted once stay valid across runs and binaries. Each binary has
# a database of its own: an older binary refuses a newer one's schema.
start() {
	local db=$LOAD_DIR/dev.db
	[ "${2:-service}" = service ] || db=$LOAD_DIR/$2.db
	if [ "${2:-}" = pg ]; then
		# The pg build on PG_URL; -dev keeps its IdP's key in the working
		# directory then, so it runs in LOAD_DIR.
		# shellcheck disable=SC2086 # SERVICE_ENV is a list of NAME=value words
		(cd "$LOAD_DIR" && exec env ${SERVICE_ENV:-} "$1" -dev -addr "$ADDR" -db "$PG_URL" >/dev/null 2>>"$LOAD_DIR/service.log") &
	else
		# shellcheck disable=SC2086 # SERVICE_ENV is a list of NAME=value words
		env ${SERVICE_ENV:-} "$1" -dev -addr "$ADDR" -db "$db" >/dev/null 2>>"$LOAD_DIR/service.log" &
	fi
	PID=$!
	wait_up "http://$ADDR/healthz"
}

start_floor() {
	"$LOAD_DIR/trivial" -addr "$FLOOR_ADDR" 2>>"$LOAD_DIR/trivial.log" &
	PID=$!
	wait_up "http://$FLOOR_ADDR/"
}

wait_up() {
	# Something else answering on the port would be measured instead.
	sleep 0.05
	kill -0 "$PID" 2>/dev/null || { echo "run.sh: the server exited (port taken?); see $LOAD_DIR/*.log" >&2; exit 1; }
	for _ in $(seq 200); do
		curl -fs -o /dev/null "$1" && return 0
		kill -0 "$PID" 2>/dev/null || { echo "run.sh: the server exited; see $LOAD_DIR/*.log" >&2; exit 1; }
		sleep 0.05
	done
	echo "run.sh: $1 did not answer" >&2
	exit 1
}

# mint FILE N [SUBJECTS]: N tokens, for SUBJECTS people (none: one each).
mint() {
	SCAIWAVE_MINT_TOKENS=$2 SCAIWAVE_MINT_SUBJECTS=${3:-} SCAIWAVE_MINT_TTL=24h \
		SCAIWAVE_MINT_ISSUER=$ISSUER SCAIWAVE_MINT_KEYDIR=$LOAD_DIR SCAIWAVE_MINT_OUT=$1 \
		go test -count=1 -run '^TestMintLoadTokens$' . >/dev/null
}

# mint_dpop FILE N SAME: N lines of a DPoP-bound token and a proof for
# /v1/auth/register; SAME=1: one token for all.
mint_dpop() {
	SCAIWAVE_MINT_DPOP_HTU=http://$ADDR/v1/auth/register SCAIWAVE_MINT_DPOP_SAME=$3 mint "$1" "$2" "$SUBJECTS"
}

# Tokens are reused while younger than 20 hours (they are valid for 24).
fresh() { [ -s "$1" ] && [ -n "$(find "$1" -mmin -1200)" ]; }

echo "== tokens and people"
start "$BIN" # creates the database and the dev IdP's key
if ! fresh "$LOAD_DIR/people.txt"; then
	mint "$LOAD_DIR/people.txt" "$SUBJECTS" "$SUBJECTS"
fi
if ! fresh "$LOAD_DIR/cold.txt" || [ "$(wc -l <"$LOAD_DIR/cold.txt")" -lt "$TOKENS" ]; then
	echo "minting $TOKENS tokens (RSA signing: a minute or two)"
	mint "$LOAD_DIR/cold.txt" "$TOKENS" "$SUBJECTS"
fi
# Register every person once (a new participant per token, fsync-bound), in
# every binary's database.
wrk -t1 -c8 -d3s -s testdata/load/register.lua "http://$ADDR" -- "$LOAD_DIR/people.txt" distinct 1 >/dev/null
stop
for b in "${BINS[@]:1}"; do
	rm -f "$LOAD_DIR/${b%%=*}.db"*
	start "${b#*=}" "${b%%=*}"
	wrk -t1 -c8 -d3s -s testdata/load/register.lua "http://$ADDR" -- "$LOAD_DIR/people.txt" distinct 1 >/dev/null
	stop
done

# cpu_ticks PID: user and system time of the process so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# pg_ticks: the same for every postgres process on this machine (0 if none).
pg_ticks() {
	local sum=0 p
	for p in $(pgrep -x postgres 2>/dev/null || true); do
		sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$sum"
}

# load NAME CONNS MODE URL [FILE]: one wrk run against the process PID; appends its
# result to RESULTS and prints it.
load() {
	local name=$1 conns=$2 mode=$3 url=$4 file=${5:-$LOAD_DIR/cold.txt}
	[ "$mode" = same ] && file=$LOAD_DIR/people.txt
	local t0 t1 g0 g1 out hwm
	t0=$(cpu_ticks "$PID")
	g0=$(pg_ticks)
	out=$(wrk -t"$THREADS" -c"$conns" -d"$DURATION" -s testdata/load/register.lua "$url" -- "$file" "$mode" "$THREADS" | grep '^RESULT')
	t1=$(cpu_ticks "$PID")
	g1=$(pg_ticks)
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
	echo "$out" | awk -v round="$round" -v name="$name" -v conns="$conns" -v hwm="$hwm" \
		-v cpu=$((t1 - t0)) -v pgcpu=$((g1 - g0)) -v hz="$(getconf CLK_TCK)" '{
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		rps = v["requests"] / (v["duration_us"] / 1e6)
		printf "%s %s %d %.0f %.2f %.2f %d %d %.1f %.1f %d %.1f\n", round, name, conns, rps,
			v["p50_us"] / 1000, v["p99_us"] / 1000, v["non2xx"], v["socket_errors"],
			hwm / 1024, cpu / hz * 1e6 / v["requests"], v["tokens_reused"], pgcpu / hz * 1e6 / v["requests"]
	}' | tee -a "$RESULTS" | awk '{ printf "%-5s %-16s %5s %9s %8s %8s %6s %6s %8s %10s %10s%s\n",
		$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, ($11 == 1 ? "  (tokens ran out: some were sent twice)" : "") }'
}

RESULTS=$LOAD_DIR/results.txt
: >"$RESULTS"
echo "== load: wrk -t$THREADS -d$DURATION, rounds $ROUNDS, connections $CONNS"
printf '%-5s %-16s %5s %9s %8s %8s %6s %6s %8s %10s %10s\n' round run conns req/s p50_ms p99_ms non2xx sockerr rss_MiB cpu_us/req pg_cpu_us/req
for round in $(seq "$ROUNDS"); do
	for conns in $CONNS; do
		for run in $RUNS; do
			if [ "$run" = trivial ]; then
				start_floor
				load trivial "$conns" same "http://$FLOOR_ADDR"
				stop
				continue
			fi
			for b in "${BINS[@]}"; do
				mode=same
				[ "$run" = cold ] && mode=distinct
				file=
				case $run in
				cached-dpop) mint_dpop "$LOAD_DIR/dpop.txt" "${DPOP_REQUESTS:-100000}" 1; file=$LOAD_DIR/dpop.txt mode=distinct ;;
				cold-dpop) mint_dpop "$LOAD_DIR/dpop.txt" "${DPOP_COLD_REQUESTS:-30000}" 0; file=$LOAD_DIR/dpop.txt mode=distinct ;;
				esac
				start "${b#*=}" "${b%%=*}"
				load "${b%%=*}-$run" "$conns" "$mode" "http://$ADDR" "$file"
				stop
			done
		done
	done
done

echo
echo "== summary: median over rounds [min-max]; ratio = req/s over the same round's trivial run"
awk '
	{ key = $2 " " $3; rps[key, $1] = $4; rss[key, $1] = $9; cpu[key, $1] = $10; p99[key, $1] = $6; pgc[key, $1] = $12
	  keys[key] = 1; rounds[$1] = 1; if ($2 == "trivial") floor[$3, $1] = $4 }
	function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	function stat(arr, key, fmt,   n, r, x, lo, hi) { n = 0; lo = ""; hi = ""
		for (r in rounds) if ((key, r) in arr) { x[++n] = arr[key, r] + 0; if (lo == "" || x[n] < lo) lo = x[n]; if (hi == "" || x[n] > hi) hi = x[n] }
		if (n == 0) return "-"
		return sprintf(fmt " [" fmt "-" fmt "]", med(x, n), lo, hi) }
	END {
		printf "%-16s %5s %24s %22s %22s %24s %22s %22s\n", "run", "conns", "req/s", "ratio", "p99_ms", "peak_rss_MiB", "cpu_us/req", "pg_cpu_us/req"
		for (key in keys) {
			split(key, k, " ")
			for (r in rounds) if ((key, r) in rps && (k[2], r) in floor) ratio[key, r] = rps[key, r] / floor[k[2], r]
			printf "%-16s %5s %24s %22s %22s %24s %22s %22s\n", k[1], k[2], stat(rps, key, "%.0f"), stat(ratio, key, "%.2f"),
				stat(p99, key, "%.2f"), stat(rss, key, "%.1f"), stat(cpu, key, "%.1f"), stat(pgc, key, "%.1f")
		}
	}' "$RESULTS" | sort -k2,2n -k1,1
