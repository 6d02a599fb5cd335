#!/bin/bash
# ctest windows_ps_syntax (label lint): every PowerShell script in windows/
# and .github/scripts/ through tree-sitter's PowerShell grammar
# (ps_syntax.cjs says what that does and does not check). The parser comes
# from npm at the versions pinned in tests/windows/package-lock.json,
# installed once into $TP_TOOLS_DIR/pslint-<lock hash> (default build/tools,
# gitignored).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools=${TP_TOOLS_DIR:-$root/build/tools}
mkdir -p "$tools"
exec 9>"$tools/.pslint.lock"
flock -w 600 9 || { echo "pslint: lock timeout" >&2; exit 1; }

if ! command -v npm >/dev/null 2>&1; then
	echo "pslint: installing nodejs and npm from Debian" >&2
	sudo_=""
	[ "$(id -u)" -eq 0 ] || sudo_=sudo
	DEBIAN_FRONTEND=noninteractive $sudo_ apt-get -o DPkg::Lock::Timeout=600 \
	    install -y -qq --no-install-recommends nodejs npm >&2
fi

lock_sum=$(sha256sum "$here/package-lock.json" | cut -c1-16)
dir=$tools/pslint-$lock_sum
if [ ! -f "$dir/.complete" ]; then
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$here/package.json" "$here/package-lock.json" "$dir/"
	# --ignore-scripts: only the grammar's wasm build is used, no native addon.
	(cd "$dir" && npm ci --silent --ignore-scripts --no-audit --no-fund \
	    --loglevel=error >&2)
	touch "$dir/.complete"
	for old in "$tools"/pslint-*; do
		[ "$old" = "$dir" ] || rm -rf "$old"
	done
fi
cd "$root"
exec node "$here/ps_syntax.cjs" "$dir/node_modules" windows/*.ps1 .github/scripts/*.ps1
