#!/usr/bin/env bash
# bench/plot.sh RESULTS_DIR - draw SVG and PNG charts from RESULTS_DIR/results.csv with gnuplot.
#
# One chart per group and figure: clustered bars, experiments along x, one bar per system
# (median over rounds). Charts whose values span more than two decades use a log scale.
# Beside them, a latency CDF per fixed-schedule experiment (see the end).
# Output: RESULTS_DIR/charts/<group>-<metric>.{svg,png}, <group>-<experiment>-cdf.{svg,png}
set -euo pipefail
DIR=${1:?usage: plot.sh RESULTS_DIR}
CSV="$DIR/results.csv"
[ -f "$CSV" ] || { echo "plot.sh: no $CSV" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not installed" >&2; exit 1; }
OUT="$DIR/charts"
mkdir -p "$OUT"

# metric  title  y-label
CHARTS="Mops|throughput|Mops/s (higher is better)
read_Mops|reads next to one writer|reader Mops/s (higher is better)
p999_ns|p99.9 latency, fixed schedule|ns (lower is better)
p99_ns|p99 latency, fixed schedule|ns (lower is better)
commits_per_s|durable writes|commits/s (higher is better)
open_ms|restart|open time, ms (lower is better)
rss_B_per_key|resident memory per key|bytes/key (lower is better)
dev_update_x|device bytes per user byte (updates)|x (lower is better)
update_x|dirtied bytes per user byte (updates)|x (lower is better)"

groups=$(awk -F, 'NR > 1 { print $1 }' "$CSV" | awk '!seen[$0]++')
n=0
for g in $groups; do
	while IFS='|' read -r metric title ylabel; do
		dat="$OUT/$g-$metric.dat"
		# Matrix: one row per experiment, one column per system, in first-seen order.
		awk -F, -v g="$g" -v m="$metric" '
			NR > 1 && $1 == g && $4 == m {
				if (!(($3) in ei)) { ei[$3] = ++ne; en[ne] = $3 }
				if (!(($2) in si)) { si[$2] = ++ns; sn[ns] = $2 }
				v[ei[$3], si[$2]] = $6
			}
			END {
				if (ne == 0) exit 1
				printf "experiment"
				for (s = 1; s <= ns; s++) printf "\t%s", sn[s]
				printf "\n"
				for (e = 1; e <= ne; e++) {
					printf "%s", en[e]
					for (s = 1; s <= ns; s++) printf "\t%s", ((e, s) in v) ? v[e, s] : "NaN"
					printf "\n"
				}
			}' "$CSV" > "$dat" || { rm -f "$dat"; continue; }
		ncol=$(head -1 "$dat" | awk -F'\t' '{ print NF }')
		logscale=$(awk -F'\t' 'NR > 1 { for (i = 2; i <= NF; i++) if ($i != "NaN" && $i > 0) {
			if (min == "" || $i < min) min = $i; if ($i > max) max = $i } }
			END { print (min > 0 && max / min > 100) ? 1 : 0 }' "$dat")
		for term in svg png; do
			if [ $term = svg ]; then
				setterm="set terminal svg size 1000,520 dynamic background rgb 'white' font 'Sans,11'"
			else
				setterm="set terminal pngcairo size 1000,520 font 'Sans,10'"
			fi
			gnuplot <<GP 2>/dev/null || gnuplot <<GP2
$setterm
set output '$OUT/$g-$metric.$term'
set title "$g: $title" noenhanced
set ylabel "$ylabel" noenhanced
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top noenhanced
set xtics rotate by -30 noenhanced
set grid ytics
$( [ "$logscale" = 1 ] && echo "set logscale y" || echo "set yrange [0:*]" )
plot for [i=2:$ncol] '$dat' using i:xtic(1) title columnheader(i)
GP
set terminal $term
set output '$OUT/$g-$metric.$term'
set title "$g: $title" noenhanced
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key outside right top noenhanced
$( [ "$logscale" = 1 ] && echo "set logscale y" || echo "set yrange [0:*]" )
plot for [i=2:$ncol] '$dat' using i:xtic(1) title columnheader(i)
GP2
		done
		n=$((n + 1))
	done <<< "$CHARTS"
done
# Latency CDFs: one chart per group and fixed-schedule experiment, one line per system, from
# the cdf_<percentile>_ns metrics. x: latency (log); y: percentile on a "nines" scale
# (-log10(1 - p)), so that the tail from p99 to p99.99 gets as much room as p0..p90.
for g in $groups; do
	exps=$(awk -F, -v g="$g" 'NR > 1 && $1 == g && $4 ~ /^cdf_/ { print $3 }' "$CSV" |
		awk '!seen[$0]++')
	for e in $exps; do
		dat="$OUT/$g-$e-cdf.dat"
		awk -F, -v g="$g" -v e="$e" '
			NR > 1 && $1 == g && $3 == e && $4 ~ /^cdf_/ {
				p = $4; sub(/^cdf_/, "", p); sub(/_ns$/, "", p)
				if (!(($2) in si)) { si[$2] = ++ns; sn[ns] = $2 }
				if (!(p in pi)) { pi[p] = ++np; pn[np] = p }
				v[pi[p], si[$2]] = $6
			}
			END {
				if (np == 0) exit 1
				printf "nines"
				for (s = 1; s <= ns; s++) printf "\t%s", sn[s]
				printf "\n"
				for (i = 1; i <= np; i++) {
					q = pn[i] + 0; if (q >= 100) q = 99.9999
					printf "%.6f", -log(1 - q / 100) / log(10)
					for (s = 1; s <= ns; s++) {
						x = "NaN"
						if (((i, s) in v) && v[i, s] + 0 > 0)
							x = v[i, s]
						printf "\t%s", x
					}
					printf "\n"
				}
			}' "$CSV" | sort -g > "$dat" || { rm -f "$dat"; continue; }
		[ -s "$dat" ] || { rm -f "$dat"; continue; }
		ncol=$(head -1 "$dat" | awk -F'\t' '{ print NF }')
		for term in svg png; do
			if [ $term = svg ]; then
				setterm="set terminal svg size 1000,520 dynamic background rgb 'white' font 'Sans,11'"
			else
				setterm="set terminal pngcairo size 1000,520 font 'Sans,10'"
			fi
			gnuplot <<GP 2>/dev/null || echo "plot.sh: CDF chart $g-$e failed" >&2
$setterm
set output '$OUT/$g-$e-cdf.$term'
set title "$g: $e latency CDF (fixed schedule)" noenhanced
set xlabel "latency, ns (log scale)"
set ylabel "percentile"
set datafile separator "\t"
set datafile missing "NaN"
set logscale x
set key outside right top noenhanced
set grid xtics ytics
set ytics ("0" 0, "90" 1, "99" 2, "99.9" 3, "99.99" 4, "99.999" 5)
set yrange [0:5.2]
plot for [i=2:$ncol] '$dat' using i:1 with linespoints title columnheader(i)
GP
		done
		n=$((n + 1))
	done
done
echo "plot.sh: $n charts in $OUT (svg and png)"
