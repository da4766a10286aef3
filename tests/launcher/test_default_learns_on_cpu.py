"""The README's main job on its embedded default, end to end, asserting what was learned, not only that it ran.

`python -m verl.trainer.main recipe=cadft_then_grpo profile=cpu` with the CPU default's inputs (the arithmetic task,
the pretrained base): CADFT with rewrite rounds through verl's vLLM rollout replica, verl's GRPO from the stage-1
export, the eval stage and its report; then a rerun, which finds every stage done and starts no worker.

The main job is the session's fixture ``default_run`` (tests/launcher/conftest.py): verl's PPO starts from its stage-1
export too (test_ppo_on_cpu.py). Here, two short stage-2 launches (`recipe=grpo stages=[rl]`) from that export, on one
fixed set of prompts: verl's GRPO, and the same with its advantages negated (a test-only estimator,
tests/launcher/sabotage). The check on the first must fail on the second: that each update raised the log-probability
of its step's rewarded answers above that of the unrewarded ones.
"""

import json
import os

import pandas as pd
import pytest
from handover import assert_first_validation_is_the_stage1_model, eval_accuracy_on_val
from launch import MAIN_JOB_RL_STEPS as RL_STEPS
from launch import ONE_RANK, launch
from sabotage import negated_advantage_environment

from cadft_verl.demo.cpu_default import launch_overrides

pytestmark = pytest.mark.vllm  # rewriting and stage 2 need vLLM (tests/conftest.py skips it where it is missing)


def _rows(path):
    return [json.loads(line) for line in open(path)]


def _score(rows, key_part):
    """The value of the metric whose name holds ``key_part`` (one data source: arith)."""
    keys = [k for k in rows if key_part in k]
    assert len(keys) == 1, (key_part, sorted(rows))
    return rows[keys[0]]


def test_stage2_trains_from_the_stage1_export_and_a_rerun_redoes_nothing(default_run):
    from transformers import AutoModelForCausalLM

    run, summary = default_run["run"], default_run["summary"]
    s1, s2 = summary["results"]["stage1"], summary["results"]["stage2"]
    assert s2["init_model"] == s1["hf_model"] and s2["steps"] == RL_STEPS and s2["algorithm"] == "grpo"
    assert s2["hf_model"] == str(run / "stage2_rl" / f"global_step_{RL_STEPS}" / "actor" / "huggingface")
    AutoModelForCausalLM.from_pretrained(s2["hf_model"])  # weights, not only config and tokenizer
    rerun, rerun_all = default_run["rerun"], default_run["rerun"].stdout + default_run["rerun"].stderr
    rerun_all += default_run["rerun_log"]  # verl's and Ray's output goes to launch.log, the console's to the terminal
    assert "stage 2 already complete" in rerun.stdout and "Training Progress" not in rerun_all
    assert "stage 1 (cadft)" not in rerun_all  # no stage-1 progress bar: stage 1 was not redone
    assert "Started a local Ray instance" not in rerun_all  # nothing left to run on workers
    assert "Started a local Ray instance" in (run / "launch.log").read_text(errors="replace")  # where it would be
    again = json.loads((run / "summary.json").read_text())["results"]["eval"]
    assert all(m["skipped"] for m in again["models"].values())


def test_stage2_starts_from_the_stage1_model_and_grpo_learns_from_nonzero_rewards(default_run):
    # stage 2's validation before its first step (the held-out arith prompts of rl/val.parquet, greedy) scores what
    # the eval stage measured for the stage-1 model on the same problems
    before = [r["data"] for r in default_run["stage2_metrics"] if r["step"] == 0]
    assert before, "no validation before stage 2's first step"
    assert_first_validation_is_the_stage1_model(_score(before[0], "val-core/"), eval_accuracy_on_val(default_run))
    # GRPO had something to learn from: rewards in (0, 1) (the outcome reward, the default; measured 0.72-0.94 a
    # step) and a gradient exactly where a prompt's answers were not all equally rewarded. GRPO learns from those
    # groups only (no KL or entropy term here), so a step without one has a zero gradient: at 8 prompts x 4 that
    # happens (a CI rehearsal had 4 right answers all in one group, signal share 0 and grad norm 0.0 at step 3)
    steps = [r["data"] for r in default_run["stage2_metrics"] if "actor/pg_loss" in r["data"]]
    assert len(steps) == RL_STEPS
    rewards = [s["critic/score/mean"] for s in steps]
    assert all(0 <= r <= 1 for r in rewards) and 0 < sum(rewards) / len(rewards) < 1, rewards
    learned = [(s["cadft/group_signal_share"], s["actor/grad_norm"]) for s in steps]
    assert all((share > 0) == (grad > 0) for share, grad in learned), learned
    assert sum(share > 0 for share, _ in learned) >= RL_STEPS // 2, learned  # measured: 8 of 8 steps


def _held_out(default_run, label):
    """(greedy accuracy, share without an answer) of one model on the 150 held-out problems, from the eval stage."""
    ev = default_run["summary"]["results"]["eval"]
    samples = [s for s in _rows(os.path.join(os.path.dirname(ev["models"][label]["metrics"]), "samples.jsonl"))
               if s["benchmark"] == "arith"]
    assert len(samples) == 150
    return sum(s["correct"] for s in samples) / len(samples), sum(s["no_answer"] for s in samples) / len(samples)


def test_the_warm_start_beats_the_base_on_the_held_out_task(default_run):
    """Stage 1 starts the lesson the base lacks: the base gives its answer in the requested \\boxed{} form only for
    some problems (demo/pretrain.py), and after CADFT more sampled answers are boxed and right. That lesson is one
    near-even choice per answer (box it, or write "The answer is N."), so greedy decoding shows it only where the
    choice crosses one half, and how often that happens depends on the machine (docs/cpu-default.md): greedy 44.0 ->
    58.7-70.0 on the machine the default was sized on, 44.0 -> 45.3-52.7 on another. The sampled answers show it
    on both: avg@8 53.2 -> 70.2-73.0 there, 52.0 -> 65.1-66.9 here (3 seeds each)."""
    report = json.loads((default_run["run"] / "eval" / "cold_start.json").read_text())
    base, warm = (report["models"][m]["readiness"]["benchmarks"]["arith"] for m in ("base", "stage1"))
    assert warm["avg"]["mean"] >= base["avg"]["mean"] + 0.07, (base["avg"], warm["avg"])
    # and greedy decoding is not worse than the base's (up to 3 problems of 150)
    (base_g, base_none), (warm_g, warm_none) = _held_out(default_run, "base"), _held_out(default_run, "stage1")
    assert base_none > 0.25 and warm_g >= base_g - 0.02 and warm_none <= base_none + 0.02, (base_g, warm_g)


def test_grpo_raises_the_held_out_score_of_the_warm_start(default_run):
    """Stage 2 finishes the lesson: GRPO's few steps box the answers stage 1 left unboxed, on held-out problems it
    never trained on. Measured: the README's 16 steps gave +32.7, +29.3 and +41.3 points over 3 seeds
    (docs/cpu-default.md); this run's MAIN_JOB_RL_STEPS (8) gave +27.3 (70.7 -> 98.0; no answer 28.7% -> 1.3%). A
    stage 2 that skipped its weight sync, or whose update did nothing, scores what stage 1 scored."""
    (warm, warm_none), (rl, rl_none) = _held_out(default_run, "stage1"), _held_out(default_run, "stage2")
    assert rl >= warm + 0.1 and rl_none <= warm_none - 0.1, (warm, rl, warm_none, rl_none)


def test_cadft_down_weights_the_incompatible_demonstrations(default_run):
    kinds = [e["kind"] for e in pd.read_parquet(os.path.join(default_run["data"], "sft", "train.parquet"))["extra_info"]]
    weights = {"clean": [], "incompatible": []}
    for rec in _rows(default_run["stage1"] / "samples.jsonl"):
        for i, w in zip(rec["idx"], rec["w"]):
            weights["clean" if kinds[i] == "clean" else "incompatible"].append(w)
    mean = {k: sum(v) / len(v) for k, v in weights.items()}
    assert len(weights["incompatible"]) > 50 and mean["incompatible"] < mean["clean"] - 0.2, mean
    stage1 = default_run["stage1_metrics"]
    assert all(0 < r["data"]["stage1/cadft/frac_downweighted"] < 1 for r in stage1)


def test_a_rewrite_is_accepted_and_then_trained_on(default_run):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    from cadft_verl.rewrite import RewritableSFTDataset

    stage = default_run["stage1"]
    audit = [r for d in sorted(stage.glob("global_step_*")) if (d / "rewrite" / "audit.jsonl").exists()
             for r in _rows(d / "rewrite" / "audit.jsonl")]
    accepted = [r for r in audit if r["accepted"]]
    assert accepted, f"no rewrite accepted among {len(audit)} candidates"
    # the rounds sampled through verl's vLLM rollout replica (4 answers per drawn candidate), and verification
    # rejected the wrong ones (some sampled answers did not verify; measured 21 of 76 in one run): a rewrite is an
    # answer that verified, and a candidate whose answers all fail keeps its original target
    assert all(r["generated"] == 4 for r in audit if r["generated"])
    assert sum(r["generated"] - r["verified"] for r in audit) > 0 and all(r["verified"] > 0 for r in accepted)
    assert all(not r["accepted"] and "verifies" in r["reason"] for r in audit if r["generated"] and not r["verified"])
    assert all(r["data"].get("stage1/rewrite/failed", 0) == 0 for r in default_run["stage1_metrics"])
    model = default_run["summary"]["results"]["stage1"]["hf_model"]
    cfg = OmegaConf.create({"pad_mode": "no_padding", "truncation": "right", "max_length": 256})
    ds = RewritableSFTDataset(MultiTurnSFTDataset(os.path.join(default_run["data"], "sft", "train.parquet"),
                                                  AutoTokenizer.from_pretrained(model), cfg))
    visits = _rows(stage / "samples.jsonl")
    trained = 0
    for r in accepted:
        later = [rec["n"][rec["idx"].index(r["index"])] for rec in visits
                 if rec["step"] > r["step"] and r["index"] in rec["idx"]]
        if later:
            assert later[0] == int(ds.item_with_target(r["index"], r["new_text"])["loss_mask"].sum())
            trained += 1
    assert trained >= 1, "no accepted rewrite was visited again"


def test_the_report_scores_base_warm_start_and_rl_model_and_ends_the_console(default_run):
    ev, out = default_run["summary"]["results"]["eval"], default_run["proc"].stdout
    assert set(ev["models"]) == {"base", "stage1", "stage2"}
    report = json.loads(open(ev["report"]["json"]).read())
    assert "arith" in report["benchmarks"]
    score = {label: report["models"][label]["values"]["arith"] for label in ("base", "stage1", "stage2")}
    # the task is neither unsolved nor solved before RL; RL may solve it (the README's 16 steps did in 1 of 3 seeds)
    assert 0 < score["base"] < 1 and 0 < score["stage1"] < 1 and 0 < score["stage2"] <= 1, score
    # the console ends with the report: the table, then where the files are
    assert out.index("run finished") < out.index("| stage 2: cadft+grpo |") < out.index("[cadft-verl] cold-start report:")
    for key in ("md", "png", "json"):
        assert os.path.isfile(ev["report"][key]) and ev["report"][key] in out


# The RL-update check: SIGNAL_STEPS GRPO steps on the same SIGNAL_PROMPTS two-step prompts (the whole set is every
# step's batch, SIGNAL_N rollouts each) at lr SIGNAL_LR, from the main job's stage-1 export, with the chain-checked
# reward (reward_kwargs.check_chain, cadft_verl.reward.chain), a checkpoint after every step and the rollouts dumped
# (trainer.rollout_data_dir). Its measure is what GRPO's objective asks each update to do: raise the log-probability of
# the step's answers that scored above their group's mean over that of the ones that scored below it.
SIGNAL_PROMPTS, SIGNAL_N, SIGNAL_STEPS, SIGNAL_LR = 16, 8, 3, 1e-4  # the lr of the default's GRPO (cpu_default.RL_LR)
#: the least mean shift (nats per token) a working update must show; every step's must also be above 0. On today's
#: default (docs/cpu-default.md), where a rewarded answer differs from an unrewarded one mostly in its last line (the
#: boxed answer), from the main job's stage 1: at lr 1e-4 GRPO +0.0055, +0.0053, +0.0038 and negated -0.0022, -0.0010,
#: -0.0027; at lr 5e-5 GRPO +0.0019, +0.0012, +0.0019 and negated -0.0013, -0.0010, -0.0067. On the previous default
#: (lr 5e-5, 10 runs, bound 0.003) GRPO's means were +0.007 to +0.013 and the negated ones -0.007 to -0.022; at lr 5e-4
#: one seed's first update overshot (-0.058): above the first-order regime the sign is no longer the objective's.
MIN_SHIFT = 0.001


def test_the_report_has_greedy_and_rl_readiness_and_stage2_logs_its_signal(default_run):
    report = json.loads((default_run["run"] / "eval" / "cold_start.json").read_text())
    md = (default_run["run"] / "eval" / "cold_start.md").read_text()
    assert "| model | benchmark | greedy | avg@4 | pass@4 | headroom (pass@4 − avg@4) | entropy (nats/token) |" in md
    for label in ("base", "stage1", "stage2"):
        m = report["models"][label]
        assert 0.0 <= m["values"]["arith"] <= 1.0  # the greedy score
        ready = m["readiness"]
        assert ready["k"] == 4 and list(ready["benchmarks"]) == ["arith"]
        r = ready["benchmarks"]["arith"]
        assert 0.0 <= r["avg"]["mean"] <= r["pass"]["mean"] <= 1.0 and r["headroom"]["mean"] >= 0.0
        assert r["entropy"]["mean"] > 0.0 and all(r[c]["se"] >= 0.0 for c in ("avg", "pass", "headroom", "entropy"))
    # sampled at temperature 1, the warm start solves more problems in 4 tries than in one (room for RL; measured
    # pass@4 0.96 against avg@4 0.72)
    warm = report["models"]["stage1"]["readiness"]["benchmarks"]["arith"]
    assert warm["pass"]["mean"] > warm["avg"]["mean"] + 0.1
    steps = [r["data"] for r in default_run["stage2_metrics"] if "actor/pg_loss" in r["data"]]
    assert len(steps) == RL_STEPS
    assert all(0.0 <= s["cadft/group_signal_share"] <= 1.0 and s["cadft/groups"] > 0 for s in steps)
    assert all(s["actor/entropy"] > 0.0 for s in steps)


def step_shifts(run, prompts, warm):
    """Per step k: the mean change of log-probability (nats per token) from the policy that sampled step k's answers
    (the checkpoint of step k-1; the warm start for k=1) to the one step k's update made, of the answers that scored
    above their group's mean, minus that of the answers that scored below it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(warm)
    messages = {row["prompt"][-1]["content"]: [dict(m) for m in row["prompt"]] for _, row in prompts.iterrows()}
    prompt_ids = {q: tok(tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True),
                         add_special_tokens=False)["input_ids"] for q, m in messages.items()}

    # policies[k]: the model after k updates (policies[0]: the warm start), each loaded once
    policies = [AutoModelForCausalLM.from_pretrained(
        warm if k == 0 else run / "stage2_rl" / f"global_step_{k}" / "actor" / "huggingface").eval()
        for k in range(SIGNAL_STEPS + 1)]

    def mean_logprob(model, question, answer):
        prompt, ids = prompt_ids[question], tok(answer, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1:-1].float()
        return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None]).mean().item()

    shifts = []
    for k in range(1, SIGNAL_STEPS + 1):
        groups = {}
        for r in _rows(run / "rollouts" / f"{k}.jsonl"):  # decoded without special tokens: matched by the user's text
            (question,) = [q for q in messages if q in r["input"]]
            groups.setdefault(question, []).append(r)
        before, after = policies[k - 1], policies[k]
        up, down = [], []
        for question, group in groups.items():
            mean = sum(r["score"] for r in group) / len(group)
            for r in group:
                # an answer that is only the end-of-turn token decodes (without special tokens) to no text: no
                # token of it is left to score
                if r["score"] != mean and r["output"]:
                    change = mean_logprob(after, question, r["output"]) - mean_logprob(before, question, r["output"])
                    (up if r["score"] > mean else down).append(change)
        assert up and down, f"no group of step {k} had mixed rewards"
        shifts.append(sum(up) / len(up) - sum(down) / len(down))
    return shifts


def _signal_run(data_dir, model, run, prompts, sabotage):
    args = ["recipe=grpo", *launch_overrides(data_dir, model, str(run), rl_steps=SIGNAL_STEPS), "stages=[rl]",
            f"data.train_files={prompts}", f"data.train_batch_size={SIGNAL_PROMPTS}",
            f"actor_rollout_ref.actor.ppo_mini_batch_size={SIGNAL_PROMPTS}", f"actor_rollout_ref.rollout.n={SIGNAL_N}",
            f"actor_rollout_ref.actor.optim.lr={SIGNAL_LR}", "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio=0",
            "reward.custom_reward_function.reward_kwargs.check_chain=true",  # what MIN_SHIFT was measured with
            "trainer.val_before_train=False", "trainer.test_freq=-1", "trainer.save_freq=1",
            f"trainer.rollout_data_dir={run / 'rollouts'}", *ONE_RANK]
    with pytest.MonkeyPatch.context() as mp:
        if sabotage:
            args.append("algorithm.adv_estimator=negated_grpo")
            for key, value in negated_advantage_environment(dict(os.environ)).items():
                mp.setenv(key, value)
        launch(args, timeout=900)
    return _rows(run / "metrics" / "cadft-verl" / "grpo_stage2.jsonl")


@pytest.fixture(scope="module")
def signal_runs(tmp_path_factory, default_run):
    """Per-step shifts (step_shifts) and the metric history of GRPO and of GRPO with negated advantages, from the same
    stage-1 export and prompts."""
    tmp = tmp_path_factory.mktemp("signal")
    rl = pd.read_parquet(os.path.join(default_run["data"], "rl", "train.parquet"))
    two_step = rl[[e["steps"] == 2 for e in rl["extra_info"]]].head(SIGNAL_PROMPTS)
    assert len(two_step) == SIGNAL_PROMPTS
    prompts = tmp / "prompts.parquet"
    two_step.to_parquet(prompts)
    model = default_run["summary"]["results"]["stage1"]["hf_model"]
    out = {}
    for name in ("grpo", "sabotaged"):
        history = _signal_run(default_run["data"], model, tmp / name, prompts, name == "sabotaged")
        out[name] = {"shifts": step_shifts(tmp / name, two_step, model),
                     "steps": [r["data"] for r in history if "critic/score/mean" in r["data"]]}
    return out


def test_each_rl_update_raises_the_rewarded_answers_and_the_check_fails_when_the_advantages_are_negated(signal_runs):
    """Every GRPO update makes the answers its step rewarded more likely than the ones it did not (learning, at the
    policy: in a few steps of this size the training reward itself moves less than its sampling noise, docs/cpu-default.md),
    and the same check fails on an update whose advantages are negated."""
    shifts = signal_runs["grpo"]["shifts"]
    assert len(shifts) == SIGNAL_STEPS and min(shifts) > 0 and sum(shifts) / len(shifts) > MIN_SHIFT, shifts
    shifts = signal_runs["sabotaged"]["shifts"]
    assert max(shifts) < 0 and sum(shifts) / len(shifts) < -MIN_SHIFT, shifts  # the check above fails on it
    # the rollouts came from the weights each update made: verl's rollout-vs-actor check of the sampled tokens' probs
    # (about 3e-7 measured; step 2's answers scored by the warm start instead of step 1's checkpoint differ by 3e-3)
    steps = signal_runs["grpo"]["steps"]
    assert len(steps) == SIGNAL_STEPS and all(s["training/rollout_probs_diff_mean"] < 1e-5 for s in steps), steps
