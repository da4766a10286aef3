"""`recipe=grpo` (stages [rl, eval]) on the CPU profile: stage 2 saves its final checkpoint with a loadable HF export
(verl's save_contents hf_model), the eval stage reports base and RL model, and a rerun redoes neither stage 2 nor
an evaluation."""

import json
import os

import pytest
from launch import launch

from cadft_verl.cpu_default import launch_overrides

pytestmark = pytest.mark.vllm  # stage 2 needs vLLM (tests/conftest.py skips it where vLLM is not installed)


def test_grpo_then_eval_exports_the_rl_model_and_resumes_without_redoing(tmp_path, default_inputs):
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    # verl's default save_freq (-1, no checkpoint at all) is what a user gets: the launch still saves the final one
    args = ["recipe=grpo", *launch_overrides(default_inputs["data"], default_inputs["model"], str(run), rl_steps=1),
            "trainer.save_freq=-1", "eval.limit=3", "eval.k=1", "eval.greedy=true", "eval.max_new_tokens=8",
            "eval.template=chat", "eval.benchmarks=[gsm8k]", "eval.score_workers=1"]
    proc = launch(args, timeout=600)
    summary = json.loads((run / "summary.json").read_text())
    s2 = summary["results"]["stage2"]
    assert s2["steps"] == 1 and s2["hf_model"] == str(run / "stage2_rl" / "global_step_1" / "actor" / "huggingface")
    AutoModelForCausalLM.from_pretrained(s2["hf_model"])  # weights, not only config and tokenizer
    ev = summary["results"]["eval"]
    assert set(ev["models"]) == {"base", "stage2"}  # no stage 1 in this recipe
    assert ev["models"]["stage2"]["model"] == s2["hf_model"]
    assert ev["models"]["base"]["model"] == default_inputs["model"]
    report = json.loads(open(ev["report"]["json"]).read())
    assert set(report["models"]) == {"base", "stage2"} and report["benchmarks"] == ["gsm8k"]
    assert all("gsm8k" in m["values"] for m in report["models"].values())
    out = proc.stdout
    # the console ends with the report: the table, then where the files are
    assert out.index("run finished") < out.index("| stage 2: grpo |") < out.index("[cadft-verl] cold-start report:")
    assert out.rstrip().endswith(f"({s2['hf_model']})")
    for key in ("md", "png", "json"):
        assert os.path.isfile(ev["report"][key]) and ev["report"][key] in out

    proc = launch(args, timeout=300)
    assert "stage 2 already complete" in proc.stdout and "Training Progress" not in proc.stderr
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr  # nothing left to run on workers
    again = json.loads((run / "summary.json").read_text())["results"]["eval"]
    assert all(m["skipped"] for m in again["models"].values())
