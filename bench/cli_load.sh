#!/usr/bin/env bash
# bench/cli_load.sh - the pkv tool's bulk paths on N keys (issue figures):
#   pkv load (atomic batches) against pkv load --per-key (one pkv_put per key, same parser),
#   pkv dump alone, and pkv dump A | pkv load B.
# Each timing is the best of 3 runs; the ratio is from the same run. The machine is shared:
# the `uptime` load is printed with the figures.
#
# usage: bash bench/cli_load.sh PATH-TO-pkv WORKDIR [N]   (WORKDIR is emptied; N 1000000)
set -euo pipefail
PKV=$1
W=$2
N=${3:-1000000}
rm -rf "$W"
mkdir -p "$W"

# N lines as pkv dump writes them: 16-byte keys, 100-byte values.
awk -v n="$N" 'BEGIN {
	v = sprintf("%0100d", 0); gsub(/0/, "v", v)
	for (i = 0; i < n; i++) printf "{\"key\": \"key%013d\", \"value\": \"%s\"}\n", i, v
}' >"$W/in.jsonl"

best() { # best NAME CMD...: best wall time of 3 runs, in seconds (the store is removed before each)
	local name=$1 b=999999 t s e
	shift
	for _ in 1 2 3; do
		rm -rf "$W/s" "$W/copy"
		s=$(date +%s.%N)
		"$@"
		e=$(date +%s.%N)
		t=$(echo "$e - $s" | bc -l)
		if (($(echo "$t < $b" | bc -l))); then b=$t; fi
	done
	printf '%-34s %8.3f s  %6.2f Mkeys/s\n' "$name" "$b" "$(echo "$N / $b / 1000000" | bc -l)" >&2
	echo "$b"
}

echo "keys $N, key 16 B, value 100 B; $(uptime | sed 's/.*load/load/')" >&2
t_batch=$(best "pkv load (batches of 1000)" sh -c "'$PKV' load '$W/s' < '$W/in.jsonl'")
t_key=$(best "pkv load --per-key (pkv_put each)" sh -c "'$PKV' load --per-key '$W/s' < '$W/in.jsonl'")
"$PKV" load "$W/src" <"$W/in.jsonl"
t_dump=$(best "pkv dump" sh -c "'$PKV' dump '$W/src' > '$W/out.jsonl'")
t_pipe=$(best "pkv dump A | pkv load B" sh -c "'$PKV' dump '$W/src' | '$PKV' load '$W/copy'")
cmp -s <(sort "$W/in.jsonl") <(sort "$W/out.jsonl") && echo "dump output equals the input" >&2
printf 'load: batches are %.2fx the speed of one pkv_put per key\n' \
	"$(echo "$t_key / $t_batch" | bc -l)" >&2
