#!/usr/bin/env bash
# bench/server.sh - the server profile: redis-benchmark against pkv-server and Debian's
# redis-server in the same run, interleaved, at matching persistence.
#
#   bash bench/run.sh server [--server PATH] [--rounds N] [--scale F] [--dir DATA] [--out DIR]
#
#   pkv-server --durability   redis-server
#   process                   no persistence (--appendonly no --save "")
#   periodic                  --appendonly yes --appendfsync everysec
#   power                     --appendonly yes --appendfsync always
#
# Each round runs, for each pair and each pipeline depth (-P 1, -P 16), both servers one after
# the other (the order alternates between rounds), each freshly started on an empty directory:
#   redis-benchmark -c 50 -P {1,16} -d 100 -r 100000 -t set,get,incr,mset --csv
# (MSET is redis-benchmark's 10-key MSET). The report gives per test the median over the rounds
# of the requests per second and of the p99 latency, the ratio pkv/Redis, the goals of issue 13
# with PASS or MISS, and a gnuplot chart of the ratios. The benchmark client runs on the same
# machine as the server: on a small machine it takes CPU from the server (the report gives the
# CPU count and the load before and after the run).
#
# Results: bench-results/server-<time>/ (results.csv, summary.md, server-ratio.{svg,png}),
# bench-results/latest-server pointing at the newest.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

SERVER=
ROUNDS=3
SCALE=1
DATA=bench-data/server
OUT=
while [ $# -gt 0 ]; do
	case "$1" in
	--server) SERVER=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--scale) SCALE=$2; shift 2 ;;
	--dir) DATA=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-h | --help) sed -n '2,27p' "$0"; exit 0 ;;
	*) echo "server.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
if [ -z "$SERVER" ]; then
	for s in build-bench/server/pkv-server build/release/server/pkv-server \
		"$(command -v pkv-server)"; do
		[ -n "$s" ] && [ -x "$s" ] && { SERVER=$s; break; }
	done
fi
if [ -z "$SERVER" ] || [ ! -x "$SERVER" ]; then
	echo "server.sh: no pkv-server (build it, or --server PATH)" >&2
	exit 1
fi
for tool in redis-server redis-benchmark python3; do
	command -v "$tool" >/dev/null ||
		{ echo "server.sh: $tool is missing (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
OUT=${OUT:-bench-results/server-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" "$DATA"
CSV=$OUT/results.csv
echo "round,pair,pipeline,system,test,rps,p50_ms,p99_ms" >"$CSV"
PID=

cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -KILL "$PID"
		wait "$PID" 2>/dev/null
	fi
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start SYSTEM MODE: start pkv-server or redis-server on a free port with an empty directory;
# sets PID and PORT.
start() {
	local sys=$1 mode=$2 dir=$DATA/$1 n
	rm -rf "$dir"
	mkdir -p "$dir"
	PORT=$(free_port)
	if [ "$sys" = pkv ]; then
		"$SERVER" --dir "$dir" --port "$PORT" --bind 127.0.0.1 --durability "$mode" \
			>"$OUT/pkv-server.log" 2>&1 &
	else
		local persist=(--appendonly no)
		case $mode in
		everysec | always) persist=(--appendonly yes --appendfsync "$mode") ;;
		esac
		redis-server --port "$PORT" --bind 127.0.0.1 --dir "$dir" --save "" --daemonize no \
			"${persist[@]}" >"$OUT/redis-server.log" 2>&1 &
	fi
	PID=$!
	for n in $(seq 1 500); do
		kill -0 "$PID" 2>/dev/null || { echo "server.sh: $sys exited at start" >&2; return 1; }
		[ "$(timeout 2 redis-cli -p "$PORT" PING 2>/dev/null)" = PONG ] && return 0
		sleep 0.02
	done
	echo "server.sh: $sys did not answer within 10 s" >&2
	return 1
}

stop() {
	local n
	kill -TERM "$PID"
	for n in $(seq 1 600); do
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$PID" 2>/dev/null && kill -KILL "$PID"
	wait "$PID" 2>/dev/null
	PID=
}

# requests PAIR PIPELINE: -n for one test, sized for about a second or two on 2 cores.
requests() {
	local n
	case "$1:$2" in
	power:1) n=20000 ;;
	power:16) n=100000 ;;
	*:1) n=200000 ;;
	*) n=1000000 ;;
	esac
	awk -v n="$n" -v s="$SCALE" 'BEGIN { printf "%d", n * s }'
}

PAIRS="process:none periodic:everysec power:always"
{
	echo "pkv-server: $SERVER (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
	echo "redis-server: $(redis-server --version)"
	echo "CPUs: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
	echo "data directory: $DATA ($(df -T "$DATA" | awk 'NR == 2 { print $2 }'))"
	echo "load before: $(uptime)"
} | tee "$OUT/machine.txt"
t0=$SECONDS
for round in $(seq 1 "$ROUNDS"); do
	for pair in $PAIRS; do
		pmode=${pair%%:*}
		rmode=${pair##*:}
		for P in 1 16; do
			if [ $((round % 2)) = 1 ]; then order="pkv redis"; else order="redis pkv"; fi
			for sys in $order; do
				mode=$pmode
				[ "$sys" = redis ] && mode=$rmode
				start "$sys" "$mode" || exit 1
				n=$(requests "$pmode" "$P")
				printf 'round %d  %-8s %-8s -P %-2s %-5s -n %d\n' "$round" "$pmode" "$rmode" \
					"$P" "$sys" "$n"
				# One redis-benchmark per test: it exits at the first error reply, and a
				# command this build of pkv-server lacks must not hide the others. SET runs
				# first, so GET and INCR find keys.
				for t in set get incr mset; do
					timeout 900 redis-benchmark -h 127.0.0.1 -p "$PORT" -c 50 -n "$n" \
						-P "$P" -d 100 -r 100000 -t "$t" --csv >"$OUT/bench.out" \
						2>"$OUT/bench.err"
					if ! grep -q '^"[A-Z]' "$OUT/bench.out"; then
						echo "  $sys: $t failed: $(head -c 200 "$OUT/bench.err")"
						echo "$round,$pmode/$rmode,$P,$sys,${t^^},NA,NA,NA" >>"$CSV"
						continue
					fi
					awk -F'","' -v r="$round" -v pair="$pmode/$rmode" -v P="$P" \
						-v s="$sys" '
						NR > 1 {
							gsub(/"/, "")
							split($0, f, ",")
							t = f[1]; sub(/ .*/, "", t)
							printf "%s,%s,%s,%s,%s,%s,%s,%s\n", r, pair, P, s, t, f[2], f[5], f[7]
						}' "$OUT/bench.out" >>"$CSV"
				done
				stop
				rm -rf "${DATA:?}/$sys"
			done
		done
	done
done
echo "load after: $(uptime)" | tee -a "$OUT/machine.txt"
echo "run time: $((SECONDS - t0)) s" | tee -a "$OUT/machine.txt"

python3 - "$OUT" <<'EOF'
import csv, statistics, sys
out = sys.argv[1]
allrows = list(csv.DictReader(open(out + "/results.csv")))
rows = [r for r in allrows if r["rps"] != "NA"]
failed = sorted({(r["system"], r["test"]) for r in allrows if r["rps"] == "NA"})
med = {}
for key in {(r["pair"], r["pipeline"], r["system"], r["test"]) for r in rows}:
    sel = [r for r in rows if (r["pair"], r["pipeline"], r["system"], r["test"]) == key]
    med[key] = (statistics.median(float(r["rps"]) for r in sel),
                statistics.median(float(r["p99_ms"]) for r in sel), len(sel))
pairs = ["process/none", "periodic/everysec", "power/always"]
tests = ["SET", "GET", "INCR", "MSET"]
lines = []
lines.append("| pkv mode / Redis persistence | -P | test | pkv req/s | Redis req/s | pkv / Redis "
             "| per-round ratios | pkv p99 ms | Redis p99 ms |")
lines.append("|---|---|---|---:|---:|---:|---|---:|---:|")

def round_ratios(pair, P, t):
    """pkv/Redis of each round (the two ran next to each other), low to high."""
    per = {}
    for r in rows:
        if (r["pair"], r["pipeline"], r["test"]) == (pair, P, t):
            per.setdefault(r["round"], {})[r["system"]] = float(r["rps"])
    return sorted(v["pkv"] / v["redis"] for v in per.values() if "pkv" in v and "redis" in v)
dat = []
for pair in pairs:
    for P in ("1", "16"):
        for t in tests:
            a, b = med.get((pair, P, "pkv", t)), med.get((pair, P, "redis", t))
            if not a or not b:
                lines.append("| %s | %s | %s | %s | %s | | | | |"
                             % (pair, P, t, "%.0f" % a[0] if a else "failed",
                                "%.0f" % b[0] if b else "failed"))
                continue
            ratio = a[0] / b[0] if b[0] else float("nan")
            rr = round_ratios(pair, P, t)
            lines.append("| %s | %s | %s | %.0f | %.0f | %.2f | %s | %.3f | %.3f |"
                         % (pair, P, t, a[0], b[0], ratio,
                            "%.2f-%.2f" % (rr[0], rr[-1]) if rr else "", a[1], b[1]))
            dat.append((pair, P, t, ratio))

def ratio(pair, P, t):
    a, b = med.get((pair, P, "pkv", t)), med.get((pair, P, "redis", t))
    return (a[0] / b[0], a[1], b[1]) if a and b and b[0] else (float("nan"), 0, 0)

goals = []
def goal(metric, want, checks, p99=False):
    vals = [ratio(*c) for c in checks]
    ok = all(v[0] >= want for v in vals) and (not p99 or all(v[1] < v[2] for v in vals))
    if any(v[0] != v[0] for v in vals):  # NaN: a side could not run the test
        goals.append("| %s | >= %.1fx Redis%s | not measured: %s | MISS |"
                     % (metric, want, ", p99 lower" if p99 else "",
                        ", ".join("%s %s -P %s" % (c[2], c[0].split("/")[0], c[1])
                                  for c, v in zip(checks, vals) if v[0] != v[0])
                        + " failed (the command is missing from this build)"))
        return
    shown = ", ".join("%s %s -P %s: %.2fx" % (c[2], c[0].split("/")[0], c[1], v[0])
                      + (" (p99 %.2f vs %.2f ms)" % (v[1], v[2]) if p99 else "")
                      for c, v in zip(checks, vals))
    goals.append("| %s | >= %.1fx Redis%s | %s | %s |"
                 % (metric, want, ", p99 lower" if p99 else "", shown, "PASS" if ok else "MISS"))

goal("GET and SET, -P 16, process vs no persistence", 1.5,
     [("process/none", "16", "GET"), ("process/none", "16", "SET")])
goal("GET and SET, -P 1 (process vs no persistence)", 1.0,
     [("process/none", "1", "GET"), ("process/none", "1", "SET")])
goal("SET with power vs appendfsync always", 2.0,
     [("power/always", "1", "SET"), ("power/always", "16", "SET")], p99=True)
goal("INCR and MSET (10 keys), -P 16, process", 1.0,
     [("process/none", "16", "INCR"), ("process/none", "16", "MSET")])

with open(out + "/summary.md", "w") as f:
    f.write("Medians over %d rounds (p99: median of the rounds' p99).\n\n"
            % max(v[2] for v in med.values()))
    f.write("| metric | goal | measured (pkv / Redis) | |\n|---|---|---|---|\n")
    f.write("\n".join(goals) + "\n\n")
    f.write("\n".join(lines) + "\n")
    if failed:
        f.write("\nFailed (error replies; see the run's log): %s\n"
                % ", ".join("%s %s" % x for x in failed))
# the chart's data: the tests measured on both sides at least once
shown = [t for t in tests if any(tt == t for (_, _, tt, _) in dat)]
with open(out + "/ratio.dat", "w") as f:
    f.write("experiment\t%s\n" % "\t".join(shown))
    for pair in pairs:
        for P in ("1", "16"):
            vals = {t: r for (pp, q, t, r) in dat if pp == pair and q == P}
            if vals:
                f.write("%s, -P %s\t%s\n" % (pair.replace("/", " vs "), P,
                                           "\t".join("%.3f" % vals.get(t, float("nan"))
                                                     for t in shown)))
print(open(out + "/summary.md").read())
EOF

ncol=$(head -n 1 "$OUT/ratio.dat" | awk -F'\t' '{ print NF }')
plot="'$OUT/ratio.dat' using 2:xtic(1) title columnheader(2)"
for ((i = 3; i <= ncol; i++)); do
	plot="$plot, '' using $i title columnheader($i)"
done
if [ "$ncol" -lt 2 ]; then
	echo "server.sh: nothing measured on both sides, no chart" >&2
elif command -v gnuplot >/dev/null 2>&1; then
	for term in svg png; do
		if [ $term = svg ]; then
			setterm="set terminal svg size 1000,520 dynamic background rgb 'white' font 'Sans,11'"
		else
			setterm="set terminal pngcairo size 1000,520 font 'Sans,10'"
		fi
		gnuplot <<GP || echo "server.sh: gnuplot failed (results are intact)" >&2
$setterm
set output '$OUT/server-ratio.$term'
set title 'pkv-server / redis-server, requests/s (redis-benchmark -c 50 -d 100, median of $ROUNDS)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set ylabel 'pkv / Redis (higher is better; 1 = same)'
set yrange [0:*]
set grid ytics
set key top left
set xtics rotate by -20 font ',9'
set datafile separator '\t'
plot $plot, 1 with lines lc rgb 'black' dt 2 notitle
GP
	done
fi
if [ "$(dirname "$OUT")" = bench-results ]; then
	ln -sfn "$(basename "$OUT")" bench-results/latest-server
fi
echo "results: $OUT (summary.md, results.csv, server-ratio.svg)"
