#!/usr/bin/env bash
# examples/twemproxy/run.sh - three pkv-servers behind nutcracker (twemproxy), on loopback.
#
#   bash examples/twemproxy/run.sh [--server PATH] [--keys N] [--dir DIR] [--reference]
#
# Starts three pkv-servers (--durability process, a store each under DIR) and nutcracker with
# nutcracker.yml on free 127.0.0.1 ports; writes N keys through the proxy and reads them all back
# through it; shows each backend's share; then SIGKILLs one backend, writes more keys while it is
# down (the ones that hash to it fail: no other backend takes them), restarts it on its store and
# port, and checks through the proxy that every acknowledged key is there with its value. Exits
# non-zero if any check fails (CI runs it: ctest -R example_twemproxy). Every process it starts
# is stopped by its pid; every wait is bounded. --reference uses redis-server (AOF) as backends.
#
# Needs: nutcracker, redis-tools (redis-cli), python3. The server defaults to the build tree's
# (build/release/server/pkv-server) or pkv-server on PATH.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SERVER=
KEYS=3000
BASE=
KIND=pkv
while [ $# -gt 0 ]; do
	case "$1" in
	--server) SERVER=$2; shift 2 ;;
	--keys) KEYS=$2; shift 2 ;;
	--dir) BASE=$2; shift 2 ;;
	--reference) KIND=redis; shift ;;
	--check) shift ;; # the checks always run; accepted for the CI command line
	-h | --help) sed -n '2,17p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
if [ -z "$SERVER" ]; then
	if [ "$KIND" = redis ]; then
		SERVER=$(command -v redis-server)
	else
		for s in "$ROOT/build/release/server/pkv-server" "$(command -v pkv-server)"; do
			[ -n "$s" ] && [ -x "$s" ] && { SERVER=$s; break; }
		done
	fi
fi
if [ -z "$SERVER" ] || [ ! -x "$SERVER" ]; then
	echo "run.sh: no server binary (--server PATH)" >&2
	exit 2
fi
NUTCRACKER=$(command -v nutcracker || echo /usr/sbin/nutcracker)
[ -x "$NUTCRACKER" ] || { echo "run.sh: nutcracker is not installed" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "run.sh: redis-cli (redis-tools) missing" >&2; exit 2; }

KEEP=1
if [ -z "$BASE" ]; then
	BASE=$(mktemp -d "${TMPDIR:-/tmp}/pkv-twemproxy-XXXXXX")
	KEEP=0
fi
mkdir -p "$BASE"
FAILS=0
declare -a PORT PID
PROXY_PID=

fail() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}

# stop_pid PID SIGNAL: signal a process we started, wait up to 30 s, then SIGKILL it.
# Sets STOP_RC to its exit status.
stop_pid() {
	local pid=$1 sig=$2 i
	kill "-$sig" "$pid" 2>/dev/null
	for i in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	STOP_RC=$?
}

cleanup() {
	local i
	[ -n "$PROXY_PID" ] && stop_pid "$PROXY_PID" TERM
	for i in 1 2 3; do
		[ -n "${PID[$i]:-}" ] && stop_pid "${PID[$i]}" TERM
	done
	if [ "$FAILS" = 0 ] && [ "$KEEP" = 0 ]; then
		rm -rf "$BASE"
	elif [ "$FAILS" != 0 ]; then
		echo "run.sh: logs and stores kept in $BASE"
	fi
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

cli() { timeout 10 redis-cli -p "$1" "${@:2}"; }

# start_backend I: start backend I on PORT[I] (picked once: a restart keeps it) and its store.
start_backend() {
	local i=$1 n
	mkdir -p "$BASE/pkv$i"
	if [ "$KIND" = pkv ]; then
		"$SERVER" --dir "$BASE/pkv$i" --port "${PORT[$i]}" --bind 127.0.0.1 \
			--durability process >>"$BASE/pkv$i.log" 2>&1 &
	else
		"$SERVER" --port "${PORT[$i]}" --bind 127.0.0.1 --dir "$BASE/pkv$i" --save "" \
			--appendonly yes --appendfsync no --daemonize no >>"$BASE/pkv$i.log" 2>&1 &
	fi
	PID[i]=$!
	for n in $(seq 1 1000); do
		if ! kill -0 "${PID[$i]}" 2>/dev/null; then
			wait "${PID[$i]}"
			PID[i]=
			echo "run.sh: backend $i exited at start:" >&2
			tail -n 20 "$BASE/pkv$i.log" >&2
			return 1
		fi
		[ "$(cli "${PORT[$i]}" PING 2>/dev/null)" = PONG ] && return 0
		sleep 0.02
	done
	echo "run.sh: backend $i did not answer within 20 s" >&2
	return 1
}

# write_keys FROM TO: SET key:I through the proxy for I in FROM..TO-1, one command at a time;
# appends the acknowledged keys (reply OK) to $BASE/acked.
write_keys() {
	local from=$1 to=$2
	awk -v a="$from" -v b="$to" \
		'BEGIN { for (i = a; i < b; i++) printf "SET key:%d value-%d\n", i, i }' >"$BASE/set.in"
	# --no-raw: every reply is one line (raw mode adds an empty line after an error), so reply
	# line J answers command J
	timeout 300 redis-cli --no-raw -p "$PROXY" <"$BASE/set.in" >"$BASE/set.out" 2>&1
	paste -d' ' "$BASE/set.in" "$BASE/set.out" | awk '$4 == "OK" { print $2 }' >>"$BASE/acked"
}

# check_keys: every acknowledged key reads back through the proxy with its value. Prints the
# number of keys that do.
check_keys() {
	sort -u "$BASE/acked" | awk '{ printf "GET %s\n", $1 }' >"$BASE/get.in"
	timeout 300 redis-cli --no-raw -p "$PROXY" <"$BASE/get.in" >"$BASE/get.out" 2>&1
	paste -d' ' "$BASE/get.in" "$BASE/get.out" |
		awk '{ split($2, k, ":"); if ($3 == "\"value-" k[2] "\"") n++ } END { print n + 0 }'
}

shares() {
	local i n total=0
	for i in 1 2 3; do
		n=$(cli "${PORT[$i]}" DBSIZE)
		SHARE[i]=$n
		total=$((total + n))
	done
	printf '  %-6s %-22s %8s %7s\n' backend address keys share
	for i in 1 2 3; do
		printf '  %-6s %-22s %8d %6.1f%%\n' "pkv$i" "127.0.0.1:${PORT[$i]}" "${SHARE[$i]}" \
			"$(awk -v a="${SHARE[$i]}" -v t="$total" 'BEGIN { print t ? 100 * a / t : 0 }')"
	done
	SHARE_TOTAL=$total
}

# ---- start three backends and the proxy --------------------------------------------------------
# A free port is free when picked, not when bound: another test running beside this one may take
# it first. A start that failed on a port in use is tried again on new ports (5 tries in all).
in_use() { grep -q "Address already in use" "$1" 2>/dev/null; }
for i in 1 2 3; do
	for try in 1 2 3 4 5; do
		PORT[i]=$(free_port)
		: >"$BASE/pkv$i.log"
		start_backend "$i" && break
		if [ "$try" = 5 ] || ! in_use "$BASE/pkv$i.log"; then FAILS=1; exit 1; fi
	done
done
for try in 1 2 3 4 5; do
	PROXY=$(free_port)
	STATS=$(free_port)
	sed -e "s/127.0.0.1:22121/127.0.0.1:$PROXY/" -e "s/127.0.0.1:6380:/127.0.0.1:${PORT[1]}:/" \
		-e "s/127.0.0.1:6381:/127.0.0.1:${PORT[2]}:/" \
		-e "s/127.0.0.1:6382:/127.0.0.1:${PORT[3]}:/" \
		"$HERE/nutcracker.yml" >"$BASE/nutcracker.yml"
	: >"$BASE/nutcracker.log"
	"$NUTCRACKER" -c "$BASE/nutcracker.yml" -s "$STATS" -a 127.0.0.1 \
		-o "$BASE/nutcracker.log" -p "$BASE/nutcracker.pid" &
	PROXY_PID=$!
	ready=0
	for n in $(seq 1 500); do
		kill -0 "$PROXY_PID" 2>/dev/null || break
		if [ "$(cli "$PROXY" SET probe 1 2>/dev/null)" = OK ]; then ready=1; break; fi
		sleep 0.02
	done
	[ "$ready" = 1 ] && break
	kill -0 "$PROXY_PID" 2>/dev/null && break # alive but not forwarding: no port to blame
	wait "$PROXY_PID" 2>/dev/null
	in_use "$BASE/nutcracker.log" || break
done
if [ "$ready" != 1 ]; then
	fail "nutcracker did not forward within 10 s"
	cat "$BASE/nutcracker.log"
	exit 1
fi
cli "$PROXY" DEL probe >/dev/null
echo "three ${KIND}-servers on 127.0.0.1:${PORT[1]},${PORT[2]},${PORT[3]};" \
	"nutcracker on 127.0.0.1:$PROXY"

# ---- keys through the proxy --------------------------------------------------------------------
: >"$BASE/acked"
write_keys 0 "$KEYS"
acked=$(wc -l <"$BASE/acked")
[ "$acked" = "$KEYS" ] || fail "$acked of $KEYS SETs through the proxy answered OK"
got=$(check_keys)
echo "wrote $KEYS keys through the proxy; $got read back through it with their values"
[ "$got" = "$acked" ] || fail "$got of $acked acknowledged keys read back through the proxy"
shares
[ "$SHARE_TOTAL" = "$KEYS" ] || fail "the backends hold $SHARE_TOTAL keys, $KEYS were written"
for i in 1 2 3; do
	[ "${SHARE[$i]}" -gt 0 ] || fail "backend pkv$i holds no key"
done
before2=${SHARE[2]}
# MGET across the backends in one command
mget=$(cli "$PROXY" MGET key:0 key:1 key:2 key:3 | tr '\n' ' ')  # split over the backends
[ "$mget" = "value-0 value-1 value-2 value-3 " ] || fail "MGET through the proxy: $mget"

# ---- one backend killed, more writes, restart ---------------------------------------------------
echo "SIGKILL pkv2 (pid ${PID[2]}); writing $KEYS more keys while it is down"
exec 3>&2 2>/dev/null # bash would report the kill on its stderr
kill -KILL "${PID[2]}"
wait "${PID[2]}"
exec 2>&3 3>&-
PID[2]=
write_keys "$KEYS" $((2 * KEYS))
down_acked=$(($(wc -l <"$BASE/acked") - KEYS))
echo "  $down_acked of $KEYS acknowledged" \
	"(those that hash to pkv2 failed: no other backend took them)"
[ "$down_acked" -lt "$KEYS" ] || fail "every write succeeded with a backend down"
[ "$down_acked" -gt 0 ] || fail "no write succeeded with one backend of three down"
start_backend 2 || { FAILS=$((FAILS + 1)); exit 1; }
echo "pkv2 restarted on its store and port"
# nutcracker reconnects on the next request to pkv2; give it a bounded number of tries.
total=$(sort -u "$BASE/acked" | wc -l)
for n in $(seq 1 50); do
	got=$(check_keys)
	[ "$got" = "$total" ] && break
	sleep 0.2
done
echo "after the restart: $got of $total acknowledged keys read back through the proxy"
[ "$got" = "$total" ] || fail "only $got of $total acknowledged keys read back after the restart"
shares
[ "${SHARE[2]}" -ge "$before2" ] ||
	fail "pkv2 held $before2 keys before its kill, ${SHARE[2]} after"

# ---- stop everything by pid ---------------------------------------------------------------------
stop_pid "$PROXY_PID" TERM
PROXY_PID=
for i in 1 2 3; do
	stop_pid "${PID[$i]}" TERM
	PID[i]=
	[ "$STOP_RC" = 0 ] || fail "backend pkv$i exited with status $STOP_RC on SIGTERM"
done
if [ "$FAILS" = 0 ]; then
	echo "twemproxy example: all checks passed"
else
	echo "twemproxy example: $FAILS checks failed"
fi
[ "$FAILS" = 0 ]
