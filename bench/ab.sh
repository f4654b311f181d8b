#!/usr/bin/env bash
# ab.sh measures the server CPU per sign-in of two builds, BASE (a commit, default 63bcf4e, the
# reference of issue 21) against the working tree, interleaved: for each round, each number of
# users and each build it starts a fresh server (new data directory, default flags), runs the
# harness for D against it and stops it. Beside the harness's figures it prints the context
# switches per sign-in of all the server's threads (voluntary and not, from /proc). Take the
# medians over the rounds; the machine is shared and noisy.
#
#   bench/ab.sh                              # RUNS=3 rounds of 10 s at 8, 32 and 128 users
#   BASE=f316818 USERS='8 32' RUNS=5 bench/ab.sh
#
# Needs go, curl and jq; uses 127.0.0.1:${PORT:-18090}; keeps the JSON summaries in OUT.
set -euo pipefail
RUNS=${RUNS:-3} D=${D:-10s} PORT=${PORT:-18090} BASE=${BASE:-63bcf4e} USERS=${USERS:-8 32 128}
OUT=${OUT:-$(mktemp -d /tmp/webauthnd-ab.XXXXXX)}
URL=http://127.0.0.1:$PORT
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
echo "results in $OUT: base $BASE against $(git rev-parse --short HEAD) and the working tree" >&2
rm -rf "$OUT/base-src"
git worktree add -q --detach "$OUT/base-src" "$BASE"
(cd "$OUT/base-src" && go build -o "$OUT/base" ./cmd/webauthnd)
git worktree remove --force "$OUT/base-src"
go build -o "$OUT/head" ./cmd/webauthnd
go build -o "$OUT/bench" ./bench

switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}'; }

for round in $(seq "$RUNS"); do
	for users in $USERS; do
		for build in base head; do
			rm -rf "$OUT/data"
			"$OUT/$build" serve --addr "127.0.0.1:$PORT" --data-dir "$OUT/data" >/dev/null 2>"$OUT/server.log" &
			pid=$!
			for _ in $(seq 100); do curl -fs "$URL/webauthn/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
			before=$(switches "$pid")
			json="$OUT/$build-$users-$round.json"
			"$OUT/bench" --url "$URL" --license-file "$OUT/data/default-license.key" --pid "$pid" --progress=false \
				--json "$json" --scenario signin --users "$users" --duration "$D" >"${json%.json}.txt" 2>&1 || true
			after=$(switches "$pid")
			kill "$pid" && wait "$pid" || true
			echo "$build users=$users round=$round $(jq -r --argjson sw $((after - before)) \
				'"\(.ceremonies.per_second)/s cpu=\(.server.cpu_us_per_ceremony)µs floor×\(.server.floor_multiple) result-p99=\(.calls["assertion/result"].p99_ms)ms others-busy=\(.machine.other_cores_busy) switches/sign-in=\(if .ceremonies.ok > 0 then ($sw / .ceremonies.ok * 100 | round / 100) else "-" end)"' "$json")"
		done
	done
done
