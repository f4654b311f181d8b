# shellcheck shell=bash
# lib.sh holds what the measuring scripts of bench/ share. Source it from the repository's root.

# build_webauthnd REV FILE builds the server at REV into FILE: head is the working tree, rebuilt
# each time; a commit is built in a throwaway worktree, and not again while FILE.rev names it.
build_webauthnd() {
	local rev=$1 file=$2 commit src
	if [[ $rev == head ]]; then
		go build -o "$file" ./cmd/webauthnd
		return
	fi
	commit=$(git rev-parse --verify "$rev^{commit}")
	[[ -x $file && $(cat "$file.rev" 2>/dev/null) == "$commit" ]] && return
	src=$(mktemp -d "${TMPDIR:-/tmp}/webauthnd-src.XXXXXX")
	git worktree add -q --detach "$src" "$commit"
	(cd "$src" && go build -o "$file" ./cmd/webauthnd)
	git worktree remove --force "$src"
	echo "$commit" >"$file.rev"
}

# wait_healthz URL [TENTHS] waits until the server at URL answers its health check, for at most
# TENTHS tenths of a second (default 100); it fails, saying so, if the server never did.
wait_healthz() {
	for _ in $(seq "${2:-100}"); do
		curl -fs "$1/webauthn/healthz" >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "the server at $1 did not start" >&2
	return 1
}

# seed_store DIR USERS writes a store of USERS seeded users (seed SEED) into DIR, once: it
# starts $OUT/webauthnd on DIR (port PORT) so that it makes the default community and license,
# stops it, and seeds with $OUT/bench.
seed_store() {
	local dir=$1 users=$2 pid
	[[ -e $dir/seeded ]] && return
	rm -rf "$dir"
	"$OUT/webauthnd" serve --addr "127.0.0.1:$PORT" --data-dir "$dir" >/dev/null 2>>"$OUT/server.log" &
	pid=$!
	wait_healthz "http://127.0.0.1:$PORT" || exit 1
	kill "$pid" && wait "$pid" || true
	"$OUT/bench" seed --data-dir "$dir" --users "$users" --seed "$SEED" >&2
	touch "$dir/seeded"
}
