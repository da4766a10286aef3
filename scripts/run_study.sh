#!/usr/bin/env bash
# Set up ./.venv and run the cold-start study on the embedded CPU default (docs/study.md). Extra arguments are passed
# on to python -m cadft_verl.study (--recipes, --seeds, --out, --stage1-steps, --rl-steps, key=value ...).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$REPO_ROOT/scripts/setup.sh"
cd "$REPO_ROOT"
python -m cadft_verl.study "$@"
