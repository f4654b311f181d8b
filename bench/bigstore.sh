#!/usr/bin/env bash
# bigstore.sh measures sign-ins against a store of a million passkeys (issue 21):
#
#   1. throughput and server CPU per sign-in against a small store (1,000 users) and a big one
#      (BIG_USERS, default 1,000,000), interleaved, each run on a fresh copy of its store;
#   2. the memory the big store needs: the same sign-ins with the server in a memory cgroup
#      (cgroup v1, memory.limit_in_bytes, which counts the page cache the mapped tables fill),
#      at each of LIMITS, after the page cache was dropped and a WARM warm-up. The answer is the
#      smallest limit that still serves 90 % of the unlimited run's throughput.
#
#   bench/bigstore.sh                             # both parts, RUNS=3 rounds of D=15s
#   PARTS=memory LIMITS='512M 256M' bench/bigstore.sh
#
# Needs root (cgroups, drop_caches), go, curl, jq and ~3 GB in OUT. Seeds once per OUT.
set -euo pipefail
RUNS=${RUNS:-3} D=${D:-15s} WARM=${WARM:-10s} PORT=${PORT:-18095} USERS_CONCURRENT=${USERS_CONCURRENT:-128}
BIG_USERS=${BIG_USERS:-1000000} SMALL_USERS=${SMALL_USERS:-1000} SEED=bigstore
PARTS=${PARTS:-throughput memory} LIMITS=${LIMITS:-unlimited 1024M 512M 384M 320M 256M 192M}
OUT=${OUT:-/tmp/webauthnd-bigstore} CG=/sys/fs/cgroup/memory/webauthnd-bigstore
URL=http://127.0.0.1:$PORT
cd "$(dirname "$0")/.."
source bench/lib.sh
mkdir -p "$OUT"
echo "results in $OUT (commit $(git rev-parse --short HEAD), working tree)" >&2
go build -o "$OUT/webauthnd" ./cmd/webauthnd
go build -o "$OUT/bench" ./bench

PID=
# start DIR [CGROUP]: a server on DIR, in the memory cgroup CGROUP if given.
start() {
	if [ -n "${2:-}" ]; then
		sh -c "echo \$\$ > $2/cgroup.procs && exec \"$OUT/webauthnd\" serve --addr 127.0.0.1:$PORT --data-dir $1" >/dev/null 2>"$OUT/server.log" &
	else
		"$OUT/webauthnd" serve --addr "127.0.0.1:$PORT" --data-dir "$1" >/dev/null 2>"$OUT/server.log" &
	fi
	PID=$!
	wait_healthz "$URL" 300 || exit 1
}
stop() { kill "$PID" 2>/dev/null && wait "$PID" || true; }
load() { # load DIR USERS DURATION JSON
	"$OUT/bench" --url "$URL" --license-file "$1/default-license.key" --pid "$PID" --progress=false \
		--json "$4" --scenario signin --users "$USERS_CONCURRENT" --duration "$3" --seeded "$2" --seed "$SEED" \
		>"${4%.json}.txt" 2>&1 || true
}
seed_store "$OUT/small" "$SMALL_USERS"
seed_store "$OUT/big" "$BIG_USERS"
echo "stores: small $(du -sh "$OUT/small" | cut -f1), big $(du -sh "$OUT/big" | cut -f1)" >&2

if [[ " $PARTS " == *" throughput "* ]]; then
	for round in $(seq "$RUNS"); do
		for store in small big; do
			users=$SMALL_USERS
			[ "$store" = big ] && users=$BIG_USERS
			rm -rf "$OUT/data" && cp -a "$OUT/$store" "$OUT/data"
			start "$OUT/data"
			json="$OUT/$store-$round.json"
			load "$OUT/data" "$users" "$D" "$json"
			rss=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$PID/status")
			stop
			echo "$store round=$round $(jq -r '"\(.ceremonies.per_second)/s cpu=\(.server.cpu_us_per_ceremony)µs floor×\(.server.floor_multiple) result-p99=\(.calls["assertion/result"].p99_ms)ms others-busy=\(.machine.other_cores_busy)"' "$json") rss=${rss}MiB"
		done
	done
	for store in small big; do
		jq -s -r --arg s "$store" 'def med: sort | .[length/2|floor];
			"\($s): median \([.[].ceremonies.per_second] | med)/s, \([.[].server.cpu_us_per_ceremony] | med) µs per sign-in"' "$OUT/$store-"*.json
	done
fi

if [[ " $PARTS " == *" memory "* ]]; then
	mkdir -p "$CG"
	for limit in $LIMITS; do
		rm -rf "$OUT/data" && cp -a "$OUT/big" "$OUT/data"
		sync && echo 3 >/proc/sys/vm/drop_caches
		echo 0 >"$CG/memory.force_empty" 2>/dev/null || true
		if [ "$limit" = unlimited ]; then echo -1 >"$CG/memory.limit_in_bytes"; else echo "$limit" >"$CG/memory.limit_in_bytes"; fi
		echo 0 >"$CG/memory.max_usage_in_bytes" 2>/dev/null || true
		start "$OUT/data" "$CG"
		load "$OUT/data" "$BIG_USERS" "$WARM" "$OUT/warm-$limit.json"
		json="$OUT/limit-$limit.json"
		load "$OUT/data" "$BIG_USERS" "$D" "$json"
		peak=$(($(cat "$CG/memory.max_usage_in_bytes") >> 20))
		alive=yes
		kill -0 "$PID" 2>/dev/null || alive="no (killed)"
		stop
		echo "limit=$limit $(jq -r '"\(.ceremonies.per_second)/s failed=\(.ceremonies.failed // 0) cpu=\(.server.cpu_us_per_ceremony)µs result-p99=\(.calls["assertion/result"].p99_ms)ms"' "$json" 2>/dev/null || echo 'no result') cgroup-peak=${peak}MiB server-alive=$alive"
	done
	echo -1 >"$CG/memory.limit_in_bytes"
fi
