#!/usr/bin/env bash
# One command: build meshnode, start a host, alice and bob on this machine,
# hold a conversation, take bob offline and bring him back to catch up.
# Everything lives in a temporary directory that is removed at the end
# (pass KEEP=1 to keep it). Needs only Go and a POSIX shell.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=$(mktemp -d "${TMPDIR:-/tmp}/meshnode-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "demo kept in $demo"; else rm -rf "$demo"; fi
}
trap cleanup EXIT

echo "== building meshnode"
go build -o "$demo/meshnode" ./cmd/meshnode
mn() { "$demo/meshnode" "$@"; }
export MESHNODE_PASSPHRASE='demo only, not a real passphrase'

start() { # start HOME [run flags...]: runs the daemon and waits until it answers
	local home=$1; shift
	mn run --home "$home" "$@" >>"$home.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 150); do mn status --home "$home" >/dev/null 2>&1 && return 0; sleep 0.2; done
	echo "daemon $home did not start; its log:" >&2; cat "$home.log" >&2; exit 1
}

echo "== host, alice and bob"
mn init --home "$demo/host" --role host --listen /ip4/127.0.0.1/tcp/0 >/dev/null
mn init --home "$demo/alice" --nick alice --listen /ip4/127.0.0.1/tcp/0 >/dev/null
mn init --home "$demo/bob" --nick bob --listen /ip4/127.0.0.1/tcp/0 >/dev/null
start "$demo/host" --host-policy open
host=$(mn id --home "$demo/host" --json | grep -o '"/ip4/[^"]*/p2p/[^"]*"' | head -n 1 | tr -d '"')
echo "host: $host"
start "$demo/alice"
start "$demo/bob"
bob_pid=${pids[-1]}

echo "== alice creates \"book club\" with the host; bob joins"
invite=$(mn group create --home "$demo/alice" "book club" --host "$host" | tail -n 1)
mn group join --home "$demo/bob" "$invite" >/dev/null
mn send --home "$demo/alice" "book club" "hello from alice" >/dev/null
mn send --home "$demo/bob" "book club" "hi alice, bob here" >/dev/null

echo "== bob goes offline; alice sends three messages"
kill "$bob_pid"; wait "$bob_pid" 2>/dev/null || true
unset 'pids[-1]'
for i in 1 2 3; do mn send --home "$demo/alice" "book club" "while bob was away $i" >/dev/null; done

echo "== bob comes back and catches up from the host"
start "$demo/bob"
for _ in $(seq 1 100); do
	n=$(mn messages --home "$demo/bob" "book club" --json | grep -c '"kind":"text"' || true)
	[ "$n" -ge 5 ] && break
	sleep 0.2
done
mn messages --home "$demo/bob" "book club"

echo "== what the host holds (envelopes only; it is not a member)"
mn status --home "$demo/host" | grep -E 'hosted_mailboxes|store'
