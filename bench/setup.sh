#!/usr/bin/env bash
# bench/setup.sh - install what pkvbench needs (Debian 12 packages) and build it into
# ./build-bench (relative to the repository root). Safe to run again.
#
#   bash bench/setup.sh              install what is missing (nothing: no apt-get at all),
#                                    configure, build
#   PKVB_NO_APT=1 bash bench/setup.sh   never run apt-get
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PKGS=(build-essential cmake pkg-config liburcu-dev libck-dev
      liblmdb-dev librocksdb-dev libleveldb-dev libsqlite3-dev gnuplot-nox)

# Only what is missing: an apt-get run when everything is there would refresh the package lists
# and could upgrade unrelated packages (the README promises it does not).
missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ "${PKVB_NO_APT:-0}" != 1 ] && [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	SUDO=()
	if [ "$(id -u)" -ne 0 ]; then
		SUDO=(sudo)
	fi
	"${SUDO[@]}" apt-get update
	DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends \
		"${missing[@]}"
elif [ ${#missing[@]} -eq 0 ]; then
	echo "setup: every package is installed; apt-get skipped"
fi

# Tests are not needed for the benchmark (and need their own packages): leave them out.
cmake -S . -B build-bench -DPKV_BUILD_BENCH=ON -DPKV_BUILD_TESTS=OFF \
	-DCMAKE_BUILD_TYPE=Release
cmake --build build-bench -j"$(nproc)" --target pkvbench
echo
echo "built build-bench/bench/pkvbench; systems compiled in:"
build-bench/bench/pkvbench --list
