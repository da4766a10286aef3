"""Fixtures of the eval tests: a tiny model, a real verl FSDP checkpoint of it, a two-problem benchmark file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    """A tiny random Qwen2 with a ChatML tokenizer (no benchmark folder needed)."""
    from cadft_verl.demo.tiny_model import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("small_model")), vocab_size=512, hidden_size=64, num_heads=2)


@pytest.fixture(scope="session")
def fsdp_checkpoint(tmp_path_factory, small_model):
    """``.../global_step_1`` of a verl FSDP checkpoint (2 gloo ranks, FSDP2, verl's FSDPCheckpointManager, no HF
    export) of ``small_model`` with perturbed weights; ``actor/reference.pt`` holds the full weights."""
    step = tmp_path_factory.mktemp("fsdp_ckpt") / "global_step_1"
    subprocess.run([sys.executable, os.path.join(HERE, "fsdp_checkpoint.py"), small_model, str(step / "actor"),
                    "--world-size", "2", "--perturb", "0.05"], check=True, capture_output=True, timeout=300)
    return str(step)


@pytest.fixture(scope="session")
def two_problems(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "two.jsonl"
    rows = [{"id": "a", "problem": "What is 1+1?", "answer": "2"},
            {"id": "b", "problem": "What is 2+3?", "answer": "5"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)
