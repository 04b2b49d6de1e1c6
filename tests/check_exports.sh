#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check_exports.sh NM LIBPKV_SO PKV_H
#
# libpkv.so is built with -fvisibility=hidden and marks its API with PKV_EXPORT: its dynamic symbol
# table must hold pkv_* names only (so internal pkv__* helpers and the statically linked parts of
# dependencies never leak into, or clash with, a host program), and every function that pkv.h
# declares with PKV_EXPORT must be there (a forgotten marker would make it unlinkable).
set -eu

nm_tool=$1
lib=$2
header=$3

defined=$("$nm_tool" -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | sort -u)

if [ -z "$defined" ]; then
	echo "FAIL: $(basename "$lib") exports no symbols at all"
	exit 1
fi

status=0
for sym in $defined; do
	case $sym in
	pkv__*)
		# Internal by naming convention (STYLE.md): must stay hidden.
		echo "FAIL: internal symbol exported: $sym"
		status=1
		;;
	pkv_*) ;;
	# Defined by the linker in every shared object, not by pkv.
	_init | _fini | _edata | _end | __bss_start) ;;
	*)
		echo "FAIL: exported symbol outside the pkv_ namespace: $sym"
		status=1
		;;
	esac
done

# Every function the header exports, by name: "PKV_EXPORT <type> [*]pkv_name(".
api=$(sed -n 's/^PKV_EXPORT[^(]*[ *]\(pkv_[a-z0-9_]*\)(.*/\1/p' "$header" | sort -u)
if [ -z "$api" ]; then
	echo "FAIL: found no PKV_EXPORT declarations in $(basename "$header")"
	exit 1
fi
for fn in $api; do
	if ! printf '%s\n' "$defined" | grep -qx "$fn"; then
		echo "FAIL: pkv.h declares $fn but $(basename "$lib") does not export it"
		status=1
	fi
done

exit $status
