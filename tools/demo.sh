#!/usr/bin/env bash
# tools/demo.sh - the main job for now: build pkv (Release, ./build/release) and run the kill -9
# demo (examples/demo.c) against ./demo-data. Installs missing Debian packages first.
#
# Usage: bash tools/demo.sh [DEMO-ARGS...]   e.g. --kill-after-ms 500 --durability power
# Run it again: the store in ./demo-data persists, and each run goes on where the last stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=deps.sh
source tools/deps.sh
pkv_install_deps

mkdir -p build/logs
echo "demo: configuring and building build/release (log: build/logs/demo-build.log)"
if ! { cmake --preset release && cmake --build build/release -j"${PKV_JOBS:-2}" --target example_demo; } \
	>build/logs/demo-build.log 2>&1; then
	tail -n 60 build/logs/demo-build.log
	echo "demo: build failed" >&2
	exit 1
fi
exec ./build/release/examples/demo ./demo-data "$@"
