#!/bin/sh
# expect_tsan_report.sh PROGRAM [ARGS...] - the TSan negative control.
#
# Runs PROGRAM (a stress driver linked against a library built to skip an RCU grace period) and
# succeeds only if ThreadSanitizer reported the bug that this causes: a heap-use-after-free, or a
# data race in which one side is free(). Any other outcome fails: the program passing means TSan is
# blind to reclamation bugs (a shim, an annotation or a suppression hides them), and a report
# about something else means the control did not test what it claims to.
set -u
out=$(mktemp "${TMPDIR:-/tmp}/pkv-tsan-negative.XXXXXX") || exit 2
"$@" >"$out" 2>&1
rc=$?
tail -n 60 "$out"
echo "---- negative control: program exited with status $rc"
if ! grep -q 'WARNING: ThreadSanitizer:' "$out"; then
	echo "FAIL: ThreadSanitizer reported nothing, although the library frees retired records"
	echo "      without waiting for a grace period. The TSan build cannot see reclamation bugs."
	rm -f "$out"
	exit 1
fi
if grep -q 'WARNING: ThreadSanitizer: heap-use-after-free' "$out" ||
	grep -Eq '#[0-9]+ +(__interceptor_|__libc_)?free([^a-z_]|$)' "$out"; then
	echo "OK: ThreadSanitizer caught the skipped grace period (use after free / race with free)."
	rm -f "$out"
	exit 0
fi
echo "FAIL: ThreadSanitizer reported something, but not a use-after-free or a race with free():"
grep -A 12 'WARNING: ThreadSanitizer:' "$out" | head -n 40
rm -f "$out"
exit 1
