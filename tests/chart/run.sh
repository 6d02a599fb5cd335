#!/bin/bash
# ctest entry for the chart tests (label "chart"): fetches the pinned tools
# (tests/chart/tools.sh), then runs tests/chart/test_chart.py, whose last
# line is `N passed, N failed`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
eval "$("$here/tools.sh")"
export HELM NODE_TOOLS
exec /usr/bin/python3 -B "$here/test_chart.py"
