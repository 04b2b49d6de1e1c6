#!/usr/bin/env bash
# tests/check_layers_test.sh - the negative control of tools/check_layers.sh: it must pass a
# clean graph and fail (exit 1, naming the edge) on an upward include, an upward call, a cycle
# between files of one layer, a file with no layer, and made-up edges added to the real tree;
# and exit 2 on a source without an object.
#
# Usage: check_layers_test.sh CHECK_SCRIPT CC OBJDIR
#   OBJDIR: the objects of the library as built (for the made-up edges on the real tree)
set -uo pipefail
CHECK=$1 CC=$2 OBJDIR=$3
T=$(mktemp -d) || exit 2
trap 'rm -rf "$T"' EXIT
FAILS=0

# expect STATUS PATTERN DESCRIPTION -- ARGS...: run the check, compare exit status and output.
expect() {
	local want=$1 pattern=$2 what=$3 out rc
	shift 4
	out=$(bash "$CHECK" "$@" 2>&1)
	rc=$?
	if [ "$rc" != "$want" ] || ! grep -qE -- "$pattern" <<<"$out"; then
		echo "FAIL: $what: exit $rc (want $want), output:"
		sed 's/^/    /' <<<"$out"
		FAILS=$((FAILS + 1))
	else
		echo "ok: $what"
	fi
}

# A two-layer fixture: low (0) and high (1); high calls low.
fixture() {
	rm -rf "$T/src" "$T/obj"
	mkdir -p "$T/src" "$T/obj"
	cat >"$T/layers.txt" <<'TBL'
# layer name files
0 low low.h low.c a.h a.c b.h b.c
1 high high.h high.c
TBL
	printf 'int low_fn(void);\n' >"$T/src/low.h"
	printf '#include "low.h"\nint low_fn(void) { return 1; }\n' >"$T/src/low.c"
	printf 'int high_fn(void);\n' >"$T/src/high.h"
	printf '#include "high.h"\n#include "low.h"\nint high_fn(void) { return low_fn(); }\n' \
		>"$T/src/high.c"
}

build() {
	for c in "$T"/src/*.c; do
		"$CC" -c -o "$T/obj/$(basename "$c").o" "$c" || exit 2
	done
}

fixture
build
expect 0 "OK" "a clean two-layer graph passes" -- \
	--src "$T/src" --objdir "$T/obj" --table "$T/layers.txt"

fixture
printf '#include "high.h"\n' >>"$T/src/low.c"
build
expect 1 "upward edge low.c \(layer 0\) -> high.h \(layer 1\) \[include\]" "an upward include" -- \
	--src "$T/src" --objdir "$T/obj" --table "$T/layers.txt"

fixture
printf 'int high_fn(void);\nint low_up(void) { return high_fn(); }\n' >>"$T/src/low.c"
build
expect 1 "upward edge low.c \(layer 0\) -> high.c \(layer 1\) \[symbol:high_fn\]" \
	"an upward call (from nm)" -- --src "$T/src" --objdir "$T/obj" --table "$T/layers.txt"

fixture
printf 'int b_fn(void);\nint a_fn(void) { return b_fn(); }\n' >"$T/src/a.c"
printf 'int a_fn(void);\nint b_fn(int n);\nint b_fn(int n) { return n ? a_fn() : 0; }\n' \
	>"$T/src/b.c"
build
expect 1 "edge (a.c -> b.c|b.c -> a.c) \[symbol:" "a call cycle within one layer" -- \
	--src "$T/src" --objdir "$T/obj" --table "$T/layers.txt"

fixture
printf '#include "b.h"\n' >"$T/src/a.h"
printf '#include "a.h"\n' >"$T/src/b.h"
build
expect 1 "has a cycle" "an include cycle within one layer" -- \
	--src "$T/src" --objdir "$T/obj" --table "$T/layers.txt"

fixture
printf 'int stray(void) { return 0; }\n' >"$T/src/stray.c"
build
expect 1 "stray.c has no layer" "a file with no layer" -- \
	--src "$T/src" --objdir "$T/obj" --table "$T/layers.txt"

fixture
build
rm "$T/obj/high.c.o"
expect 2 "no object for high.c" "a source without an object (a partial build)" -- \
	--src "$T/src" --objdir "$T/obj" --table "$T/layers.txt"

# The real tree, with made-up edges: the map calling the WAL, and a cycle sync <-> apply.
printf 'map.c wal.c\n' >"$T/up.txt"
expect 1 "upward edge map.c \(layer 2\) -> wal.c \(layer 3\) \[given\]" \
	"a made-up upward edge in src/" -- --objdir "$OBJDIR" --edges "$T/up.txt"
printf 'sync.c apply.c\napply.c sync.c\n' >"$T/cycle.txt"
expect 1 "has a cycle" "a made-up cycle in src/" -- --objdir "$OBJDIR" --edges "$T/cycle.txt"

[ "$FAILS" = 0 ] && echo "check_layers_test: all cases behaved" && exit 0
echo "check_layers_test: $FAILS case(s) misbehaved"
exit 1
