#!/usr/bin/env bash
# One command: build meshnode, start a host, alice and bob on this machine,
# hold a conversation, take bob offline and bring him back to catch up,
# then stop everything. Everything lives in a temporary directory that is
# removed at the end (KEEP=1 keeps it, with the daemons' logs). Needs only
# Go and bash. MESHNODE_BIN=PATH uses a binary built already (the tests
# do) instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=$(mktemp -d "${TMPDIR:-/tmp}/meshnode-demo.XXXXXX")
declare -A pids=() # home -> pid of its "meshnode run"

# stop HOME: SIGTERM to its daemon, and wait until the process is gone.
stop() {
	local home=$1 pid=${pids[$1]:-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		echo "daemon of $home did not stop; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	unset "pids[$home]"
}

cleanup() {
	local status=$?
	for home in "${!pids[@]}"; do stop "$home"; done
	if [ "${KEEP:-0}" = 1 ] || [ "$status" != 0 ]; then
		echo "demo kept in $demo (logs: $demo/*.log)"
	else
		rm -rf "$demo"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mn=$demo/meshnode
if [ -n "${MESHNODE_BIN:-}" ]; then
	cp "$MESHNODE_BIN" "$mn"
else
	echo "== building meshnode"
	go build -o "$mn" ./cmd/meshnode
fi
export MESHNODE_PASSPHRASE='demo only, not a real passphrase'

# start HOME [run flags...]: runs the daemon in the background (its own
# process, so that its pid is the daemon's) and waits until it answers.
start() {
	local home=$1
	shift
	"$mn" run --home "$home" "$@" >>"$home.log" 2>&1 &
	pids[$home]=$!
	for _ in $(seq 1 150); do
		"$mn" status --home "$home" >/dev/null 2>&1 && return 0
		kill -0 "${pids[$home]}" 2>/dev/null || break
		sleep 0.2
	done
	echo "daemon $home did not start; its log:" >&2
	cat "$home.log" >&2
	exit 1
}

echo "== host, alice and bob"
"$mn" init --home "$demo/host" --role host --listen /ip4/127.0.0.1/tcp/0 >/dev/null
"$mn" init --home "$demo/alice" --nick alice --listen /ip4/127.0.0.1/tcp/0 >/dev/null
"$mn" init --home "$demo/bob" --nick bob --listen /ip4/127.0.0.1/tcp/0 >/dev/null
start "$demo/host"
host=$("$mn" id --home "$demo/host" --json | grep -o '"/ip4/[^"]*/p2p/[^"]*"' | head -n 1 | tr -d '"')
echo "host: $host"
start "$demo/alice"
start "$demo/bob"

echo "== alice creates \"book club\" with the host; bob joins"
invite=$("$mn" group create --home "$demo/alice" "book club" --host "$host" | tail -n 1)
"$mn" group join --home "$demo/bob" "$invite" >/dev/null
"$mn" send --home "$demo/alice" "book club" "hello from alice" >/dev/null
"$mn" send --home "$demo/bob" "book club" "hi alice, bob here" >/dev/null

echo "== bob goes offline; alice sends three messages"
stop "$demo/bob"
if "$mn" status --home "$demo/bob" >/dev/null 2>&1; then
	echo "bob's daemon still answers after it was stopped" >&2
	exit 1
fi
echo "bob is offline"
for i in 1 2 3; do "$mn" send --home "$demo/alice" "book club" "while bob was away $i" >/dev/null; done

echo "== bob comes back and catches up from the host"
start "$demo/bob"
caught_up=0
for _ in $(seq 1 150); do
	n=$("$mn" messages --home "$demo/bob" "book club" --json | grep -c '"text":"while bob was away' || true)
	if [ "$n" -ge 3 ]; then caught_up=1; break; fi
	sleep 0.2
done
"$mn" messages --home "$demo/bob" "book club"
if [ "$caught_up" != 1 ]; then
	echo "bob did not catch up on the three messages he missed" >&2
	exit 1
fi
echo "bob caught up"

echo "== what the host holds (envelopes only; it is not a member)"
"$mn" status --home "$demo/host" | grep -E 'hosted_mailboxes|store'

echo "== stopping the daemons"
for home in "${!pids[@]}"; do stop "$home"; done
echo "done"
