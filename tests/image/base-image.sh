#!/bin/bash
# Makes the Debian base image the Dockerfile starts FROM available to podman
# without any registry: a debootstrap minbase rootfs, imported and tagged with
# the Docker Hub name (docker.io/library/debian:bookworm-slim), so the shipped
# Dockerfile builds unchanged with `podman build --pull=never`.
#
#   tests/image/base-image.sh amd64|arm64
#
# A multi-arch build (tests/image/test_multiarch.py) calls it once per
# architecture and builds that platform right after.
#
# The rootfs tarball is cached in $TP_SHIP_CACHE (default build/ship/cache);
# a present tarball is reused, so only the first run pays for debootstrap
# (about two minutes for amd64). Runs as root (debootstrap, podman storage).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${TP_SHIP_CACHE:-$root/build/ship/cache}
suite=bookworm
base_ref=docker.io/library/debian:bookworm-slim
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

[ $# -eq 1 ] || { echo "usage: $0 amd64|arm64" >&2; exit 2; }
mkdir -p "$cache"

# One writer at a time: ctest may start several image tests, and two
# debootstraps into the same cache would clobber each other.
exec 9>"$cache/.lock"
flock -w 1200 9 || { echo "base-image: lock timeout" >&2; exit 1; }

mirror() {
	local uri=""
	if [ -r /etc/apt/sources.list.d/debian.sources ]; then
		uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
	fi
	echo "${uri:-http://deb.debian.org/debian}"
}

# The host's security mirror (same file), for the image's apt sources.
security_mirror() {
	local uri=""
	if [ -r /etc/apt/sources.list.d/debian.sources ]; then
		uri=$(awk '/^URIs:/ && $2 ~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
	fi
	echo "${uri:-http://deb.debian.org/debian-security}"
}

# tarball ARCH -> path of the cached rootfs tarball, made on first use.
tarball() {
	local arch=$1 tar="$cache/debian-$suite-minbase-$1.tar" tmp
	if [ -s "$tar" ]; then
		echo "$tar"
		return
	fi
	tmp=$(mktemp -d "$cache/rootfs-$arch.XXXXXX")
	echo "base-image: debootstrap $suite $arch (cached afterwards in $tar)" >&2
	if ! debootstrap --arch="$arch" --variant=minbase "$suite" "$tmp" "$(mirror)" >"$tmp.log" 2>&1; then
		tail -20 "$tmp.log" >&2
		rm -rf "$tmp" "$tmp.log"
		exit 1
	fi
	# The official image's suites (updates and security included), from
	# the mirrors this machine uses.
	rm -f "$tmp/etc/apt/sources.list"
	cat >"$tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $(mirror)
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $(security_mirror)
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* "$tmp"/var/log/*.log
	tar -C "$tmp" -cf "$tar.part" .
	mv "$tar.part" "$tar"
	rm -rf "$tmp" "$tmp.log"
	echo "$tar"
}

# import ARCH -> local image localhost/tp-debian:bookworm-ARCH (once).
import() {
	local arch=$1 ref="localhost/tp-debian:$suite-$1"
	if ! podman image exists "$ref"; then
		tarball "$arch" >/dev/null
		podman import --quiet --arch "$arch" --change 'CMD ["/bin/bash"]' \
		    "$(tarball "$arch")" "$ref" >/dev/null
	fi
	echo "$ref"
}

# Point the Docker Hub name at the requested architecture's import. A plain
# tag, never a manifest list: podman 4.3 cannot resolve the instances of a
# local list made from imported images, and `podman images` then fails.
ref=$(import "$1")
podman tag "$ref" "$base_ref"
echo "base-image: $base_ref is $ref" >&2
