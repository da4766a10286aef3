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


def test_vllm_path_with_stand_in_module(monkeypatch, tiny):
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
            out = types.SimpleNamespace
            return [out(outputs=[out(text=f"r{i}.{j} \\boxed{{{j}}}") for j in range(params.n)])
                    for i in range(len(prompts))]

    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", fake)
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
