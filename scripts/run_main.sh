#!/usr/bin/env bash
# Set up ./.venv and run the main job on its embedded CPU default (see README). Extra arguments are passed on.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$REPO_ROOT/scripts/setup.sh"
cd "$REPO_ROOT"
python -m cadft_verl.demo.cpu_default "$@"
