"""The study's plan, folder rules and table, without launching anything (the launches: test_study_on_cpu.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cadft_verl.study.arms import resolve_arms, seed_overrides
from cadft_verl.study.plan import STUDY_FILE, StudyLock, check_folder, make_plan, merge_overrides, record_study
from cadft_verl.study.table import mean_se, write_table


def plan_for(out, recipes=("cadft_then_grpo", "cadft_no_rewrite", "grpo"), seeds=(0, 1), overrides=()):
    return make_plan(str(out), resolve_arms(recipes), list(seeds), list(overrides), embedded=True,
                     base=["profile=cpu", "trainer.total_training_steps=8", "cadft.rewrite.enabled=true"])


def test_runs_are_one_launch_per_recipe_and_seed_with_the_later_value_of_a_key_winning(tmp_path):
    plan = plan_for(tmp_path, overrides=["trainer.total_training_steps=2"])
    assert [(r.arm, r.seed) for r in plan.runs] == [
        ("cadft_then_grpo", 0), ("cadft_then_grpo", 1), ("cadft_no_rewrite", 0), ("cadft_no_rewrite", 1),
        ("grpo", 0), ("grpo", 1)]
    ablation = plan.runs[3].overrides
    assert ablation[0] == "recipe=cadft_then_grpo"
    assert "cadft.rewrite.enabled=false" in ablation and "cadft.rewrite.enabled=true" not in ablation
    assert "trainer.total_training_steps=2" in ablation and "trainer.total_training_steps=8" not in ablation
    assert all(s in ablation for s in seed_overrides(1))
    assert f"trainer.default_local_dir={tmp_path}/runs/cadft_no_rewrite/seed1" in ablation
    keys = [o.split("=", 1)[0] for o in ablation]
    assert len(keys) == len(set(keys)), "hydra refuses a key given twice"
    assert merge_overrides(["a=1", "b=1"], ["++a=2"]) == ["b=1", "++a=2"]


def test_seeds_change_the_orders_and_sampling_only():
    assert seed_overrides(0) != seed_overrides(1)
    keys = {o.split("=")[0] for o in seed_overrides(3)}
    assert keys == {"cadft.data.seed", "cadft.rewrite.seed", "data.seed", "actor_rollout_ref.rollout.seed"}


@pytest.mark.parametrize("recipes, seeds, message", [
    (["cadft_then_grpo", "nope"], [0], "unknown ['nope']; choose from ['sft_then_grpo', 'dft_then_grpo', "
                                       "'cadft_then_grpo', 'cadft_no_rewrite', 'grpo'"),
    ([], [0], "--recipes: empty"),
    (["grpo"], [], "--seeds: empty"),
    (["grpo", "grpo"], [0], "named twice"),
    (["grpo"], [1, 1], "given twice"),
])
def test_bad_recipes_and_seeds_are_refused_listing_what_exists(tmp_path, recipes, seeds, message):
    with pytest.raises(ValueError, match=None) as err:
        make_plan(str(tmp_path), resolve_arms(recipes), seeds, [], embedded=True)
    assert message in str(err.value)


def test_a_second_study_in_the_same_folder_is_refused(tmp_path):
    plan = plan_for(tmp_path / "s")
    check_folder(plan)
    record_study(plan)
    # the same study again (more seeds: it grows) is fine; other settings are refused, naming both
    check_folder(plan_for(tmp_path / "s", seeds=(0, 1, 2)))
    with pytest.raises(ValueError) as err:
        check_folder(plan_for(tmp_path / "s", overrides=["cadft.optim.lr=1e-3"]))
    assert "holds another study" in str(err.value) and "cadft.optim.lr=1e-3" in str(err.value)
    # a study that is still running holds the lock: a second one is refused while it lives
    with StudyLock(plan.out):
        with pytest.raises(ValueError, match="another study is writing into this folder"):
            check_folder(plan)
        with pytest.raises(ValueError, match="another study is writing"):
            StudyLock(plan.out).__enter__()
    check_folder(plan)  # released
    # a lock left by a dead process is stale
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with open(os.path.join(plan.out, "study.lock"), "w") as f:
        json.dump({"pid": int(dead.stdout), "host": os.uname().nodename, "since": "then"}, f)
    check_folder(plan)
    # a folder with other things in it and no study.json is not taken over
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no study.json"):
        check_folder(plan_for(tmp_path / "other"))


def test_the_cli_refuses_bad_input_before_starting_anything(tmp_path):
    def study(*args):
        return subprocess.run([sys.executable, "-m", "cadft_verl.study", "--out", str(tmp_path / "st"), *args],
                              capture_output=True, text=True, timeout=120)

    for args, message in ((["--recipes", "sft_then_grpo", "bogus"], "--recipes: unknown ['bogus']"),
                          (["--seeds"], "--seeds: empty"),
                          (["--own-config", "--rl-steps", "2"], "--rl-steps size the embedded default"),
                          (["trainer.default_local_dir=/x"], "the study sets trainer.default_local_dir")):
        proc = study(*args)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert not (tmp_path / "st").exists(), "a refused study leaves no folder"
    # what the launch itself checks, for each recipe by composing its config: before any worker starts
    proc = study("--own-config", "--recipes", "grpo", "profile=cpu", f"actor_rollout_ref.model.path={tmp_path}/nope")
    assert proc.returncode == 2
    assert f"recipe grpo: FileNotFoundError: actor_rollout_ref.model.path: no model at '{tmp_path}/nope'" in proc.stderr
    assert not (tmp_path / "st").exists()


def _fake_report(run_dir, base, stage1, stage2):
    os.makedirs(os.path.join(run_dir, "eval"), exist_ok=True)
    models = {"base": {"values": {"arith": base}, "average": base}}
    if stage1 is not None:
        models["stage1"] = {"values": {"arith": stage1}, "average": stage1}
    models["stage2"] = {"values": {"arith": stage2}, "average": stage2}
    with open(os.path.join(run_dir, "eval", "cold_start.json"), "w") as f:
        json.dump({"metric": "avg@1", "benchmarks": ["arith"], "display": {"arith": "Arith"}, "models": models}, f)


def test_the_table_is_mean_and_standard_error_over_seeds(tmp_path):
    plan = plan_for(tmp_path, recipes=("cadft_then_grpo", "grpo"), seeds=(0, 1, 2))
    scores = {("cadft_then_grpo", 0): (0.2, 0.3, 0.35), ("cadft_then_grpo", 1): (0.2, 0.4, 0.40),
              ("cadft_then_grpo", 2): (0.2, 0.5, 0.45), ("grpo", 0): (0.2, None, 0.2), ("grpo", 1): (0.2, None, 0.3)}
    for run in plan.runs:
        if (run.arm, run.seed) in scores:
            _fake_report(run.run_dir, *scores[(run.arm, run.seed)])
    table = write_table(plan)
    arms = table["data"]["arms"]
    cadft = arms["cadft_then_grpo"]
    assert cadft["before"]["average"]["mean"] == pytest.approx(0.4)
    assert cadft["before"]["average"]["se"] == pytest.approx(0.1 / 3 ** 0.5)  # std (n-1) 0.1 over sqrt(3)
    assert cadft["after"]["average"]["mean"] == pytest.approx(0.4)
    assert cadft["rl_gain"]["average"]["mean"] == pytest.approx(0.0)  # +0.05, 0, -0.05
    assert cadft["over_base"]["arith"]["mean"] == pytest.approx(0.2)
    grpo = arms["grpo"]  # no warm start: before RL is the base model
    assert grpo["seeds"] == [0, 1] and grpo["before"]["arith"]["mean"] == pytest.approx(0.2)
    assert grpo["rl_gain"]["arith"]["mean"] == pytest.approx(0.05)
    assert table["data"]["missing"] == [os.path.join(plan.out, "runs", "grpo", "seed2")]
    md = open(table["paths"]["md"]).read()
    assert "| cadft_then_grpo | 3 | 20.0 ± 0.0 | 40.0 ± 5.8 | **40.0 ± 2.9** | +0.0 ± 2.9 | +20.0 ± 2.9 |" in md
    assert "| grpo | 2 | 20.0 ± 0.0 | 20.0 ± 0.0 | **25.0 ± 5.0** | +5.0 ± 5.0 | +5.0 ± 5.0 |" in md
    assert "Not finished" in md and os.path.getsize(table["paths"]["png"]) > 5000
    # paired by seed against CADFT: the seeds both have (0 and 1), before RL 0.3 - 0.2 and 0.4 - 0.2
    paired = table["data"]["paired"]
    assert paired["reference"] == "cadft_then_grpo" and paired["against"]["grpo"]["seeds"] == [0, 1]
    assert paired["against"]["grpo"]["before"]["arith"]["mean"] == pytest.approx(0.15)
    assert paired["against"]["grpo"]["after"]["arith"]["mean"] == pytest.approx(0.125)  # 0.15 and 0.10
    assert "## cadft_then_grpo minus each other recipe, seed by seed (points)" in md
    assert "| grpo | 2 | +15.0 ± 5.0 | +15.0 ± 5.0 | +12.5 ± 2.5 | +12.5 ± 2.5 |" in md
    assert mean_se([0.5])["se"] is None and mean_se([])["mean"] is None


def _ready(avg, pas, entropy):
    stat = lambda v: {"mean": v, "se": 0.01}  # noqa: E731
    return {"k": 8, "temperature": 1.0, "average": {"avg": stat(avg), "pass": stat(pas), "headroom": stat(pas - avg),
                                                     "entropy": stat(entropy)}}


def test_the_table_shows_each_models_rl_readiness_over_seeds_and_reads_reports_without_it(tmp_path):
    plan = plan_for(tmp_path, recipes=("cadft_then_grpo", "grpo"), seeds=(0, 1))
    for run in plan.runs:
        _fake_report(run.run_dir, 0.2, 0.3 if run.arm == "cadft_then_grpo" else None, 0.35)
        if run.arm == "grpo":
            continue  # a report written before the readiness columns
        path = os.path.join(run.run_dir, "eval", "cold_start.json")
        report = json.load(open(path))
        for label, (avg, pas, ent) in {"base": (0.1, 0.5, 1.0), "stage1": (0.3, 0.6 + 0.1 * run.seed, 0.2),
                                       "stage2": (0.35, 0.6, 0.1)}.items():
            report["models"][label]["readiness"] = _ready(avg, pas, ent)
        json.dump(report, open(path, "w"))
    table = write_table(plan)
    ready = table["data"]["arms"]["cadft_then_grpo"]["readiness"]
    assert ready["k"] == 8 and "readiness" not in table["data"]["arms"]["grpo"]
    assert ready["before"]["pass"]["mean"] == pytest.approx(0.65) and ready["before"]["pass"]["se"] == \
        pytest.approx(0.05)  # over the seeds: 0.6 and 0.7
    assert ready["before"]["headroom"]["mean"] == pytest.approx(0.35)
    assert ready["base"]["entropy"]["mean"] == pytest.approx(1.0) and ready["after"]["avg"]["mean"] == 0.35
    md = open(table["paths"]["md"]).read()
    assert "| recipe | model | score | avg@8 | pass@8 | headroom | entropy |" in md
    assert "| cadft_then_grpo | warm start (before RL) | 30.0 ± 0.0 | 30.0 ± 0.0 | 65.0 ± 5.0 | 35.0 ± 5.0 | " \
        "0.200 ± 0.000 |" in md
    assert "| grpo | base |" not in md


def test_study_json_records_the_union_of_reruns(tmp_path):
    record_study(plan_for(tmp_path, recipes=("grpo",), seeds=(0,)))
    record_study(plan_for(tmp_path, recipes=("grpo", "cadft_then_grpo"), seeds=(1,)))
    data = json.load(open(tmp_path / STUDY_FILE))
    assert data["recipes"] == ["grpo", "cadft_then_grpo"] and data["seeds"] == [0, 1]
    assert len(data["runs"]) == 3


def test_overrides_may_follow_the_recipe_and_seed_lists():
    from cadft_verl.study.cli import parse_args

    args = parse_args(["--recipes", "grpo", "dft_then_grpo", "cadft.beta=2", "--seeds", "0", "1", "eval.limit=5"])
    assert args.recipes == ["grpo", "dft_then_grpo"] and args.seeds == [0, 1]
    assert sorted(args.overrides) == ["cadft.beta=2", "eval.limit=5"]
    with pytest.raises(SystemExit):
        parse_args(["--seeds", "zero"])


def test_a_run_streams_its_console_to_its_log_and_the_progress_line(tmp_path, monkeypatch):
    from cadft_verl.study import runner

    run = plan_for(tmp_path, recipes=("grpo",), seeds=(0,)).runs[0]
    script = "print('[cadft-verl] full log: x'); print('stage 2 (grpo) [#---] 1/4  reward 0.5'); raise SystemExit(3)"
    monkeypatch.setattr(type(run), "command", lambda self: [sys.executable, "-c", script])
    shown = []
    result = runner.start_run(run, [], show=shown.append)
    assert result["rc"] == 3 and not result["ok"]  # failed, and no report: not finished
    assert shown == ["[cadft-verl] full log: x", "stage 2 (grpo) [#---] 1/4  reward 0.5"]
    log = open(result["console"]).read()
    assert "stage 2 (grpo) [#---] 1/4" in log and log.startswith("\n===== ")
    assert json.load(open(os.path.join(run.run_dir, "study_run.json")))["overrides"] == run.overrides


def test_the_base_models_evaluation_is_copied_into_later_runs_from_the_same_base_only(tmp_path):
    """A study evaluates its base model once: a finished run's ``eval/base`` (and ``eval/base_readiness``) is copied
    into a later run from the same base before its launch (the launch's eval stage then reuses it, under the same
    fingerprint and settings); a run from another base gets nothing. The launches: test_study_on_cpu.py, one seed."""
    from cadft_verl.study.plan import Run
    from cadft_verl.study.runner import share_base_eval

    def run(name, model):
        return Run(name, 0, "cadft_then_grpo", str(tmp_path / name),
                   ["recipe=cadft_then_grpo", f"actor_rollout_ref.model.path={model}"])

    first, same, other = run("first", "/models/base"), run("same", "/models/base"), run("other", "/models/another")
    for folder in ("base", "base_readiness"):
        evaluated = tmp_path / "first" / "eval" / folder
        (evaluated / "merged_model").mkdir(parents=True)
        (evaluated / "eval_key.json").write_text("{}")
        (evaluated / "metrics.json").write_text(json.dumps({"folder": folder}))
    assert share_base_eval(same, [first]) == str(tmp_path / "first" / "eval" / "base")
    for folder in ("base", "base_readiness"):
        copied = tmp_path / "same" / "eval" / folder
        assert json.loads((copied / "metrics.json").read_text()) == {"folder": folder}
        assert (copied / "eval_key.json").exists() and not (copied / "merged_model").exists()
    assert share_base_eval(same, [first]) is None  # its own evaluation is there now: kept
    assert share_base_eval(other, [first]) is None and not (tmp_path / "other").exists()
