"""The eval stage of the one launch: its input checks (before any worker starts) and, on a run folder with a base
model, a stage-1 export and a stage-2 FSDP checkpoint, the per-model evaluations, the cold-start report and the
resume rule (a model is evaluated again only when its weights or the settings changed)."""

import json
import os
import shutil

import pytest
from hydra import compose, initialize_config_module

from cadft_verl.launch.evaluate import run_eval_stage
from cadft_verl.launch.run_dir import RunDir
from cadft_verl.launch.stages import check_inputs


def _config(model, *overrides, recipe="cadft_then_grpo"):
    data = os.path.join(model, "config.json")  # the input checks only look for the files
    with initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
        return compose("main", overrides=[f"recipe={recipe}", f"actor_rollout_ref.model.path={model}",
                                          f"cadft.data.train_files={data}", f"data.train_files={data}",
                                          f"data.val_files={data}", *overrides])


def _refused(model, *overrides, recipe="cadft_then_grpo"):
    with pytest.raises(ValueError) as err:
        check_inputs(_config(model, *overrides, recipe=recipe))
    return str(err.value)


def test_bad_eval_inputs_are_refused_listing_what_exists(small_model, tmp_path):
    msg = _refused(small_model, "eval.benchmarks=[gsm8k,gsm9k]")
    assert msg.startswith("eval.benchmarks: unknown benchmark 'gsm9k'") and "math500 (MATH-500)" in msg
    assert "presets: paper=" in msg
    msg = _refused(small_model, "eval.benchmarks=[]")
    assert "eval.benchmarks: the eval stage has no benchmark. Available: " in msg and "aime24" in msg
    missing = tmp_path / "nope.jsonl"
    assert f"no file at '{missing}'" in _refused(small_model, f"eval.benchmarks=['mine={missing}']")
    # a registered benchmark whose file is not in the benchmark folder
    msg = _refused(small_model, f"eval.benchmarks_dir={tmp_path}", "eval.benchmarks=[aime24]")
    assert f"benchmark file for 'aime24' not found: {tmp_path}" in msg and "eval.benchmarks_dir" in msg
    assert "unknown benchmark 'aime2024x'" in _refused(small_model, "eval.optional_benchmarks=[aime2024x]")
    assert "eval.models" in _refused(small_model, "eval.models=[base,stage3]")
    assert "in that order" in _refused(small_model, "stages=[eval,rl]")
    # sampling: the option is named (the readiness samples are drawn at the RL rollout's temperature)
    for override, message in (("eval.k=0", "eval.k must be an int >= 1, got 0"),
                              ("eval.readiness_k=0", "eval.readiness_k must be an int >= 1, got 0"),
                              ("eval.temperature=-1", "eval.temperature must be >= 0, got -1"),
                              ("eval.readiness_temperature=-0.5", "eval.readiness_temperature must be >= 0"),
                              ("actor_rollout_ref.rollout.temperature=-1",
                               "actor_rollout_ref.rollout.temperature must be >= 0"),
                              ("eval.metric=pass@32", "eval.metric (eval.k): pass@32 needs at least 32 samples per "
                                                      "problem, but k is 16")):
        assert message in _refused(small_model, "eval.benchmarks=[gsm8k]", override), override
    assert "k is 1" in _refused(small_model, "eval.benchmarks=[gsm8k]", "eval.greedy=true", "eval.metric=pass@2")
    assert "eval.readiness_benchmarks: ['math500'] not among the evaluated benchmarks ['gsm8k']" in _refused(
        small_model, "eval.benchmarks=[gsm8k]", "eval.readiness_benchmarks=[math500]")
    # fine: a missing optional file (skipped when the stage runs), a recipe without the eval stage
    check_inputs(_config(small_model, f"eval.optional_benchmarks=['mine={missing}']", "eval.benchmarks=[gsm8k]"))
    check_inputs(_config(small_model, "eval.benchmarks=[]", recipe="cadft"))


def _run_folder(tmp_path, small_model, fsdp_checkpoint):
    """A run folder as the launch leaves it: stage 1's COMPLETE.json naming its HF export, stage 2's checkpoint
    (FSDP shards only: saved without hf_model)."""
    run = tmp_path / "run"
    export = run / "stage1_cadft" / "global_step_2" / "huggingface"
    shutil.copytree(small_model, export)
    (run / "stage1_cadft" / "COMPLETE.json").write_text(json.dumps(
        {"stage": "cadft", "loss": "cadft", "steps": 2, "hf_model": str(export)}))
    shutil.copytree(fsdp_checkpoint, run / "stage2_rl" / "global_step_1",
                    ignore=shutil.ignore_patterns("huggingface_*"))
    (run / "stage2_rl" / "latest_checkpointed_iteration.txt").write_text("1")
    return run, export


def test_eval_stage_reports_base_warm_start_and_rl_and_resumes(tmp_path, small_model, fsdp_checkpoint, two_problems):
    run, export = _run_folder(tmp_path, small_model, fsdp_checkpoint)
    missing = tmp_path / "absent.jsonl"
    config = _config(small_model, f"eval.benchmarks=['two={two_problems}']",
                     f"eval.optional_benchmarks=['gone={missing}']", "eval.k=2", "eval.max_new_tokens=4",
                     "eval.template=chat", "eval.score_workers=0", "eval.batch_size=2", "eval.readiness_k=3",
                     "actor_rollout_ref.rollout.temperature=0.7", "eval.readiness_benchmarks=[two]")
    # the training stages' metric history, as the launch passes it (summary.json's results): read into the report
    history = tmp_path / "stage1.jsonl"
    history.write_text("".join(json.dumps({"step": s, "data": {"stage1/train/loss": 1.0 / s}}) + "\n" for s in (1, 2)))
    from cadft_verl.launch.progress import STAGE1_KEYS, history_summary

    results = {"stage1": {"stage": "cadft", "loss": "cadft", "steps": 2, "hf_model": str(export),
                          "history": history_summary(str(history), STAGE1_KEYS)}}
    result = run_eval_stage(config, RunDir(run), results)
    assert set(result["models"]) == {"base", "stage1", "stage2"}
    assert result["models"]["base"]["model"] == small_model and result["models"]["stage1"]["model"] == str(export)
    stage2 = result["models"]["stage2"]
    assert stage2["source"] == str(run / "stage2_rl" / "global_step_1")
    assert stage2["model"].endswith("global_step_1/actor/huggingface_merged")  # merged by verl's model merger
    assert result["benchmarks"] == [f"two={two_problems}"]
    assert result["skipped_benchmarks"] == [f"optional benchmark gone={missing} skipped: benchmark file not found: "
                                            f"{missing}"]
    for label, rec in result["models"].items():
        assert rec["metrics"] == str(run / "eval" / label / "metrics.json") and os.path.isfile(rec["metrics"])
    paths = result["report"]
    assert [os.path.basename(paths[k]) for k in ("md", "png", "json")] == ["cold_start.md", "cold_start.png",
                                                                            "cold_start.json"]
    report = json.loads(open(paths["json"]).read())
    assert report["metric"] == "avg@2" and report["benchmarks"] == ["two"]
    for label in ("base", "stage1", "stage2"):
        scores = report["models"][label]
        assert 0.0 <= scores["values"]["two"] <= 1.0 and scores["average"] == scores["values"]["two"]
    assert report["models"]["stage2"]["gain_over_base"]["two"] == pytest.approx(
        report["models"]["stage2"]["values"]["two"] - report["models"]["base"]["values"]["two"])
    md = open(paths["md"]).read()
    for row in ("| base |", "| stage 1: cadft |", "| stage 2: cadft+grpo |", "Gain over the base model",
                "## Training (metric history)", "| stage 1 | loss | 1 (step 1) | 0.5 (step 2) |"):
        assert row in md
    assert report["training"]["stage1"]["steps"] == [1, 2]
    assert os.path.getsize(paths["png"]) > 1000
    # RL readiness: 3 samples per problem at the rollout's temperature, beside the report's score, for every model
    assert "## RL readiness (3 samples per problem at temperature 0.7, the RL rollout's)" in md
    assert "| avg@2 | avg@3 | pass@3 | headroom (pass@3 − avg@3) | entropy (nats/token) |" in md
    for label, rec in result["models"].items():
        ready = report["models"][label]["readiness"]
        assert rec["readiness_metrics"] == str(run / "eval" / f"{label}_readiness" / "metrics.json")
        assert ready["k"] == 3 and ready["temperature"] == 0.7
        r = ready["benchmarks"]["two"]
        assert 0.0 <= r["avg"]["mean"] <= r["pass"]["mean"] <= 1.0
        assert r["headroom"]["mean"] == pytest.approx(r["pass"]["mean"] - r["avg"]["mean"])
        assert r["entropy"]["mean"] > 0.0 and r["entropy"]["se"] >= 0.0  # a random model is far from peaked
        assert f"| {report['models'][label]['display']} | two |" in md

    # a rerun evaluates nothing again; new weights in stage 1's export: only stage 1 again
    stamps = {label: os.stat(rec["metrics"]).st_mtime_ns for label, rec in result["models"].items()}
    again = run_eval_stage(config, RunDir(run), {})
    assert all(rec["skipped"] for rec in again["models"].values())
    weights = export / "model.safetensors"
    os.utime(weights, ns=(stamps["base"] + 10**9, stamps["base"] + 10**9))
    third = run_eval_stage(config, RunDir(run), {})
    assert {label for label, rec in third["models"].items() if not rec["skipped"]} == {"stage1"}
    # other settings: everything again; eval.models narrows the set
    fourth = run_eval_stage(_config(small_model, f"eval.benchmarks=['two={two_problems}']", "eval.k=1",
                                    "eval.greedy=true", "eval.max_new_tokens=4", "eval.template=chat",
                                    "eval.score_workers=0", "eval.models=[base,stage2]"), RunDir(run), {})
    assert set(fourth["models"]) == {"base", "stage2"} and not any(r["skipped"] for r in fourth["models"].values())
    # the report's own samples are the readiness samples (k, temperature, top_p alike): no second run
    fifth = run_eval_stage(_config(small_model, f"eval.benchmarks=['two={two_problems}']", "eval.k=3",
                                   "eval.readiness_k=3", "eval.max_new_tokens=4", "eval.template=chat",
                                   "eval.score_workers=0", "eval.models=[base]"), RunDir(run), {})
    assert fifth["models"]["base"]["readiness_metrics"] == fifth["models"]["base"]["metrics"]


def test_the_fresh_process_path_of_the_vllm_backend_runs_one_models_eval(tmp_path, small_model, two_problems):
    """With vLLM each model is evaluated in a fresh process (GPU memory given back): the same run_eval, from the
    RunConfig as JSON (here with the hf backend, there is no GPU)."""
    from cadft_verl.launch.evaluate import _run_isolated, run_config

    ev = {"k": 1, "greedy": True, "max_new_tokens": 4, "template": "chat", "backend": "hf", "score_workers": 0}
    cfg = run_config(ev, small_model, str(tmp_path / "out"), [f"two={two_problems}"], "base", False)
    _run_isolated(cfg)
    settings = json.loads((tmp_path / "out" / "metrics.json").read_text())["settings"]
    assert settings["label"] == "base" and settings["k"] == 1 and settings["benchmarks"]["two"]["n_problems"] == 2
