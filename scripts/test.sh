#!/usr/bin/env bash
# Set up a venv (scripts/setup.sh) and run the test suite: every tests/**/test_*_on_cpu.py.
# Extra arguments go to pytest (with CADFT_STACK=gpu-pins they are added to its list of tests below: a test path
# given there runs beside the list, not instead of it). A run that collects no test is a failure.
#   bash scripts/test.sh                        # the CPU lock (.venv): every test
#   CADFT_STACK=gpu-pins bash scripts/test.sh   # the GPU lock's versions (.venv-gpu-pins): the tests that do not
#                                               # need vLLM (-m "not vllm"; vLLM-marked tests: tests/conftest.py)
#                                               # and go through transformers, the one pin that differs (below)
set -uo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$REPO_ROOT/scripts/setup.sh" || exit 1
set +e  # setup.sh runs with -e; the exit status of pytest is handled below
cd "$REPO_ROOT"
if [ "${CADFT_STACK:-cpu}" = gpu-pins ]; then
  # The GPU lock differs from the CPU one in transformers only (5.9.0 against 5.19.0; torch is CPU torch here too):
  # this run keeps the tests that load, train, save, merge, generate with or tokenize through transformers, one of
  # each path. CI-time budget (docs/install.md): everything else (the losses' arithmetic, config checks that stop
  # before any worker, the reward pool, the watchdog, file locks, the benchmark readers, the study) does not depend
  # on the transformers version and runs in the main env only.
  python -m pytest -m "not vllm" \
    tests/data/test_arith_on_cpu.py \
    tests/data/test_data_verl_datasets_on_cpu.py \
    tests/eval \
    tests/install/test_gpu_lock_on_cpu.py \
    tests/install/test_check_on_cpu.py::test_check_command_prints_versions_device_engines_and_recipes \
    tests/launcher/test_lora_export_on_cpu.py \
    tests/launcher/test_lora_inputs_on_cpu.py \
    tests/launcher/test_start_model_inputs_on_cpu.py \
    tests/losses/test_lora_losses_on_cpu.py \
    tests/platform/test_plugin_on_cpu.py \
    tests/rewrite/test_rewrite_units_on_cpu.py \
    tests/trainer/test_layer_reuse_on_cpu.py \
    tests/trainer/test_response_nll_on_cpu.py \
    tests/trainer/test_sft_stage_on_cpu.py::test_dft_and_cadft_train_and_export_a_loadable_hf_model \
    "$@"
else
  python -m pytest "$@"
fi
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$rc"
