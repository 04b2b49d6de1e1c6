#!/usr/bin/env bash
# tools/test.sh - the one test command: builds and tests every variant, then the installed package.
#
#   release  gcc, -DPKV_WERROR=ON -DPKV_REQUIRE_EXAMPLES=ON (an example whose packages are
#            missing fails the configure); ctest: tests/, short stress/, examples/; then
#            tools/check_layers.sh on its objects (the layer order of src/, counted as one check)
#   asan     clang, AddressSanitizer + UndefinedBehaviorSanitizer (Debug: asserts on); ctest: all
#   tsan     clang, ThreadSanitizer; ctest -L tsan: the stress drivers and the negative control
#            (Criterion does not start under TSan, so tests/ is not run here)
#   install  cmake --install into a temporary prefix; examples/contract.c built against it with
#            pkg-config (shared and static) and with find_package(pkv), and run; the pkv tool
#            and its man page are there and the tool runs
#
# Build trees: ./build/<variant> (the CMakePresets.json presets of the same names). Installs
# missing Debian packages first (tools/deps.sh; PKV_NO_APT=1 skips that).
#
# Usage: bash tools/test.sh [--only release,asan,tsan,install,fuzz] [--jobs N]
#        (default: all of them; fuzz runs each libFuzzer target for PKV_FUZZ_SECONDS, 30)
# Prints a summary and a closing line "N passed, M failed"; exits non-zero if anything failed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
JOBS=${PKV_JOBS:-2}
ONLY="release,asan,tsan,fuzz,install"

while [ $# -gt 0 ]; do
	case "$1" in
	--only) ONLY=$2; shift 2 ;;
	--jobs) JOBS=$2; shift 2 ;;
	-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
	*) echo "test.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

# shellcheck source=deps.sh
source tools/deps.sh
pkv_install_deps || exit 2

mkdir -p build/logs
TOTAL_PASS=0
TOTAL_FAIL=0
SUMMARY=()
BUILD_FAILED=()
T_ALL=$SECONDS

want() { [[ ",$ONLY," == *",$1,"* ]]; }

say() { printf '\n==== %s\n' "$*"; }

# run_logged LOG CMD...: run CMD with its output in LOG; on failure show the end of it.
run_logged() {
	local log=$1
	shift
	if "$@" >"$log" 2>&1; then
		return 0
	fi
	echo "---- failed: $* (last 100 lines of $log)"
	tail -n 100 "$log"
	return 1
}

# run_progress LOG WHAT CMD...: as run_logged, and while CMD runs print a progress line every
# PKV_PROGRESS_SECONDS (15): what it is doing, the build's last "[ NN%] ..." line, the time so
# far. A build takes minutes on two cores; silence would look like a hang.
run_progress() {
	local log=$1 what=$2 pid t0=$SECONDS last rc
	shift 2
	echo "-- $what: $* (log: $log)"
	"$@" >"$log" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		for _ in $(seq 1 "${PKV_PROGRESS_SECONDS:-15}"); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		if kill -0 "$pid" 2>/dev/null; then
			last=$(grep -E '^\[ *[0-9]+%\]' "$log" | tail -n 1 | cut -c1-90)
			echo "   ... $what, $((SECONDS - t0)) s: ${last:-$(tail -n 1 "$log" | cut -c1-90)}"
		fi
	done
	wait "$pid"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "   $what: done in $((SECONDS - t0)) s"
		return 0
	fi
	echo "---- failed: $* (last 100 lines of $log)"
	tail -n 100 "$log"
	return 1
}

# run_ctest VARIANT CTEST-ARGS...: run ctest, add its counts to the totals.
# Sets CT_PASS / CT_FAIL.
run_ctest() {
	local variant=$1 log="build/logs/$1-ctest.log" line total failed
	shift
	ctest --test-dir "build/$variant" --output-on-failure -j"$JOBS" --timeout 900 "$@" 2>&1 |
		tee "$log"
	line=$(grep -E '[0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		echo "---- $variant: ctest ran no test or printed no result"
		CT_PASS=0
		CT_FAIL=1
		CT_FAILED_NAMES="(no test ran)"
		return
	fi
	failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
	total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
	CT_PASS=$((total - failed))
	CT_FAIL=$failed
	# names of the failed tests, for the summary
	CT_FAILED_NAMES=$(sed -n '/The following tests FAILED:/,$p' "$log" |
		sed -nE 's/^[[:space:]]*[0-9]+ - ([^ ]+) .*/\1/p' | tr '\n' ' ')
	if [ "$total" -eq 0 ]; then
		CT_FAIL=1
	fi
}

# variant NAME CTEST-ARGS... -- CMAKE-ARGS...: configure with the preset NAME (+ args), build, test.
variant() {
	local name=$1 t0=$SECONDS ctest_args=() cmake_args=() secs
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		ctest_args+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	cmake_args=("$@")
	say "$name: configure and build (build/$name)"
	if ! run_progress "build/logs/$name-configure.log" "$name: configure" \
		cmake --preset "$name" "${cmake_args[@]}" ||
		! run_progress "build/logs/$name-build.log" "$name: build" \
			cmake --build "build/$name" -j"$JOBS"; then
		BUILD_FAILED+=("$name")
		secs=$((SECONDS - t0))
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
		SUMMARY+=("$(printf '%-8s BUILD FAILED (see build/logs/%s-*.log)  %4ss' "$name" "$name" "$secs")")
		return
	fi
	say "$name: ctest ${ctest_args[*]} (each test's result as it ends)"
	run_ctest "$name" "${ctest_args[@]}"
	secs=$((SECONDS - t0))
	TOTAL_PASS=$((TOTAL_PASS + CT_PASS))
	TOTAL_FAIL=$((TOTAL_FAIL + CT_FAIL))
	SUMMARY+=("$(printf '%-8s ctest: %3d passed, %3d failed          %4ss  %s' "$name" "$CT_PASS" "$CT_FAIL" "$secs" "${CT_FAILED_NAMES:+failed: $CT_FAILED_NAMES}")")
}

# ---- (a) release: gcc, warnings are errors -------------------------------------------------
if want release; then
	variant release -- -DPKV_WERROR=ON -DPKV_REQUIRE_EXAMPLES=ON
	# The layer order of src/ (tools/layers.txt), from the release objects and the includes.
	if [[ " ${BUILD_FAILED[*]} " != *" release "* ]]; then
		say "layers: bash tools/check_layers.sh (build/release)"
		if bash tools/check_layers.sh --objdir build/release/CMakeFiles/pkv_objects.dir; then
			TOTAL_PASS=$((TOTAL_PASS + 1))
			SUMMARY+=("$(printf '%-8s check_layers: passed' layers)")
		else
			TOTAL_FAIL=$((TOTAL_FAIL + 1))
			SUMMARY+=("$(printf '%-8s check_layers: FAILED (an upward edge or a cycle in src/)' layers)")
		fi
	fi
fi

# ---- (b) asan: clang, address + undefined --------------------------------------------------
if want asan; then
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	variant asan
fi

# ---- (c) tsan: clang, thread; only what runs without Criterion (label tsan) ----------------
if want tsan; then
	variant tsan -L tsan
fi

# ---- fuzz: clang libFuzzer targets, a bounded run of each from its seed corpus --------------
# (PKV_FUZZ_SECONDS per target, 30 by default; long campaigns: see fuzz/CMakeLists.txt)
if want fuzz; then
	variant fuzz -L fuzz -- -DPKV_BUILD_TESTS=OFF -DPKV_FUZZ_SECONDS="${PKV_FUZZ_SECONDS:-30}"
fi

# ---- (d) install: pkg-config (shared, static) and find_package -----------------------------
install_checks() {
	local t0=$SECONDS pass=0 fail=0 fail_names="" tmp prefix pcdir libdir cc log=build/logs/install.log
	local src="$ROOT/examples/contract.c"

	check() { # check NAME CMD...: one install check, counted
		local what=$1
		shift
		echo "-- $what"
		if run_logged "$log" "$@"; then
			echo "   ok"
			pass=$((pass + 1))
		else
			echo "   FAILED: $what"
			fail=$((fail + 1))
			fail_names+="[$what] "
		fi
	}

	say "install: cmake --install, then build examples/contract.c against the installed pkv"
	# Never install a stale tree: build/release must build now.
	if [[ " ${BUILD_FAILED[*]} " == *" release "* ]] ||
		! run_progress build/logs/install-configure.log "install: configure" \
			cmake --preset release ||
		! run_progress build/logs/install-build.log "install: build" \
			cmake --build build/release -j"$JOBS"; then
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
		SUMMARY+=("$(printf '%-8s SKIPPED: build/release does not build          ' install)")
		return
	fi
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/pkv-install-check.XXXXXX")
	prefix="$tmp/prefix"
	cc=${CC:-cc}

	check "cmake --install build/release --prefix <tmp>" \
		cmake --install build/release --prefix "$prefix"
	pcdir=$(dirname "$(find "$prefix" -name pkv.pc -print -quit 2>/dev/null || true)")
	libdir=$(dirname "$(find "$prefix" -name 'libpkv.so' -print -quit 2>/dev/null || true)")
	export PKG_CONFIG_PATH="$pcdir"

	check "the pkv tool is installed and runs (pkv help, pkv put/get)" \
		bash -c "LD_LIBRARY_PATH='$libdir' '$prefix/bin/pkv' help >/dev/null &&
			LD_LIBRARY_PATH='$libdir' '$prefix/bin/pkv' put '$tmp/store' k v &&
			[ \"\$(LD_LIBRARY_PATH='$libdir' '$prefix/bin/pkv' get '$tmp/store' k)\" = v ]"
	check "the man page pkv.1 is installed" \
		bash -c "find '$prefix' -path '*man1/pkv.1' | grep -q ."
	check "pkg-config --cflags --libs pkv points into the prefix" \
		bash -c 'f=$(pkg-config --cflags --libs pkv) && echo "$f" && [[ "$f" == *"'"$prefix"'"* ]]'
	check "shared: cc contract.c \$(pkg-config --cflags --libs pkv), run" \
		bash -c "$cc -o '$tmp/contract_shared' '$src' \$(pkg-config --cflags --libs pkv) &&
			LD_LIBRARY_PATH='$libdir' '$tmp/contract_shared'"
	check "static: cc contract.c \$(pkg-config --static --cflags --libs pkv) with libpkv.a, run" \
		bash -c "$cc -o '$tmp/contract_static' '$src' \$(pkg-config --cflags pkv) \
			\$(pkg-config --static --libs pkv | sed -E 's/-lpkv( |\$)/-l:libpkv.a /') &&
			! ldd '$tmp/contract_static' | grep -q libpkv && '$tmp/contract_static'"

	mkdir -p "$tmp/consumer"
	cat >"$tmp/consumer/CMakeLists.txt" <<-CMAKE
		cmake_minimum_required(VERSION 3.25)
		project(pkv_consumer LANGUAGES C)
		find_package(pkv 0.1 REQUIRED)
		add_executable(contract_shared "$src")
		target_link_libraries(contract_shared PRIVATE pkv::pkv)
		add_executable(contract_static "$src")
		target_link_libraries(contract_static PRIVATE pkv::pkv_static)
	CMAKE
	check "find_package(pkv): configure and build a consumer project" \
		bash -c "cmake -S '$tmp/consumer' -B '$tmp/consumer/build' -DCMAKE_PREFIX_PATH='$prefix' &&
			cmake --build '$tmp/consumer/build'"
	check "find_package(pkv): run pkv::pkv consumer" "$tmp/consumer/build/contract_shared"
	check "find_package(pkv): run pkv::pkv_static consumer" "$tmp/consumer/build/contract_static"

	rm -rf "$tmp"
	TOTAL_PASS=$((TOTAL_PASS + pass))
	TOTAL_FAIL=$((TOTAL_FAIL + fail))
	SUMMARY+=("$(printf '%-8s checks: %2d passed, %3d failed         %4ss  %s' install "$pass" "$fail" $((SECONDS - t0)) "${fail_names:+failed: $fail_names}")")
}
if want install; then
	install_checks
fi

say "summary ($((SECONDS - T_ALL)) s in all)"
for s in "${SUMMARY[@]}"; do
	echo "  $s"
done
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ] && [ "$TOTAL_PASS" -gt 0 ]
