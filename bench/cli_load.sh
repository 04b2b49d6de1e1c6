#!/usr/bin/env bash
# bench/cli_load.sh - the pkv tool's bulk paths on N keys (issue figures):
#   pkv load (atomic batches, once pkv_write is in the library; one pkv_put per key before),
#   pkv load --per-key (one pkv_put per key, same parser), pkv dump, and pkv dump A | pkv load B.
# The machine is shared: ROUNDS rounds each time every variant once, interleaved, and each figure
# is the best of its rounds; the ratio is from the same run, and the `uptime` load is printed.
#
# usage: bash bench/cli_load.sh PATH-TO-pkv WORKDIR [N] [ROUNDS]   (WORKDIR is emptied)
set -euo pipefail
PKV=$1
W=$2
N=${3:-1000000}
ROUNDS=${4:-3}
rm -rf "$W"
mkdir -p "$W"

# N lines as pkv dump writes them: 16-byte keys, 100-byte values.
awk -v n="$N" 'BEGIN {
	v = sprintf("%0100d", 0); gsub(/0/, "v", v)
	for (i = 0; i < n; i++) printf "{\"key\": \"key%013d\", \"value\": \"%s\"}\n", i, v
}' >"$W/in.jsonl"
"$PKV" load "$W/src" <"$W/in.jsonl"

names=("pkv load" "pkv load --per-key" "pkv dump" "pkv dump A | pkv load B")
cmds=("'$PKV' load '$W/s' < '$W/in.jsonl'"
	"'$PKV' load --per-key '$W/s' < '$W/in.jsonl'"
	"'$PKV' dump '$W/src' > '$W/out.jsonl'"
	"'$PKV' dump '$W/src' | '$PKV' load '$W/s'")
best=(999999 999999 999999 999999)
echo "keys $N, key 16 B, value 100 B; $ROUNDS interleaved rounds; $(uptime | sed 's/.*load/load/')"
for _ in $(seq 1 "$ROUNDS"); do
	for i in 0 1 2 3; do
		rm -rf "$W/s"
		s=$(date +%s.%N)
		sh -c "${cmds[$i]}"
		e=$(date +%s.%N)
		t=$(echo "$e - $s" | bc -l)
		if (($(echo "$t < ${best[$i]}" | bc -l))); then best[$i]=$t; fi
	done
done
for i in 0 1 2 3; do
	printf '%-28s %8.3f s  %6.2f Mkeys/s\n' "${names[$i]}" "${best[$i]}" \
		"$(echo "$N / ${best[$i]} / 1000000" | bc -l)"
done
cmp -s <(sort "$W/in.jsonl") <(sort "$W/out.jsonl") && echo "the dump equals the input"
printf 'pkv load is %.2fx the speed of pkv load --per-key\n' \
	"$(echo "${best[1]} / ${best[0]}" | bc -l)"
echo "end: $(uptime | sed 's/.*load/load/')"
rm -rf "$W"
