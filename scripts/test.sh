#!/usr/bin/env bash
# Set up ./.venv (scripts/setup.sh) and run the test suite: every tests/**/test_*_on_cpu.py.
# Extra arguments go to pytest. A run that collects no test is a failure.
set -uo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$REPO_ROOT/scripts/setup.sh" || exit 1
cd "$REPO_ROOT"
python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$rc"
