#!/bin/sh
# Installs the Debian 12 packages the project builds, tests and benchmarks
# with. Idempotent: packages already present are skipped, and apt is not
# touched at all when nothing is missing. Runs as root or through sudo.
#
#   cmake/install-deps.sh [build|test|bench|multiarch|windows|all]   (default: all)
set -eu

want=${1:-all}

build="build-essential cmake pkg-config git libcivetweb-dev libcjson-dev
libcurl4-openssl-dev libhiredis-dev"
test="libcmocka-dev valgrind clang libclang-rt-14-dev python3 python3-cryptography
python3-prometheus-client redis-server libnss-wrapper libpython3.11
python3.11-venv curl
python3-yaml yamllint shellcheck
podman buildah skopeo runc netavark iptables debootstrap docker-registry"
bench="wrk nginx-light redis-server"
# Windows cross-build of tokenplace-gpuhost and its wine smoke tests.
windows="gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 mingw-w64-x86-64-dev
wine wine64"
multiarch="qemu-user-static binfmt-support"

case "$want" in
build) pkgs="$build" ;;
test) pkgs="$build $test" ;;
bench) pkgs="$build $bench" ;;
multiarch) pkgs="$build $test $multiarch" ;;
windows) pkgs="$build $windows" ;;
all) pkgs="$build $test $bench $windows" ;;
*) echo "usage: $0 [build|test|bench|multiarch|windows|all]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
