"""Generation backends: transformers on CPU (sampling / greedy, k per prompt) and the vLLM path with a stand-in
``vllm`` module (vLLM itself is not installed in CI)."""

import sys
import types

import pytest

from cadft_verl.eval.generation import (
    HFGenerator,
    SamplingSettings,
    make_generator,
    resolve_backend,
    stop_token_ids,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from cadft_verl.demo.tiny_model import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny_gen")), ["1 + 1 = 2"])


def test_sampling_settings():
    s = SamplingSettings(k=16, temperature=1.0, greedy=True)
    assert s.k == 1 and s.temperature == 0.0
    with pytest.raises(ValueError, match="k .* must be >= 1, got 0"):
        SamplingSettings(k=0)


def test_run_config_is_the_sampling_settings_plus_the_rest():
    """One definition of the sampling fields (RunConfig extends SamplingSettings); every keyword the CLI and the eval
    stage pass still works, ``fields``/``asdict`` stay flat and JSON round-trips; greedy's k = 1 is on the config."""
    import dataclasses
    import json

    from cadft_verl.eval.runner import RunConfig

    sampling = {f.name for f in dataclasses.fields(SamplingSettings)}
    assert sampling == {"k", "temperature", "top_p", "max_new_tokens", "seed", "greedy"}
    stage_keys = dict(limit=2, k=4, greedy=False, temperature=0.7, top_p=0.9, max_new_tokens=10, template="chat",
                      backend="hf", batch_size=2, benchmarks_dir=None, hub=False, seed=1, dtype="auto",
                      tensor_parallel_size=1, gpu_memory_utilization=0.5, max_model_len=None, score_timeout=5.0,
                      score_workers=1)
    assert set(stage_keys) <= {f.name for f in dataclasses.fields(RunConfig)}
    cfg = RunConfig(model="m", out="o", benchmarks=["x"], label="l", trust_remote_code=False, **stage_keys)
    again = RunConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert again == cfg and again.k == 4
    assert again.sampling() == SamplingSettings(k=4, temperature=0.7, top_p=0.9, max_new_tokens=10, seed=1)
    greedy = RunConfig(model="m", out="o", k=16, greedy=True)
    assert greedy.k == 1 and dataclasses.asdict(greedy)["k"] == 1 and greedy.temperature == 0.0
    with pytest.raises(TypeError):
        RunConfig("m", "o")  # keyword-only: no positional value can land in the wrong field


def test_hf_generate_shapes_and_determinism(tiny):
    g = HFGenerator(tiny, batch_size=2)
    assert g.tokenizer.convert_tokens_to_ids("<|im_end|>") in g.stop_ids
    prompts = ["<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n", "a longer prompt text " * 3, "x"]
    s = SamplingSettings(k=3, temperature=1.0, top_p=0.9, max_new_tokens=6, seed=1)
    out1 = g.generate(prompts, s)
    assert len(out1) == 3 and all(len(o) == 3 and all(isinstance(t, str) for t in o) for o in out1)
    assert g.generate(prompts, s) == out1  # same seed, same samples
    greedy = SamplingSettings(greedy=True, max_new_tokens=6)
    a = g.generate(prompts, greedy)
    assert all(len(o) == 1 for o in a) and g.generate(prompts, greedy) == a


def test_backend_resolution(monkeypatch):
    assert resolve_backend("hf") == "hf"
    monkeypatch.setattr("cadft_verl.eval.generation.cuda_available", lambda: False)
    assert resolve_backend("auto") == "hf"
    with pytest.raises(ValueError):
        resolve_backend("tgi")


def test_vllm_missing_is_a_clear_error(monkeypatch, tiny):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(RuntimeError, match="vLLM is not installed.*--backend hf"):
        make_generator("vllm", tiny)


def stand_in_vllm(monkeypatch, outputs):
    """A stand-in ``vllm`` module whose LLM records its arguments in the returned dict (``llm``, ``sampling``,
    ``prompts``) and answers each prompt with ``outputs(i, params)``, a list of completions."""
    calls = {}

    class SamplingParams:
        def __init__(self, **kw):
            calls["sampling"] = kw
            self.n = kw["n"]

    class LLM:
        def __init__(self, **kw):
            calls["llm"] = kw

        def generate(self, prompts, params, use_tqdm=True):
            calls["prompts"] = prompts
            return [types.SimpleNamespace(outputs=outputs(i, params)) for i in range(len(prompts))]

    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", fake)
    return calls


def test_vllm_path_with_stand_in_module(monkeypatch, tiny):
    ns = types.SimpleNamespace
    calls = stand_in_vllm(monkeypatch, lambda i, params: [ns(text=f"r{i}.{j} \\boxed{{{j}}}") for j in range(params.n)])
    g = make_generator("vllm", tiny, tensor_parallel_size=2, seed=3, batch_size=99, max_model_len=None)
    assert calls["llm"]["model"] == tiny and calls["llm"]["tensor_parallel_size"] == 2 and calls["llm"]["seed"] == 3
    assert "max_model_len" not in calls["llm"]
    s = SamplingSettings(k=4, temperature=1.0, top_p=1.0, max_new_tokens=4096)
    out = g.generate(["p one", "p two"], s)
    assert out == [[f"r{i}.{j} \\boxed{{{j}}}" for j in range(4)] for i in range(2)]
    sp = calls["sampling"]
    assert sp["n"] == 4 and sp["temperature"] == 1.0 and sp["top_p"] == 1.0 and sp["max_tokens"] == 4096
    assert sp["stop_token_ids"] == stop_token_ids(g.tokenizer, tiny)
    assert all("prompt_token_ids" in p for p in calls["prompts"])
    g.generate(["p"], SamplingSettings(greedy=True, max_new_tokens=8))
    assert calls["sampling"]["temperature"] == 0.0 and calls["sampling"]["n"] == 1


def test_entropy_meter_is_the_policys_entropy_at_the_temperature_until_the_stop_token():
    import math

    import torch

    from cadft_verl.eval.generation import EntropyMeter

    meter = EntropyMeter(temperature=2.0, stop_ids=[7])
    uniform = torch.zeros(2, 8)
    peaked = torch.tensor([[0.0] * 7 + [-math.inf], [10.0] + [0.0] * 7])
    assert meter(torch.tensor([[1], [1]]), uniform) is uniform  # it changes nothing
    meter(torch.tensor([[1, 7], [1, 3]]), peaked)  # row 0 chose the stop token: its later steps are padding
    meter(torch.tensor([[1, 7, 0], [1, 3, 4]]), uniform)
    rows = meter.stats()
    assert rows[0]["tokens"] == 1 and rows[0]["entropy"] == pytest.approx(math.log(8))
    z = torch.tensor([10.0] + [0.0] * 7) / 2.0  # the temperature scales the logits
    p = torch.softmax(z, 0)
    h = float(-(p * p.log()).sum())
    assert rows[1]["tokens"] == 3 and rows[1]["entropy"] == pytest.approx((2 * math.log(8) + h) / 3)


def test_hf_generation_measures_the_entropy_of_what_it_samples(tiny):
    """generate_with_stats's entropy is the one of softmax(logits / T) over the whole vocabulary at each sampled
    token (transformers' raw logits of the same generation), and its tokens are those up to the stop token."""
    import torch
    from transformers import GenerationConfig

    g = HFGenerator(tiny, batch_size=4)
    s = SamplingSettings(k=3, temperature=0.7, top_p=0.9, max_new_tokens=8, seed=2)
    texts, stats = g.generate_with_stats(["1 +", "a longer prompt"], s)
    assert [len(t) for t in texts] == [3, 3] and [len(x) for x in stats] == [3, 3]
    assert g.generate(["1 +", "a longer prompt"], s) == texts
    # the same generation again, with transformers' raw logits
    from transformers import set_seed

    set_seed(2)
    enc = g.tokenizer(["a longer prompt", "1 +"], return_tensors="pt", padding=True, add_special_tokens=False)
    cfg = GenerationConfig(do_sample=True, temperature=0.7, top_p=0.9, top_k=0, repetition_penalty=1.0,
                           max_new_tokens=8, num_return_sequences=3, eos_token_id=g.stop_ids,
                           pad_token_id=g.tokenizer.pad_token_id, output_logits=True, return_dict_in_generate=True)
    with torch.no_grad():
        out = g.model.generate(**enc, generation_config=cfg)
    new = out.sequences[:, enc["input_ids"].shape[1]:]
    expected = []
    for row in range(new.shape[0]):
        total, n = 0.0, 0
        for t, logits in enumerate(out.logits):
            logp = torch.log_softmax(logits[row].float() / 0.7, -1)
            total += float(-(logp.exp() * logp).sum())
            n += 1
            if int(new[row, t]) in g.stop_ids:
                break
        expected.append((total / n, n))
    got = [x for x in stats[1] + stats[0]]  # generation order: longest prompt first
    assert [x["tokens"] for x in got] == [n for _, n in expected]
    assert [x["entropy"] for x in got] == pytest.approx([h for h, _ in expected], rel=1e-4)
    # greedy: no sampling policy, no entropy
    _, greedy = g.generate_with_stats(["1 +"], SamplingSettings(greedy=True, max_new_tokens=4))
    assert greedy[0][0]["entropy"] is None and 1 <= greedy[0][0]["tokens"] <= 4


def test_vllm_entropy_is_estimated_from_the_sampled_tokens_processed_logprobs(monkeypatch, tiny):
    ns = types.SimpleNamespace
    one = ns(text="a", token_ids=[5, 9], logprobs=[{5: ns(logprob=-0.5), 1: ns(logprob=-2.0)}, {9: ns(logprob=-1.5)}])
    calls = stand_in_vllm(monkeypatch, lambda i, params: [one] * params.n)
    g = make_generator("vllm", tiny)
    assert calls["llm"]["logprobs_mode"] == "processed_logprobs"  # after the temperature: the sampling policy's
    texts, stats = g.generate_with_stats(["p"], SamplingSettings(k=2, temperature=0.8))
    assert calls["sampling"]["logprobs"] == 0  # the sampled token's own log-probability
    assert texts == [["a", "a"]] and stats == [[{"entropy": 1.0, "tokens": 2}] * 2]  # (0.5 + 1.5) / 2
    g.generate_with_stats(["p"], SamplingSettings(greedy=True))
    assert calls["sampling"]["logprobs"] is None
