#!/usr/bin/env bash
# cli/test_cli.sh - the `pkv` tool from the outside: every subcommand, every exit status, every
# kind of bad dump line, round trips with binary keys, empty values and expiries.
#
# Usage: test_cli.sh PATH-TO-pkv WORKDIR   (WORKDIR is emptied first)
# Prints one line per check and "N passed, M failed"; exits 1 if any check failed.
set -uo pipefail

PKV=$1
W=$2
rm -rf "$W"
mkdir -p "$W"
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

# expect STATUS NAME CMD...: run CMD (stdout in $W/out, stderr in $W/err); check its exit status.
expect() {
	local want=$1 name=$2 got
	shift 2
	"$@" >"$W/out" 2>"$W/err"
	got=$?
	if [ "$got" -eq "$want" ]; then
		ok "$name (exit $got)"
	else
		bad "$name: exit $got, expected $want; stderr:"
		sed 's/^/     /' "$W/err"
	fi
}

# has FILE TEXT NAME: FILE contains TEXT (fixed string)
has() {
	if grep -qF -- "$2" "$1"; then ok "$3"; else bad "$3: no '$2' in:"; sed 's/^/     /' "$1"; fi
}

S=$W/store

# ---- usage errors: exit 2 --------------------------------------------------------------
expect 2 "no subcommand" "$PKV"
expect 2 "unknown subcommand" "$PKV" frobnicate "$S"
has "$W/err" "no subcommand 'frobnicate'" "unknown subcommand is named"
expect 2 "unknown option" "$PKV" stats --frob "$S"
has "$W/err" "unknown option --frob" "unknown option is named"
expect 2 "option of another subcommand" "$PKV" get --json "$S" k
expect 2 "missing operand" "$PKV" get "$S"
has "$W/err" "usage: pkv get" "missing operand shows the usage"
expect 2 "too many operands" "$PKV" del "$S" a b
expect 2 "bad base64 operand" "$PKV" put -b "$S" 'not base64!' AAAA
expect 2 "empty key" "$PKV" put "$S" '' v
expect 2 "key too long" "$PKV" put "$S" "$(head -c 1025 /dev/zero | tr '\0' k)" v
expect 2 "bad --batch" "$PKV" load --batch 0 "$S"
expect 2 "bad --expires-ms" "$PKV" put --expires-ms soon "$S" k v
expect 2 "help of no subcommand" "$PKV" help frob
[ ! -e "$S" ] && ok "usage errors created nothing" || bad "usage errors created $S"

# ---- help -------------------------------------------------------------------------------
expect 0 "help" "$PKV" help
for c in stats verify compact checkpoint get put del dump load help; do
	expect 0 "help $c" "$PKV" help "$c"
	has "$W/out" "usage: pkv $c" "help $c shows its usage"
done
expect 0 "get --help" "$PKV" get --help
has "$W/out" "usage: pkv get" "get --help shows the usage"

# ---- store errors: exit 1 -------------------------------------------------------------
expect 1 "stats of a missing store" "$PKV" stats "$W/nothing"
has "$W/err" "$W/nothing" "the message names the directory"
[ ! -e "$W/nothing" ] && ok "a read of a missing store created nothing" ||
	bad "stats created $W/nothing"
has "$W/err" "$W/nothing does not exist" "the message says the directory does not exist"
expect 1 "put into a missing parent directory" "$PKV" put "$W/noparent/store" k v
has "$W/err" "$W/noparent does not exist" "the message names the missing parent"
if grep -qF "no store there" "$W/err"; then
	bad "a put into a missing parent is not 'no store there':"; sed 's/^/     /' "$W/err"
else
	ok "a put into a missing parent does not say 'no store there'"
fi
[ ! -e "$W/noparent" ] && ok "pkv makes no parent directory" || bad "put made $W/noparent"
mkdir "$W/empty"
expect 1 "get in an empty directory" "$PKV" get "$W/empty" k
has "$W/err" "$W/empty: no store there" "an empty directory is no store"
[ -z "$(ls -A "$W/empty")" ] && ok "a read-only open left the empty directory empty" ||
	bad "a read-only open wrote into an empty directory: $(ls -A "$W/empty")"

# ---- put, get, del ---------------------------------------------------------------------
expect 0 "put creates the store" "$PKV" put "$S" greeting hello
expect 0 "get" "$PKV" get "$S" greeting
[ "$(cat "$W/out")" = hello ] && ok "get prints the value" || bad "get printed '$(cat "$W/out")'"
expect 0 "get --raw" "$PKV" get --raw "$S" greeting
[ "$(od -An -c "$W/out" | tr -d ' ')" = hello ] && ok "--raw prints the bytes only" ||
	bad "--raw printed $(od -An -c "$W/out")"
expect 1 "get of an absent key" "$PKV" get "$S" nope
has "$W/err" "key not found" "absent key is reported"
expect 0 "put binary (-b)" "$PKV" put -b "$S" AP8A/w== ""
expect 0 "get binary (-b)" "$PKV" get -b "$S" AP8A/w==
[ "$(cat "$W/out")" = "" ] && ok "binary key, empty value" || bad "got '$(cat "$W/out")'"
expect 0 "del" "$PKV" del -b "$S" AP8A/w==
expect 1 "del of an absent key" "$PKV" del -b "$S" AP8A/w==
expect 1 "get after del" "$PKV" get -b "$S" AP8A/w==
expect 0 "stats" "$PKV" stats "$S"
has "$W/out" "keys               1" "stats counts the keys"
expect 0 "stats --json" "$PKV" stats --json "$S"
has "$W/out" '"keys": 1' "stats --json counts the keys"
expect 0 "verify" "$PKV" verify "$S"
has "$W/out" "ok" "verify says ok"
expect 0 "compact" "$PKV" compact "$S"
expect 0 "get after compact" "$PKV" get "$S" greeting
expect 1 "compact of a missing store" "$PKV" compact "$W/nothing2"

# ---- a store open in another process: exit 1, the message says so ----------------------
mkfifo "$W/fifo"
"$PKV" load "$S" <"$W/fifo" 2>"$W/holder.err" &
holder=$!
exec 3>"$W/fifo" # the loader now opens the store and waits for input
# Until its open holds the exclusive flock (bounded: 10 s). Watched in /proc/locks, not probed
# with an open of our own: a probe's shared lock, taken at the wrong instant, would make the
# loader's own open fail with PKV_ELOCKED.
lock_ino=$(stat -c %i "$S/LOCK")
for _ in $(seq 1 100); do
	grep -qE "FLOCK +ADVISORY +WRITE +$holder +[0-9a-f]+:[0-9a-f]+:$lock_ino " /proc/locks && break
	sleep 0.1
done
expect 1 "get while another process has the store" "$PKV" get "$S" greeting
has "$W/err" "open in another process" "the message says another process has it"
has "$W/err" "pkv_checkpoint" "the message suggests a checkpoint from inside that process"
echo '{"key": "from-holder", "value": "1"}' >&3
exec 3>&-
wait "$holder"
[ $? -eq 0 ] && ok "the holding loader finished" || bad "the holding loader failed"
expect 0 "what the holder loaded" "$PKV" get "$S" from-holder

# ---- round trip: binary keys, empty values, NUL and newlines in strings -----------------
cat >"$W/in.jsonl" <<'EOF'
{"key": "plain", "value": "text"}
{"key": "empty-value", "value": ""}
{"key": "a\u0000b", "value": "line\nbreak \"quoted\" é ☃"}
{"key_base64": "AP8A/w==", "value": "binary key"}
{"key": "binary value", "value_base64": "gICA"}
{"key_base64": "/w==", "value_base64": "/wA="}
{"key_base64": "wA==", "value": ""}
EOF
L=$W/rt
expect 0 "load" "$PKV" load "$L" <"$W/in.jsonl"
expect 0 "dump" "$PKV" dump "$L"
sort "$W/out" >"$W/dump1"
sort "$W/in.jsonl" >"$W/in.sorted"
if cmp -s "$W/dump1" "$W/in.sorted"; then ok "dump writes exactly what was loaded"; else
	bad "dump differs from the input:"; diff "$W/in.sorted" "$W/dump1" | sed 's/^/     /'
fi
"$PKV" dump "$L" | "$PKV" load "$W/rt2"
[ $? -eq 0 ] && ok "dump | load" || bad "dump | load failed"
"$PKV" dump "$W/rt2" | sort >"$W/dump2"
cmp -s "$W/dump1" "$W/dump2" && ok "dump | load copies the store" || bad "copy differs"
expect 0 "compact the copy" "$PKV" compact "$W/rt2"
"$PKV" dump "$W/rt2" | sort >"$W/dump3"
cmp -s "$W/dump1" "$W/dump3" && ok "dump after compact: same keys" || bad "compacted copy differs"
expect 0 "get a binary key of the copy" "$PKV" get -b "$W/rt2" /w==
[ "$(cat "$W/out")" = "/wA=" ] && ok "binary value intact" || bad "got $(cat "$W/out")"
expect 0 "load an empty input" "$PKV" load "$W/rt3" </dev/null
expect 0 "dump an empty store" "$PKV" dump "$W/rt3"
[ ! -s "$W/out" ] && ok "an empty store dumps nothing" || bad "dumped: $(cat "$W/out")"
expect 0 "load --batch 2" "$PKV" load --batch 2 "$W/rt4" <"$W/in.jsonl"
expect 0 "load --per-key" "$PKV" load --per-key "$W/rt5" <"$W/in.jsonl"
"$PKV" dump "$W/rt5" | sort >"$W/dump4b"
cmp -s "$W/dump1" "$W/dump4b" && ok "--per-key loads the same" || bad "--per-key differs"
"$PKV" dump "$W/rt4" | sort >"$W/dump4"
cmp -s "$W/dump1" "$W/dump4" && ok "small batches load the same" || bad "batch 2 differs"

# ---- expiry through dump and load --------------------------------------------------------
# A far-future expires_ms survives dump | load | dump unchanged; a line already expired loads
# (pkv_put_expire: a time already past writes a key that reads as absent at once) and is then
# absent everywhere, dumps included.
far='{"key": "ttl", "value": "later", "expires_ms": 4102444800000}'
past='{"key": "old", "value": "gone", "expires_ms": 1000}'
printf '%s\n' '{"key": "plain", "value": "p"}' "$far" "$past" >"$W/ttl.jsonl"
expect 0 "load lines with expires_ms" "$PKV" load "$W/ttl" <"$W/ttl.jsonl"
expect 0 "get a key that expires in 2100" "$PKV" get "$W/ttl" ttl
[ "$(cat "$W/out")" = later ] && ok "the far-future key is present" || bad "got $(cat "$W/out")"
expect 1 "get a key loaded already expired" "$PKV" get "$W/ttl" old
has "$W/err" "key not found" "an expired key reads as absent"
expect 0 "dump a store with expiries" "$PKV" dump "$W/ttl"
has "$W/out" "$far" "dump keeps expires_ms"
if grep -qF '"old"' "$W/out"; then bad "dump wrote an expired key: $(cat "$W/out")"; else
	ok "dump leaves the expired key out"
fi
sort "$W/out" >"$W/ttl.dump1"
"$PKV" dump "$W/ttl" | "$PKV" load "$W/ttl2"
[ $? -eq 0 ] && ok "dump | load with expires_ms" || bad "dump | load with expires_ms failed"
"$PKV" dump "$W/ttl2" | sort >"$W/ttl.dump2"
cmp -s "$W/ttl.dump1" "$W/ttl.dump2" && ok "the copy dumps the same lines, expires_ms included" ||
	bad "the copy differs: $(diff "$W/ttl.dump1" "$W/ttl.dump2")"
expect 0 "compact the copy" "$PKV" compact "$W/ttl2"
"$PKV" dump "$W/ttl2" | sort >"$W/ttl.dump3"
cmp -s "$W/ttl.dump1" "$W/ttl.dump3" && ok "expires_ms survives a compaction" ||
	bad "after compact: $(diff "$W/ttl.dump1" "$W/ttl.dump3")"
expect 0 "put --expires-ms in 2100" "$PKV" put --expires-ms 4102444800000 "$W/ttl3" k v
expect 0 "dump it" "$PKV" dump "$W/ttl3"
has "$W/out" '{"key": "k", "value": "v", "expires_ms": 4102444800000}' \
	"put --expires-ms shows in the dump"

# ---- checkpoint --------------------------------------------------------------------------
expect 0 "checkpoint" "$PKV" checkpoint "$L" "$W/cp"
"$PKV" dump "$W/cp" | sort >"$W/dump5"
cmp -s "$W/dump1" "$W/dump5" && ok "the checkpoint holds every key" || bad "checkpoint differs"
expect 0 "write to the source after the checkpoint" "$PKV" put "$L" plain changed
expect 0 "the checkpoint is independent" "$PKV" get "$W/cp" plain
[ "$(cat "$W/out")" = text ] && ok "checkpoint kept the old value" || bad "got $(cat "$W/out")"
expect 2 "checkpoint onto an existing directory" "$PKV" checkpoint "$L" "$W/cp"
has "$W/err" "exists" "the message says DST exists"
expect 1 "checkpoint of a missing store" "$PKV" checkpoint "$W/nothing3" "$W/cp2"
expect 1 "checkpoint into a missing parent directory" "$PKV" checkpoint "$L" "$W/noparent2/cp"
has "$W/err" "$W/noparent2 does not exist" "the message names DST's missing parent"
if grep -qF "no store there" "$W/err"; then
	bad "a checkpoint into a missing parent blames the source:"; sed 's/^/     /' "$W/err"
else
	ok "a checkpoint into a missing parent does not say 'no store there'"
fi
[ ! -e "$W/noparent2" ] && ok "the checkpoint made no parent directory" ||
	bad "checkpoint made $W/noparent2"

# ---- every kind of bad dump line: exit 2, its line number, what came before kept --------
n=0
while IFS='|' read -r what line; do
	n=$((n + 1))
	D=$W/bad$n
	{
		echo '{"key": "first", "value": "1"}'
		echo '{"key_base64": "AAE=", "value": "2"}'
		printf '%s\n' "$line"
		echo '{"key": "after", "value": "4"}'
	} >"$W/bad.jsonl"
	expect 2 "bad line: $what" "$PKV" load "$D" <"$W/bad.jsonl"
	has "$W/err" "line 3:" "bad line ($what): the message has the line number"
	if "$PKV" get "$D" first >/dev/null 2>&1 && "$PKV" get -b "$D" AAE= >/dev/null 2>&1 &&
		! "$PKV" get "$D" after >/dev/null 2>&1; then
		ok "bad line ($what): the lines before it are loaded, the one after is not"
	else
		bad "bad line ($what): the store does not hold exactly lines 1-2"
	fi
done <<EOF
not JSON|{"key": "k", "value": 
not JSON (garbage)|hello
not JSON (trailing garbage)|{"key": "k", "value": "v"} x
not an object|["k", "v"]
empty line|
missing key|{"value": "v"}
missing value|{"key": "k"}
both key forms|{"key": "k", "key_base64": "aw==", "value": "v"}
both value forms|{"key": "k", "value": "v", "value_base64": "dg=="}
key not a string|{"key": 5, "value": "v"}
value not a string|{"key": "k", "value": null}
bad base64 key|{"key_base64": "a!==", "value": "v"}
bad base64 value|{"key": "k", "value_base64": "abc"}
bad base64 padding bits|{"key_base64": "AB==", "value": "v"}
empty key|{"key": "", "value": "v"}
key too long|{"key": "$(head -c 1025 /dev/zero | tr '\0' k)", "value": "v"}
key too long (base64)|{"key_base64": "$(head -c 1025 /dev/zero | base64 -w0)", "value": "v"}
unknown field|{"key": "k", "value": "v", "ttl": 5}
duplicate field|{"key": "k", "key": "j", "value": "v"}
bad expires_ms|{"key": "k", "value": "v", "expires_ms": "soon"}
negative expires_ms|{"key": "k", "value": "v", "expires_ms": -1}
EOF
# A value longer than 1 MiB (generated: too long for a here-document line).
{
	echo '{"key": "first", "value": "1"}'
	echo '{"key_base64": "AAE=", "value": "2"}'
	printf '{"key": "big", "value": "%s"}\n' "$(head -c 1048577 /dev/zero | tr '\0' v)"
} >"$W/big.jsonl"
expect 2 "bad line: value too long" "$PKV" load "$W/bigstore" <"$W/big.jsonl"
has "$W/err" "line 3: value too long" "value too long: named, with the line number"
expect 0 "value too long: earlier keys kept" "$PKV" get "$W/bigstore" first

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
