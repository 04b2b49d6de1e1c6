#!/usr/bin/env bash
# bench/setup.sh - install what pkvbench needs (Debian 12 packages) and build it into
# ./build-bench (relative to the repository root). Safe to run again.
#
#   bash bench/setup.sh              install + configure + build
#   PKVB_NO_APT=1 bash bench/setup.sh   build only (packages already there)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PKGS=(build-essential cmake pkg-config liburcu-dev libck-dev
      liblmdb-dev librocksdb-dev libleveldb-dev libsqlite3-dev gnuplot-nox)

if [ "${PKVB_NO_APT:-0}" != 1 ]; then
	SUDO=()
	if [ "$(id -u)" -ne 0 ]; then
		SUDO=(sudo)
	fi
	"${SUDO[@]}" apt-get update
	DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends \
		"${PKGS[@]}"
fi

# Tests are not needed for the benchmark (and need their own packages): leave them out.
cmake -S . -B build-bench -DPKV_BUILD_BENCH=ON -DPKV_BUILD_TESTS=OFF \
	-DCMAKE_BUILD_TYPE=Release
cmake --build build-bench -j"$(nproc)" --target pkvbench
echo
echo "built build-bench/bench/pkvbench; systems compiled in:"
build-bench/bench/pkvbench --list
