#!/usr/bin/env bash
# cluster.sh reproduces the figures of "Many nodes over PostgreSQL" in docs/performance.md:
# one Badger node against 1, 2 and 3 nodes over one PostgreSQL database, sign-ins by username
# at USERS=32 concurrent users. For every run it starts fresh servers (a new data directory
# for Badger; over PostgreSQL a new database, createdb/dropdb, and a data directory per node),
# runs the harness once and stops them; settings are interleaved, their order rotating from one
# round to the next, RUNS rounds, so that drift on a shared machine spreads over all of them.
# It prints the median of each figure and keeps every JSON summary in OUT.
#
#   bench/cluster.sh                          # RUNS=5 rounds, 20 s per run, 32 users
#   RUNS=3 SECONDS_PER_RUN=10 NODES="1 2" bench/cluster.sh
#   ONLY='^(badger|pg)-1$' bench/cluster.sh   # only some settings (a regexp)
#   BASE=boundary bench/cluster.sh            # and a Badger node built at another commit
#
# BASE adds the setting badger-base: a Badger node built from that commit (in a throwaway
# worktree, bench/lib.sh), interleaved with the others, to tell whether the Badger path kept its figures.
#
# With more than one node, the harness sends each ceremony's options to one node and its
# result to the next (round robin), so that every result crosses nodes, as behind a load
# balancer without stickiness. The report gives the nodes' CPU (--pid of every node),
# PostgreSQL's (--pg-pid and --pg-db: the postmaster, the shared processes such as the WAL
# writer, and the backends of the run's database; another client's backends count as other
# work, which makes a run noisy), and the round trips per sign-in that the nodes' stores
# counted (--admin-socket of every node).
#
# PostgreSQL: PGADMIN, a URL the script creates and drops its databases through (default
# postgres://postgres@127.0.0.1:5432/postgres, a superuser: it reads the data directory to
# find the postmaster), and PG_PID, the postmaster's pid, if that cannot be read. The nodes'
# pools: STORE_MAX_CONNS (default: serve's default). The machine is shared: before each run
# it waits (up to QUIET_WAIT=600 s) until other work uses under 0.2 CPU, and does a run again
# (up to TRIES=3 times) when other work kept more than NOISY=0.3 CPUs busy during it; the
# medians leave such runs out. Needs go, curl, jq, psql, createdb and dropdb. Uses
# 127.0.0.1:${PORT:-18080} and the next ports, one per node.
set -euo pipefail

RUNS=${RUNS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
USERS=${USERS:-32}
NODES=${NODES:-1 2 3}
PORT=${PORT:-18080}
NOISY=${NOISY:-0.3}
PGADMIN=${PGADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
OUT=${OUT:-$(mktemp -d /tmp/webauthnd-cluster.XXXXXX)}
cd "$(dirname "$0")/.."
source bench/lib.sh
mkdir -p "$OUT"
echo "results in $OUT (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))" >&2
go build -o "$OUT/webauthnd" ./cmd/webauthnd
go build -o "$OUT/bench" ./bench
if [ -n "${BASE:-}" ]; then
	build_webauthnd "$BASE" "$OUT/webauthnd-base"
	echo "badger-base: webauthnd at $(git rev-parse --short "$BASE")" >&2
fi

if [ -z "${PG_PID:-}" ]; then
	PG_PID=$(head -1 "$(psql "$PGADMIN" -Atc "SELECT setting FROM pg_settings WHERE name = 'data_directory'")/postmaster.pid")
fi
echo "PostgreSQL postmaster: pid $PG_PID ($(psql "$PGADMIN" -Atc 'SHOW server_version'), synchronous_commit $(psql "$PGADMIN" -Atc 'SHOW synchronous_commit'))" >&2

PIDS=() URLS=() SOCKETS=() DB=
# db_url NAME is PGADMIN with NAME as its database.
db_url() { echo "${PGADMIN%/*}/$1"; }

# start_node I [serve flags...] starts node I on port PORT+I with a fresh data directory, with
# the binary BIN (default webauthnd).
start_node() {
	local i=$1 url=http://127.0.0.1:$((PORT + $1))
	shift
	rm -rf "$OUT/node$i"
	"$OUT/${BIN:-webauthnd}" serve --addr "127.0.0.1:$((PORT + i))" --data-dir "$OUT/node$i" "$@" >/dev/null 2>"$OUT/node$i.log" &
	PIDS+=($!) URLS+=("$url") SOCKETS+=("$OUT/node$i/admin.sock")
	wait_healthz "$url" 150 || { echo "see $OUT/node$i.log" >&2; exit 1; }
}

stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	PIDS=() URLS=() SOCKETS=()
	if [ -n "$DB" ]; then dropdb --force --maintenance-db="$PGADMIN" "$DB"; DB=; fi
}
trap stop_all EXIT

# start_setting NAME starts the servers of a setting: badger-1, or pg-N (N nodes over a new
# database; node 0 starts first and makes the default community and license, whose key it
# keeps in its data directory).
start_setting() {
	case $1 in
	badger-1)
		start_node 0
		;;
	badger-base)
		BIN=webauthnd-base start_node 0
		;;
	pg-*)
		DB=wad_bench_$$_${1//-/_}
		createdb --maintenance-db="$PGADMIN" "$DB"
		local extra=()
		if [ -n "${STORE_MAX_CONNS:-}" ]; then extra=(--store-max-conns "$STORE_MAX_CONNS"); fi
		for i in $(seq 0 $((${1#pg-} - 1))); do
			start_node "$i" --store "$(db_url "$DB")" "${extra[@]}"
		done
		;;
	esac
}

# busy_cpus prints how many CPUs were busy over the next 2 seconds (from /proc/stat).
busy_cpus() {
	local a b
	a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
	awk -v u=$((b[1]+b[2]+b[3]+b[6]+b[7]+b[8] - a[1]-a[2]-a[3]-a[6]-a[7]-a[8])) 'BEGIN {printf "%.2f", u/200}'
}

# wait_quiet waits (up to QUIET_WAIT seconds) until other work on the machine uses less than a
# fifth of a CPU.
wait_quiet() {
	local deadline=$((SECONDS + ${QUIET_WAIT:-600})) busy
	while busy=$(busy_cpus) && awk -v b="$busy" 'BEGIN {exit !(b >= 0.2)}'; do
		if [ $SECONDS -ge $deadline ]; then
			echo "  (machine still busy: $busy CPUs; measuring anyway)" >&2
			return
		fi
	done
}

# measure NAME ROUND runs one setting once on fresh servers; a run during which other work kept
# more than NOISY CPUs busy is done again (at most TRIES times in all).
measure() {
	local name=$1 round=$2 try json
	[[ $name =~ ${ONLY:-.} ]] || return 0
	json=$OUT/$name.$round.json
	for try in $(seq "${TRIES:-3}"); do
		wait_quiet
		start_setting "$name"
		# Over PostgreSQL: its CPU (only this database's backends and the shared processes, so
		# that another client of the server shows as other work) and the nodes' round trips.
		local pg=()
		if [ -n "$DB" ]; then
			pg=(--pg-pid "$PG_PID" --pg-db "$DB" --admin-socket "$(IFS=,; echo "${SOCKETS[*]}")")
		fi
		"$OUT/bench" --url "$(IFS=,; echo "${URLS[*]}")" --license-file "$OUT/node0/default-license.key" \
			--pid "$(IFS=,; echo "${PIDS[*]}")" "${pg[@]}" \
			--scenario signin --users "$USERS" --duration "${SECONDS_PER_RUN}s" \
			--progress=false --json "$json" >"$OUT/$name.$round.txt" 2>&1 || { stop_all; cat "$OUT/$name.$round.txt" >&2; exit 1; }
		stop_all
		echo "  $name round $round: $(jq -r '"\(.ceremonies.per_second)/s, nodes \(.server.cpu_us_per_ceremony) µs + PostgreSQL \(.database.cpu_us_per_ceremony // "-") µs per sign-in, \(.store_round_trips.per_ceremony // "-") round trips, others busy \(.machine.other_cores_busy) CPUs"' "$json")" >&2
		jq -e --argjson noisy "$NOISY" '.machine.other_cores_busy <= $noisy' "$json" >/dev/null && return
	done
	return 0 # still disturbed after TRIES runs: kept, and left out of the medians
}

SETTINGS=(badger-1)
if [ -n "${BASE:-}" ]; then SETTINGS+=(badger-base); fi
for n in $NODES; do SETTINGS+=("pg-$n"); done
for round in $(seq "$RUNS"); do
	echo "round $round of $RUNS" >&2
	for k in $(seq 0 $((${#SETTINGS[@]} - 1))); do
		measure "${SETTINGS[$(((k + round - 1) % ${#SETTINGS[@]}))]}" "$round"
	done
done

# One line per setting, medians over the rounds kept: sign-ins/s; p50 and p99 (ms) of the
# options and the result call; the nodes' CPU, PostgreSQL's and both per sign-in (µs); the
# nodes' CPUs and PostgreSQL's busy; round trips per sign-in; the nodes' RSS at the end (MiB,
# all nodes); failed sign-ins; CPUs busy with other work; the number of rounds kept.
printf '\n%-11s %7s %6s %6s %6s %6s %7s %7s %7s %5s %5s %5s %6s %6s %5s %2s\n' setting 'in/s' 'o.p50' 'o.p99' 'r.p50' 'r.p99' \
	'node µs' 'pg µs' 'sum µs' 'nodes' 'pg' 'rt' 'RSS' failed other n
for s in "${SETTINGS[@]}"; do
	compgen -G "$OUT/$s.*.json" >/dev/null || continue
	jq -rs --arg s "$s" --argjson noisy "$NOISY" '
		def med(f): map(f) | sort | .[length/2|floor];
		(map(select(.machine.other_cores_busy <= $noisy)) | if length > 0 then . else empty end) // . |
		[$s, med(.ceremonies.per_second), med(.calls["assertion/options"].p50_ms), med(.calls["assertion/options"].p99_ms),
		 med(.calls["assertion/result"].p50_ms), med(.calls["assertion/result"].p99_ms),
		 med(.server.cpu_us_per_ceremony), med(.database.cpu_us_per_ceremony // 0),
		 med(.server.cpu_us_per_ceremony + (.database.cpu_us_per_ceremony // 0)),
		 med(.server.cores_busy), med(.database.cores_busy // 0), med(.store_round_trips.per_ceremony // "-"),
		 med(.server.rss_after_mib), med(.ceremonies.failed), med(.machine.other_cores_busy), length] | map(tostring) | join("\t")' "$OUT"/"$s".*.json
done | awk -F'\t' '{printf "%-11s %7s %6s %6s %6s %6s %7s %7s %7s %5s %5s %5s %6s %6s %5s %2s\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16}'

# The aim: 2 nodes over PostgreSQL reach at least 60 % of the Badger node's sign-ins/s.
median() { jq -s --argjson noisy "$NOISY" 'def med(f): map(f) | sort | .[length/2|floor];
	((map(select(.machine.other_cores_busy <= $noisy)) | if length > 0 then . else empty end) // .) | med(.ceremonies.per_second)' "$@"; }
if compgen -G "$OUT/badger-1.*.json" >/dev/null; then
	b=$(median "$OUT"/badger-1.*.json)
	for n in $NODES; do
		compgen -G "$OUT/pg-$n.*.json" >/dev/null || continue
		echo "pg-$n: $(jq -n "$(median "$OUT"/pg-"$n".*.json) / $b * 100 | floor") % of badger-1's sign-ins/s" >&2
	done
fi
