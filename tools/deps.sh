# shellcheck shell=bash
# tools/deps.sh - the Debian 12 packages pkv needs to build and run all its tests.
#
# Sourced by tools/test.sh, tools/demo.sh and .ci/run; the one list to extend when a part of the
# project needs another package. pkv_install_deps installs what is missing (apt-get, as root) and
# does nothing when everything is there already. PKV_NO_APT=1 skips it.

PKV_DEPS=(
	cmake pkg-config build-essential            # toolchain (gcc)
	clang libclang-rt-14-dev                    # clang and its sanitizer/libFuzzer runtimes
	liburcu-dev libck-dev                       # the library's dependencies
	libcriterion-dev                            # tests/
	libjansson-dev                              # cli/: the pkv tool's JSON Lines and --json
	protobuf-c-compiler libprotobuf-c-dev       # examples/telemetry_proto: typed values
	e2fsprogs                                   # stress/shutdown: mkfs.ext4 (not Essential)
	python3-redis redis-tools                   # server/tests: python3-redis, redis-cli
	redis-server nutcracker                     # the reference peer; examples/twemproxy
)

# Print the packages of PKV_DEPS that are not installed, one per line.
pkv_missing_deps() {
	local p
	for p in "${PKV_DEPS[@]}"; do
		if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			echo "$p"
		fi
	done
}

pkv_install_deps() {
	local missing
	if [ "${PKV_NO_APT:-0}" = 1 ]; then
		return 0
	fi
	if ! command -v dpkg-query >/dev/null 2>&1; then
		echo "deps: not a Debian system; install the equivalents of: ${PKV_DEPS[*]}" >&2
		return 0
	fi
	missing=$(pkv_missing_deps | tr '\n' ' ')
	if [ -z "${missing// /}" ]; then
		return 0
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing packages: $missing" >&2
		echo "deps: run as root, or: sudo apt-get install -y --no-install-recommends $missing" >&2
		return 1
	fi
	echo "deps: installing $missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${PKV_DEPS[@]}"
}
