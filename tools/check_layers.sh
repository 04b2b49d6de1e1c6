#!/usr/bin/env bash
# tools/check_layers.sh - check that src/ keeps its layer order (tools/layers.txt).
#
# Builds the file-level dependency graph of src/ from two sources:
#   - the #include "..." lines of src/*.c and src/*.h (an edge from the including file to the
#     included one; headers outside src/, such as pkv.h, are not part of the graph);
#   - the compiled objects of the library: `nm` says which object defines each global symbol and
#     which objects use it (an edge from the user's .c to the definer's .c).
# It fails (exit 1) and prints the offending edge when a file depends on a file of a higher
# layer, when the graph has a cycle (tsort finds it), or when a file has no layer in the table;
# exit 2 when a source file of src/ has no object (a partial build would hide its calls).
#
# Usage: bash tools/check_layers.sh [--objdir DIR] [--src DIR] [--table FILE] [--edges FILE]
#   --objdir  where the library's objects are (default build/release/CMakeFiles/pkv_objects.dir);
#             every *.o below it counts, named after its source (db.c.o or db.o is db.c)
#   --src     the sources (default src)
#   --table   the layer table (default tools/layers.txt)
#   --edges   more edges, one "FROM TO" per line (file names), added to the graph
#   -v        print every edge
# Exit status: 0 when the layering holds, 1 when it is broken, 2 on a usage or setup error.
set -uo pipefail

CALLER=$(pwd)
# abs PATH: PATH as the caller meant it (relative to where the script was started)
abs() { case "$1" in /*) echo "$1" ;; *) echo "$CALLER/$1" ;; esac; }
cd "$(dirname "$0")/.." || exit 2
OBJDIR=build/release/CMakeFiles/pkv_objects.dir
SRC=src
TABLE=tools/layers.txt
EXTRA=
VERBOSE=0
while [ $# -gt 0 ]; do
	case "$1" in
	--objdir) OBJDIR=$(abs "$2"); shift 2 ;;
	--src) SRC=$(abs "$2"); shift 2 ;;
	--table) TABLE=$(abs "$2"); shift 2 ;;
	--edges) EXTRA=$(abs "$2"); shift 2 ;;
	-v) VERBOSE=1; shift ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "check_layers: unknown argument $1" >&2; exit 2 ;;
	esac
done

[ -r "$TABLE" ] || { echo "check_layers: no layer table $TABLE" >&2; exit 2; }
[ -d "$SRC" ] || { echo "check_layers: no source directory $SRC" >&2; exit 2; }
# Only objects whose source is still in src/: a build tree keeps the objects of removed files.
mapfile -t OBJS < <(find "$OBJDIR" -name '*.o' 2>/dev/null | sort |
	while read -r o; do
		b=$(basename "$o"); b=${b%.o}; case "$b" in *.c) ;; *) b=$b.c ;; esac
		[ -e "$SRC/$b" ] && echo "$o"
	done)
if [ "${#OBJS[@]}" -eq 0 ]; then
	echo "check_layers: no objects under $OBJDIR (build the library first)" >&2
	exit 2
fi

# A source without an object would drop its symbol edges unseen (a partial build).
for f in "$SRC"/*.c; do
	[ -e "$f" ] || continue
	b=$(basename "$f")
	if ! printf '%s\n' "${OBJS[@]}" | grep -qE "/(${b%.c}|$b)\.o\$"; then
		echo "check_layers: no object for $b under $OBJDIR (build the library first)" >&2
		exit 2
	fi
done

TMP=$(mktemp -d) || exit 2
trap 'rm -rf "$TMP"' EXIT

# file -> layer
awk '!/^#/ && NF >= 3 { for (i = 3; i <= NF; i++) print $i, $1 }' "$TABLE" >"$TMP/layers"

# Include edges: "FROM TO" for every #include "x" of a src/ file that names a src/ file.
for f in "$SRC"/*.c "$SRC"/*.h; do
	[ -e "$f" ] || continue
	b=$(basename "$f")
	sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/p' "$f" |
		while read -r inc; do
			[ -e "$SRC/$inc" ] && echo "$b $inc include"
		done
done >"$TMP/edges"

# Symbol edges: the object that uses a symbol depends on the object that defines it.
for o in "${OBJS[@]}"; do
	b=$(basename "$o"); b=${b%.o}; case "$b" in *.c) ;; *) b=$b.c ;; esac
	nm -P --defined-only "$o" | awk -v f="$b" '$2 ~ /^[A-Z]$/ && $2 != "U" { print $1, f }'
done | sort -u >"$TMP/defs"
for o in "${OBJS[@]}"; do
	b=$(basename "$o"); b=${b%.o}; case "$b" in *.c) ;; *) b=$b.c ;; esac
	nm -P -u "$o" | awk -v f="$b" '{ print $1, f }'
done | sort -u >"$TMP/uses"
join "$TMP/uses" "$TMP/defs" | awk '$2 != $3 { print $2, $3, "symbol:" $1 }' >>"$TMP/edges"

if [ -n "$EXTRA" ]; then
	awk 'NF >= 2 && !/^#/ { print $1, $2, "given" }' "$EXTRA" >>"$TMP/edges"
fi
sort -u -o "$TMP/edges" "$TMP/edges"
[ "$VERBOSE" = 1 ] && cat "$TMP/edges"

# Every file of src/ and every node of the graph needs a layer; an edge must not go up.
FAIL=0
{
	for f in "$SRC"/*.c "$SRC"/*.h; do [ -e "$f" ] && basename "$f"; done
	awk '{ print $1; print $2 }' "$TMP/edges"
} | sort -u >"$TMP/nodes"
while read -r n; do
	if ! grep -q "^$n " "$TMP/layers"; then
		echo "check_layers: $n has no layer in $TABLE"
		FAIL=1
	fi
done <"$TMP/nodes"
awk 'NR == FNR { layer[$1] = $2; next }
	($1 in layer) && ($2 in layer) && layer[$2] + 0 > layer[$1] + 0 {
		printf "check_layers: upward edge %s (layer %s) -> %s (layer %s) [%s]\n",
		       $1, layer[$1], $2, layer[$2], $3
		bad = 1
	}
	END { exit bad }' "$TMP/layers" "$TMP/edges" || FAIL=1

# Cycles: tsort reports a loop on stderr. Self-edges are no cycle.
awk '$1 != $2 { print $1, $2 }' "$TMP/edges" | tsort >/dev/null 2>"$TMP/tsort"
if [ -s "$TMP/tsort" ]; then
	# GNU tsort prints each loop it breaks as "tsort: -: input contains a loop:" and then its
	# files, one a line: report the first loop and the edges among its files, with their reason.
	awk '/input contains a loop/ { n++; next } n == 1 { sub(/^tsort: /, ""); print }' \
		"$TMP/tsort" | sort -u >"$TMP/loop"
	echo "check_layers: the graph has a cycle through: $(tr '\n' ' ' <"$TMP/loop")"
	awk 'NR == FNR { in_loop[$1] = 1; next } ($1 in in_loop) && ($2 in in_loop) && $1 != $2 {
		printf "  edge %s -> %s [%s]\n", $1, $2, $3 }' "$TMP/loop" "$TMP/edges"
	FAIL=1
fi

if [ "$FAIL" = 0 ]; then
	printf 'check_layers: OK: %d files, %d edges, no upward edge, no cycle\n' \
		"$(wc -l <"$TMP/nodes")" "$(wc -l <"$TMP/edges")"
fi
exit "$FAIL"
