#!/usr/bin/env bash
# ab.sh measures the server CPU per sign-in of a base commit (default 63bcf4e, the reference of
# issue 21) against the working tree, interleaved: for each round, each number of users and each
# variant it starts a fresh server (new data directory), runs the harness for D against it and
# stops it. Beside the harness's figures it prints the context switches per sign-in of all the
# server's threads (voluntary and not, from /proc). Take the medians over the rounds (the last
# lines print them); the machine is shared and noisy.
#
#   bench/ab.sh                              # RUNS=3 rounds of 10 s at 8, 32 and 128 users
#   BASE=f316818 USERS='8 32' RUNS=5 bench/ab.sh
#   VARIANTS='head head-gogc200:head:GOGC=200' bench/ab.sh   # the same build, two environments
#   USERS=64 BENCH_FLAGS='--rate 1750' bench/ab.sh          # an open loop at a fixed rate
#
# A variant is NAME or NAME:BUILD:ENV (BUILD base, head or a commit; ENV a comma-separated list
# of VAR=VALUE for the server); by default 'base head'. Servers of every build but base get
# HEAD_FLAGS (by default metrics on, as `make run` has them; 63bcf4e had no metrics; the audit
# log is on by default where it exists).
# Needs go, curl and jq; uses 127.0.0.1:${PORT:-18090}; keeps the JSON summaries in OUT.
set -euo pipefail
RUNS=${RUNS:-3} D=${D:-10s} PORT=${PORT:-18090} BASE=${BASE:-63bcf4e} USERS=${USERS:-8 32 128}
VARIANTS=${VARIANTS:-base head} SCENARIO=${SCENARIO:-signin} BENCH_FLAGS=${BENCH_FLAGS:-}
HEAD_FLAGS=${HEAD_FLAGS---metrics-addr 127.0.0.1:$((PORT + 1))}
OUT=${OUT:-$(mktemp -d /tmp/webauthnd-ab.XXXXXX)}
URL=http://127.0.0.1:$PORT
cd "$(dirname "$0")/.."
source bench/lib.sh
mkdir -p "$OUT"
echo "results in $OUT: base $BASE against $(git rev-parse --short HEAD) and the working tree" >&2
# Every build a variant names other than head is a commit (base is $BASE), built once.
for variant in $VARIANTS; do
	IFS=: read -r name build _ <<<"$variant"
	build=${build:-$name}
	[[ $build == head ]] && continue
	commit=$build
	[[ $build == base ]] && commit=$BASE
	build_webauthnd "$commit" "$OUT/$build"
done
build_webauthnd head "$OUT/head"
go build -o "$OUT/bench" ./bench

switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}'; }

for round in $(seq "$RUNS"); do
	for users in $USERS; do
		for variant in $VARIANTS; do
			IFS=: read -r name build env <<<"$variant"
			build=${build:-$name}
			flags=()
			[[ $build != base ]] && read -ra flags <<<"$HEAD_FLAGS"
			rm -rf "$OUT/data"
			env ${env//,/ } "$OUT/$build" serve --addr "127.0.0.1:$PORT" --data-dir "$OUT/data" "${flags[@]}" \
				>/dev/null 2>"$OUT/server.log" &
			pid=$!
			wait_healthz "$URL" || exit 1
			before=$(switches "$pid")
			json="$OUT/$name-$users-$round.json"
			"$OUT/bench" --url "$URL" --license-file "$OUT/data/default-license.key" --pid "$pid" --progress=false \
				--json "$json" --scenario "$SCENARIO" --users "$users" --duration "$D" $BENCH_FLAGS >"${json%.json}.txt" 2>&1 || true
			after=$(switches "$pid")
			kill "$pid" && wait "$pid" || true
			echo "$name users=$users round=$round $(jq -r --argjson sw $((after - before)) \
				'"\(.ceremonies.per_second)/s cpu=\(.server.cpu_us_per_ceremony)µs floor×\(.server.floor_multiple) options-p99=\(.calls["assertion/options"].p99_ms // .calls["attestation/options"].p99_ms)ms result-p99=\(.calls["assertion/result"].p99_ms // .calls["attestation/result"].p99_ms)ms others-busy=\(.machine.other_cores_busy) switches/sign-in=\(if .ceremonies.ok > 0 then ($sw / .ceremonies.ok * 100 | round / 100) else "-" end)"' "$json")"
		done
	done
done

echo "medians over $RUNS rounds (cpu µs per ceremony, ceremonies/s, × floor; ratio: the median of each round's cpu over the first variant's):"
first=${VARIANTS%% *}
first=${first%%:*}
for users in $USERS; do
	for variant in $VARIANTS; do
		name=${variant%%:*}
		ratios=$(for round in $(seq "$RUNS"); do
			jq -n --slurpfile a "$OUT/$name-$users-$round.json" --slurpfile b "$OUT/$first-$users-$round.json" \
				'$a[0].server.cpu_us_per_ceremony / $b[0].server.cpu_us_per_ceremony'
		done | jq -s -c .)
		jq -s -r --arg n "$name" --arg u "$users" --argjson r "$ratios" '
			def med: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
			"\($n) users=\($u) cpu=\([.[].server.cpu_us_per_ceremony] | med)µs rate=\([.[].ceremonies.per_second] | med)/s floor×\([.[].server.floor_multiple] | med) cpu-ratio=\($r | med * 1000 | round / 1000)"' \
			"$OUT/$name-$users-"*.json
	done
done
