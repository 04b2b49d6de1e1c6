#!/usr/bin/env bash
# bench/run.sh - run pkvbench from the repository root and draw its charts.
#
#   bash bench/run.sh                    the quick profile (a few minutes on 2 cores)
#   bash bench/run.sh full               every workload, peer and mode (much longer)
#   bash bench/run.sh quick --dir /mnt/nvme/pkv-bench   data on another device
#   bash bench/run.sh custom --systems pkv:process,rocksdb:nosync --workloads read95 --dist zipf
#   bash bench/run.sh server             pkv-server against redis-server (bench/server.sh)
#
# Data goes to ./bench-data unless --dir says otherwise (each system gets a subdirectory that is
# removed after its session); results to ./bench-results/<profile>-<time>/, with
# ./bench-results/latest pointing at the newest run. Any pkvbench option may follow the profile
# (see: build-bench/bench/pkvbench --help).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The server profile drives pkv-server and redis-server with redis-benchmark (bench/server.sh).
if [ "${1:-}" = server ]; then
	shift
	exec bash bench/server.sh "$@"
fi

BIN=build-bench/bench/pkvbench
if [ ! -x "$BIN" ]; then
	echo "run.sh: $BIN is missing: run 'bash bench/setup.sh' first" >&2
	exit 1
fi
PROFILE=${1:-quick}
[ $# -gt 0 ] && shift

# RocksDB and LevelDB keep many files open.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

OUT="bench-results/${PROFILE}-$(date +%Y%m%d-%H%M%S)"
HAVE_OUT=0
for a in "$@"; do
	case "$a" in --out|--out=*) HAVE_OUT=1 ;; esac
done
if [ "$HAVE_OUT" = 1 ]; then
	"$BIN" "$PROFILE" "$@"
	rc=$?
	exit $rc
fi
"$BIN" "$PROFILE" --out "$OUT" "$@"
rc=$?
if [ -f "$OUT/results.csv" ]; then
	ln -sfn "$(basename "$OUT")" bench-results/latest
	if command -v gnuplot >/dev/null 2>&1; then
		bash bench/plot.sh "$OUT" || echo "run.sh: charts failed (results are intact)" >&2
	else
		echo "run.sh: gnuplot not found, no charts (bench/setup.sh installs gnuplot-nox)" >&2
	fi
fi
exit $rc
