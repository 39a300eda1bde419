#!/usr/bin/env bash
# Benchmarks imapfront against the backend directly and Cyrus's own Murder
# front end on the integration lab (see README "Performance").
#
#   sudo bash integration/bench.sh                # defaults of issue 9 (~5-8 min)
#   sudo bash integration/bench.sh -reps 3 -msgs 500 -idle-sessions 2000 -mix-duration 1s   # quick
#
# Brings the lab up with integration/run.sh if none is running (and down
# again at the end), builds imapfront and the bench program, writes an
# imapfront config for the lab, starts imapfront as its own process, runs
# integration/bench with the given flags and stops what it started.
# The Markdown table goes to stdout and to <work>/table.md.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
root=${IMAPFRONT_IT_ROOT:-/tmp/imapfront-it}
work=$(mktemp -d /tmp/imapfront-bench.XXXXXX)
lab_started=0
front_pid=

cleanup() {
	local rc=$?
	if [[ -n $front_pid ]] && kill -0 "$front_pid" 2>/dev/null; then
		kill -TERM "$front_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$front_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$front_pid" 2>/dev/null || true
	fi
	if [[ $lab_started == 1 ]]; then
		bash integration/run.sh down >/dev/null || true
	fi
	echo "bench: logs and configs in $work" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A CI run may be using the lab: wait for it (bounded) before touching it.
for _ in $(seq 1 120); do
	pgrep -f 'integration/run.sh' >/dev/null || break
	echo "bench: waiting for a running integration/run.sh to finish" >&2
	sleep 5
done

lab_ok() {
	local st
	st=$(bash integration/run.sh status 2>/dev/null) || return 1
	[[ $st == lab* ]] && ! grep -q stopped <<<"$st" && [[ -f $root/current/env.sh ]]
}
if ! lab_ok; then
	echo "bench: starting the lab (integration/run.sh up)" >&2
	bash integration/run.sh up >&2
	lab_started=1
fi
set -a
# shellcheck disable=SC1091
. "$root/current/env.sh"
set +a

# 10,000 idle sessions need ~20,000 descriptors in imapfront and as many in
# the bench program (its clients plus the in-process backend).
ulimit -Hn 200000 2>/dev/null || true
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

go build -o "$work/imapfront" ./cmd/imapfront
go build -o "$work/bench" ./integration/bench

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 15143)
cat >"$work/imapfront.toml" <<CONF
hostname = "imapfront-bench"
log_level = "warn"
[listen]
imap = "127.0.0.1:$port"
allow_plaintext = true
shutdown_grace = "2s"
[limits]
# Every bench client comes from 127.0.0.1, 10,000 of them at once.
max_connections = 0
max_connections_per_ip = 0
max_unauthenticated = 0
[auth]
method = "backend"
admins = ["$IMAPFRONT_IT_CYRUS_ADMIN_USER"]
[mupdate]
server = "$IMAPFRONT_IT_MUPDATE"
user = "$IMAPFRONT_IT_MUPDATE_USER"
password = "$IMAPFRONT_IT_MUPDATE_PASS"
[[backend]]
server = "$IMAPFRONT_IT_CYRUS_BE1"
tls = "none"
proxy_user = "$IMAPFRONT_IT_CYRUS_ADMIN_USER"
proxy_password = "$IMAPFRONT_IT_CYRUS_ADMIN_PASS"
[[backend]]
server = "$IMAPFRONT_IT_CYRUS_BE2"
tls = "none"
proxy_user = "$IMAPFRONT_IT_CYRUS_ADMIN_USER"
proxy_password = "$IMAPFRONT_IT_CYRUS_ADMIN_PASS"
CONF

"$work/imapfront" -config "$work/imapfront.toml" >"$work/imapfront.log" 2>&1 &
front_pid=$!
echo "bench: imapfront pid $front_pid on 127.0.0.1:$port (log $work/imapfront.log)" >&2

"$work/bench" -imapfront "127.0.0.1:$port" -imapfront-pid "$front_pid" -imapfront-bin "$work/imapfront" \
	-dir "$work" -out "$work/table.md" "$@"
