#!/usr/bin/env bash
# Regenerate requirements/gpu.txt: the full lock of `pip install ".[gpu,test]"` for Linux x86_64, CPython 3.11.
# Runs pip's own resolver in dry-run/report mode for the manylinux platforms (no GPU and no install needed; a few
# minutes, mostly fetching the wheels' metadata), then writes the pins and checks them (requirements/check_gpu_lock.py).
# Usage: bash requirements/lock_gpu.sh [REPORT.json]     (the resolver's report is kept when a path is given)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
PYTHON="${PYTHON:-python3.11}"
PIP_VERSION=26.3  # the resolver that made the committed lock
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
REPORT="${1:-$WORK/report.json}"
# no machine-local pip config (local wheel folders, constraints): the public index only
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_CONSTRAINT PIP_EXTRA_INDEX_URL PIP_INDEX_URL
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "pip==$PIP_VERSION" packaging
# antlr4-python3-runtime 4.9.3 (the only series hydra-core 1.3 accepts) is a source distribution only: with
# --only-binary=:all: the resolver would skip it, take antlr4 4.13 and backtrack hydra-core to 0.11. Build its
# pure-Python wheel here and offer it to the resolver.
"$WORK/venv/bin/python" -m pip wheel -q --no-deps -w "$WORK/wheels" antlr4-python3-runtime==4.9.3
# the NVIDIA wheels are tagged with several glibc levels: offer pip every manylinux tag of x86_64
PLATFORMS=(--platform manylinux2014_x86_64)
for n in $(seq 5 39); do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
"$WORK/venv/bin/python" -m pip install --dry-run --ignore-installed --quiet --report "$REPORT" \
  --target "$WORK/target" --only-binary=:all: --find-links "$WORK/wheels" \
  --python-version 3.11 --implementation cp "${PLATFORMS[@]}" ".[gpu,test]"
"$WORK/venv/bin/python" requirements/check_gpu_lock.py --from-report "$REPORT" --write requirements/gpu.txt
