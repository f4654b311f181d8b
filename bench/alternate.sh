#!/usr/bin/env bash
# alternate.sh compares builds on a noisy shared machine: it starts one server per build, all
# at once, and alternates short windows of load between them (W each, N rounds), so that each
# build's windows see the same host weather. It prints, per build, the medians of server CPU
# per sign-in, sign-ins/s and thread switches per sign-in, and the median of the paired ratios
# of its CPU per sign-in to the first build's in the same round, with their interquartile range.
# (bench/ab.sh restarts a server per run; on a host whose speed drifts by tens of percent over
# minutes, its medians cannot tell a 10 % change from noise. Here a round takes seconds.)
#
#   bench/alternate.sh                                  # 63bcf4e against the working tree, 8 users
#   BUILDS='63bcf4e 7c7be5b head' USERS='8 32 128' N=12 bench/alternate.sh
#
# BUILDS are commits or head (the working tree). Servers get FLAGS (default: metrics on, where
# the build has them; the audit log is on by default since 7c7be5b). Needs go, curl, jq, python3.
set -euo pipefail
BUILDS=${BUILDS:-63bcf4e head} USERS=${USERS:-8} N=${N:-12} W=${W:-3s} PORT=${PORT:-18200}
OUT=${OUT:-$(mktemp -d /tmp/webauthnd-alternate.XXXXXX)}
cd "$(dirname "$0")/.."
source bench/lib.sh
mkdir -p "$OUT"
echo "results in $OUT" >&2
for b in $BUILDS; do build_webauthnd "$b" "$OUT/$b"; done
go build -o "$OUT/bench" ./bench

switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}'; }

for users in $USERS; do
	declare -A pids=() ports=()
	port=$PORT
	for b in $BUILDS; do
		rm -rf "$OUT/$b-data"
		flags=()
		if ("$OUT/$b" serve -h 2>&1 || true) | grep -q -- -metrics-addr; then
			flags=(--metrics-addr "127.0.0.1:$((port + 1))")
		fi
		"$OUT/$b" serve --addr "127.0.0.1:$port" --data-dir "$OUT/$b-data" "${flags[@]}" >/dev/null 2>"$OUT/$b.log" &
		pids[$b]=$! ports[$b]=$port
		port=$((port + 10))
	done
	for b in $BUILDS; do
		wait_healthz "http://127.0.0.1:${ports[$b]}" || exit 1
	done
	: >"$OUT/rounds-$users.txt"
	for round in $(seq "$N"); do
		for b in $BUILDS; do
			before=$(switches "${pids[$b]}")
			json="$OUT/$b-$users-$round.json"
			"$OUT/bench" --url "http://127.0.0.1:${ports[$b]}" --license-file "$OUT/$b-data/default-license.key" \
				--pid "${pids[$b]}" --progress=false --json "$json" --scenario signin --users "$users" --duration "$W" \
				--floor-iterations 400 >/dev/null 2>&1 || true
			after=$(switches "${pids[$b]}")
			jq -r --arg b "$b" --argjson sw $((after - before)) \
				'"\($b) \(.server.cpu_us_per_ceremony) \(.ceremonies.per_second) \($sw / .ceremonies.ok) \(.server.floor_multiple)"' \
				"$json" >>"$OUT/rounds-$users.txt"
		done
	done
	for b in $BUILDS; do kill "${pids[$b]}"; done
	wait
	echo "$users users, $N rounds of $W per build:"
	python3 - "$OUT/rounds-$users.txt" $BUILDS <<'EOF'
import statistics as st
import sys
rows = [line.split() for line in open(sys.argv[1])]
builds = sys.argv[2:]
by = {b: [r for r in rows if r[0] == b] for b in builds}
for b in builds:
    col = lambda i: [float(r[i]) for r in by[b]]
    ratios = [float(x[1]) / float(y[1]) for x, y in zip(by[b], by[builds[0]])]
    q = st.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(f"  {b}: {st.median(col(1)):.0f} µs per sign-in ({st.median(col(4)):.2f} × floor), "
          f"{st.median(col(2)):.0f}/s, {st.median(col(3)):.2f} switches per sign-in; "
          f"CPU against {builds[0]}: {st.median(ratios):.3f} (IQR {q[0]:.3f}-{q[2]:.3f})")
EOF
done
