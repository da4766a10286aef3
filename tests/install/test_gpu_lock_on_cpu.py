"""The GPU lock (requirements/gpu.txt) is verl's own vLLM stack plus this project's requirements, with no
downgrades; the second CPU test environment installs its CPU-installable part (requirements/check_gpu_lock.py)."""

from __future__ import annotations

import importlib.util
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_gpu_lock", ROOT / "requirements" / "check_gpu_lock.py")
lock_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock_tool)


@pytest.fixture(scope="module")
def lock():
    return lock_tool.read_lock(lock_tool.GPU_LOCK)


def test_the_lock_has_verls_vllm_extra_pins(lock):
    """The acceptance check: verl's installed metadata and the lock agree on vllm, torch and transformers."""
    pins = lock_tool.verl_extra_pins(metadata.requires("verl"))
    assert {"vllm", "torch", "transformers"} <= set(pins)
    assert {name: lock.get(name) for name in pins} == pins
    assert lock["verl"] == metadata.version("verl")


def test_the_lock_satisfies_this_project_and_has_no_downgrade(lock):
    assert lock_tool.check(lock, metadata.requires("verl"), lock_tool.read_lock(lock_tool.CPU_LOCK)) == []
    assert lock["hydra-core"].startswith("1.3.") and lock["antlr4-python3-runtime"].startswith("4.9.")


def test_drift_and_downgrades_are_reported(lock):
    cpu = lock_tool.read_lock(lock_tool.CPU_LOCK)
    requires = metadata.requires("verl")
    drifted = dict(lock, transformers="5.10.4")
    assert any(p.startswith("transformers: verl[vllm] pins 5.9.0") for p in lock_tool.check(drifted, requires, cpu))
    # the resolution without this project's requirements: antlr4 4.13 drags hydra-core and omegaconf back
    old_hydra = dict(lock, **{"hydra-core": "0.11.3", "omegaconf": "1.4.1", "antlr4-python3-runtime": "4.13.2"})
    problems = lock_tool.check(old_hydra, requires, cpu)
    assert any(p.startswith("hydra-core>=1.3: required by pyproject.toml, the GPU lock has 0.11.3") for p in problems)
    assert any(p.startswith("omegaconf: downgraded to 1.4.1") for p in problems)


def test_the_gpu_extra_is_verls_own_vllm_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["gpu"] == [f"verl[{lock_tool.VERL_EXTRA}]=={metadata.version('verl')}"]


def test_the_cpu_test_environment_gets_no_cuda_build_no_torch_and_no_vllm(lock):
    subset = lock_tool.cpu_subset(lock)
    assert subset["transformers"] == lock["transformers"] and subset["verl"] == lock["verl"]
    assert not {"torch", "vllm", "torchvision", "torchaudio"} & set(subset)
    assert not [n for n in subset if n.startswith(("nvidia-", "triton"))]
    assert len(subset) > 100  # the rest of the stack comes along
