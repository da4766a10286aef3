"""Generation backends: transformers on CPU (sampling / greedy, n per prompt) and the vLLM path with a stand-in
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
    from cadft_verl.utils.tiny_model import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny_gen")), ["1 + 1 = 2"])


def test_sampling_settings():
    s = SamplingSettings(n=16, temperature=1.0, greedy=True)
    assert s.n == 1 and s.temperature == 0.0
    with pytest.raises(ValueError):
        SamplingSettings(n=0)


def test_hf_generate_shapes_and_determinism(tiny):
    g = HFGenerator(tiny, batch_size=2)
    assert g.tokenizer.convert_tokens_to_ids("<|im_end|>") in g.stop_ids
    prompts = ["<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n", "a longer prompt text " * 3, "x"]
    s = SamplingSettings(n=3, temperature=1.0, top_p=0.9, max_new_tokens=6, seed=1)
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
    s = SamplingSettings(n=4, temperature=1.0, top_p=1.0, max_new_tokens=4096)
    out = g.generate(["p one", "p two"], s)
    assert out == [[f"r{i}.{j} \\boxed{{{j}}}" for j in range(4)] for i in range(2)]
    sp = calls["sampling"]
    assert sp["n"] == 4 and sp["temperature"] == 1.0 and sp["top_p"] == 1.0 and sp["max_tokens"] == 4096
    assert sp["stop_token_ids"] == stop_token_ids(g.tokenizer, tiny)
    assert all("prompt_token_ids" in p for p in calls["prompts"])
    g.generate(["p"], SamplingSettings(greedy=True, max_new_tokens=8))
    assert calls["sampling"]["temperature"] == 0.0 and calls["sampling"]["n"] == 1
