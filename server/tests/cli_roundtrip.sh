#!/usr/bin/env bash
# cli_roundtrip.sh - scripted redis-cli (Debian redis-tools) sessions against pkv-server.
#
#   bash cli_roundtrip.sh SERVER_BINARY [--reference]
#
# Starts the server on 127.0.0.1 and a free port with a store in a temporary directory, then:
# one-shot commands (quoting, -x with 10 kB of binary data, -e exit codes, -3 for RESP3), a
# session read from standard input compared line by line with its expected output, --pipe with
# 10,000 SETs, --scan, INFO, a password-protected server (-a), and a SIGTERM stop and restart
# that keeps the keys. --reference runs the same against Debian's redis-server (the control).
# Every process it starts is stopped by its pid; every wait is bounded.
set -uo pipefail

SERVER=${1:?usage: cli_roundtrip.sh SERVER_BINARY [--reference]}
KIND=pkv
[ "${2:-}" = --reference ] && KIND=redis
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pkv-cli-XXXXXX")
PID=
FAILS=0
PASSES=0

cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -KILL "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	if [ "$FAILS" = 0 ]; then
		rm -rf "$TMP"
	else
		echo "cli_roundtrip: logs and data kept in $TMP"
	fi
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start_server [ARGS...]: start on a free port with the store in $TMP/store; sets PID and PORT.
start_server() {
	for _ in 1 2 3 4 5; do
		PORT=$(free_port)
		if [ "$KIND" = pkv ]; then
			"$SERVER" --dir "$TMP/store" --port "$PORT" --bind 127.0.0.1 "$@" \
				>>"$TMP/server.log" 2>&1 &
		else
			mkdir -p "$TMP/store"
			"$SERVER" --port "$PORT" --bind 127.0.0.1 --dir "$TMP/store" --save "" \
				--appendonly yes --databases 1 --daemonize no "$@" >>"$TMP/server.log" 2>&1 &
		fi
		PID=$!
		for _ in $(seq 1 500); do
			if ! kill -0 "$PID" 2>/dev/null; then
				wait "$PID"
				PID=
				break
			fi
			case $(timeout 2 redis-cli -p "$PORT" PING 2>/dev/null) in
			PONG | NOAUTH*) return 0 ;;
			esac
			sleep 0.02
		done
		if [ -n "$PID" ]; then
			echo "cli_roundtrip: the server did not answer within 10 s" >&2
			return 1
		fi
	done
	echo "cli_roundtrip: the server would not start:" >&2
	tail -n 20 "$TMP/server.log" >&2
	return 1
}

# stop_server: SIGTERM by pid, wait up to 30 s (then SIGKILL); fails unless the exit status is 0.
stop_server() {
	local rc
	kill -TERM "$PID"
	for _ in $(seq 1 300); do
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$PID" 2>/dev/null; then
		kill -KILL "$PID"
		wait "$PID"
		PID=
		fail "the server ignored SIGTERM for 30 s"
		return
	fi
	wait "$PID"
	rc=$?
	PID=
	expect_eq "exit status after SIGTERM" "$rc" 0
}

cli() { timeout 10 redis-cli -p "$PORT" "$@"; }

fail() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}

expect_eq() {
	if [ "$2" == "$3" ]; then
		PASSES=$((PASSES + 1))
	else
		fail "$1: got [$2], expected [$3]"
	fi
}

start_server || { FAILS=1; exit 1; }

# ---- one-shot commands ------------------------------------------------------------------------
expect_eq "PING" "$(cli PING)" PONG
expect_eq "SET with spaces" "$(cli SET 'k 1' 'hello world')" OK
expect_eq "GET with spaces" "$(cli GET 'k 1')" "hello world"
expect_eq "GET missing (raw)" "$(cli GET nope)" ""
expect_eq "GET missing (formatted)" "$(cli --no-raw GET nope)" "(nil)"
expect_eq "RESP3 GET missing" "$(cli -3 --no-raw GET nope)" "(nil)"
expect_eq "RESP3 HELLO proto" "$(cli -3 HELLO 3 | awk '$1 == "proto" { print $2 }')" 3
expect_eq "SET EX" "$(cli SET t v EX 100)" OK
ttl=$(cli TTL t)
if [ "$ttl" -ge 95 ] 2>/dev/null && [ "$ttl" -le 100 ]; then PASSES=$((PASSES + 1)); else
	fail "TTL t: $ttl"; fi
expect_eq "INCRBY" "$(cli INCRBY n 41)" 41
expect_eq "INCR" "$(cli INCR n)" 42
expect_eq "unknown command fails with -e" "$(cli -e NOSUCHCOMMAND >/dev/null 2>&1; echo $?)" 1
expect_eq "a good command with -e" "$(cli -e PING >/dev/null 2>&1; echo $?)" 0

# 10 kB of binary data through -x, read back with --raw (which adds a newline)
head -c 10000 /dev/urandom >"$TMP/blob"
expect_eq "SET -x" "$(cli -x SET blob <"$TMP/blob")" OK
expect_eq "STRLEN blob" "$(cli STRLEN blob)" 10000
cli --raw GET blob >"$TMP/blob.out"
head -c 10000 "$TMP/blob.out" >"$TMP/blob.cut"
if cmp -s "$TMP/blob" "$TMP/blob.cut" && [ "$(stat -c %s "$TMP/blob.out")" = 10001 ]; then
	PASSES=$((PASSES + 1))
else
	fail "GET blob: the bytes differ"
fi

# ---- a session from standard input -------------------------------------------------------------
cat >"$TMP/session.in" <<'EOF'
SET a 1
INCR a
INCRBY a 10
GET a
MSET x 1 y 2
MGET x y nope
EXISTS x y nope
DEL a x y
EXISTS a
SETNX s first
SETNX s second
GET s
APPEND s -more
GETDEL s
GET s
SET e v PX 100000
PERSIST e
TTL e
TYPE e
TYPE nope
MULTI
SET m1 1
INCR m1
EXEC
GET m1
EOF
cat >"$TMP/session.want" <<'EOF'
OK
2
12
12
OK
1
2

2
3
0
1
0
first
10
first-more

OK
1
-1
string
none
OK
QUEUED
QUEUED
OK
2
2
EOF
cli <"$TMP/session.in" >"$TMP/session.out" 2>&1
if diff -u "$TMP/session.want" "$TMP/session.out"; then
	PASSES=$((PASSES + 1))
else
	fail "the scripted session differs (above)"
fi

# ---- --pipe: 10,000 SETs in RESP, then --scan and DBSIZE ---------------------------------------
python3 - "$TMP/pipe.in" <<'EOF'
import sys
with open(sys.argv[1], "wb") as f:
    for i in range(10000):
        k, v = b"p:%d" % i, b"value-%d" % i
        f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
EOF
timeout 60 redis-cli -p "$PORT" --pipe <"$TMP/pipe.in" >"$TMP/pipe.out" 2>&1
expect_eq "--pipe" "$(grep -o 'errors: [0-9]*, replies: [0-9]*' "$TMP/pipe.out")" \
	"errors: 0, replies: 10000"
expect_eq "--scan --pattern" "$(timeout 60 redis-cli -p "$PORT" --scan --pattern 'p:*' | sort -u |
	wc -l)" 10000
expect_eq "GET p:9999" "$(cli GET p:9999)" value-9999
keys=$(cli DBSIZE)
expect_eq "DBSIZE" "$keys" $((10000 + 6))   # k 1, t, n, blob, e, m1
expect_eq "INFO keyspace" "$(cli INFO keyspace | tr -d '\r' | grep -o '^db0:keys=[0-9]*')" \
	"db0:keys=$keys"

# ---- stop, restart: the keys are still there ---------------------------------------------------
stop_server
start_server || { FAILS=$((FAILS + 1)); exit 1; }
expect_eq "after restart: GET" "$(cli GET 'k 1')" "hello world"
expect_eq "after restart: DBSIZE" "$(cli DBSIZE)" "$keys"
expect_eq "after restart: INCR" "$(cli INCR n)" 43
stop_server

# ---- a password-protected server ---------------------------------------------------------------
start_server --requirepass s3cret || { FAILS=$((FAILS + 1)); exit 1; }
expect_eq "no -a: NOAUTH" "$(cli GET n 2>&1 | grep -o '^NOAUTH' | head -n 1)" NOAUTH
expect_eq "with -a" "$(cli -a s3cret --no-auth-warning GET n)" 43
expect_eq "AUTH in a session" "$(printf 'AUTH s3cret\nGET n\n' | cli)" "OK
43"
stop_server

echo "cli_roundtrip ($KIND): $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
