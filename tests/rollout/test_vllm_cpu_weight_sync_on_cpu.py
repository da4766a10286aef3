"""vLLM on CPU generates with the weights verl pushes into it, not the start-up ones (cadft_verl.platform.vllm_cpu).

verl syncs the actor's weights into its vLLM rollout in place: inside vLLM's worker it calls
``model.load_weights([(hf_name, tensor), ...])`` (verl/workers/rollout/vllm_rollout/utils.py, ``_update_weights``).
On vLLM's CPU backend that only works with this project's fix (linear weights stay live Parameters). The end-to-end
test starts a real ``vllm.LLM`` on a tiny Qwen2 (tied embeddings, fp32) built with model A's weights, pushes model B's
HF state dict through the same ``load_weights`` call, and checks that greedy generation and the sampled tokens'
log-probs now match model B's HF forward (and no longer model A's).

The whole module is skipped when vLLM is not importable (the project's default env has no vLLM; see
requirements/README.md for the CPU env with vllm-cpu).
"""

from __future__ import annotations

import copy
import math
import os

import pytest

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

pytestmark = pytest.mark.vllm  # needs vLLM (tests/conftest.py skips it where vLLM is not installed)
torch = pytest.importorskip("torch")

from cadft_verl.platform import vllm_cpu  # noqa: E402

PROMPTS = ["Natalia sold clips to 48 of her friends", "The answer is", "How many clips did"]
MAX_NEW = 8


# --------------------------------------------------------------------------------------- fast unit checks (no engine)
class _Layer(torch.nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(*shape), requires_grad=False)
        self.weight.weight_loader = lambda p, w: p.data.copy_(w)


def test_fix_is_gated_on_cpu_target(monkeypatch):
    monkeypatch.delenv(vllm_cpu.ENV_SWITCH, raising=False)
    monkeypatch.setenv("VLLM_TARGET_DEVICE", "cuda")
    assert not vllm_cpu.fix_wanted()
    monkeypatch.setenv("VLLM_TARGET_DEVICE", "cpu")
    assert vllm_cpu.fix_wanted()
    monkeypatch.setenv(vllm_cpu.ENV_SWITCH, "0")
    assert not vllm_cpu.fix_wanted()
    monkeypatch.setenv("VLLM_TARGET_DEVICE", "cuda")
    monkeypatch.setenv(vllm_cpu.ENV_SWITCH, "1")
    assert vllm_cpu.fix_wanted()


def test_wrapped_dispatch_keeps_live_weight():
    from vllm.model_executor.layers import utils as vllm_layer_utils

    assert vllm_cpu.apply(force=True)
    assert vllm_cpu.is_applied()
    assert vllm_cpu.apply(force=True)  # idempotent: wrapped once
    wrapped = vllm_layer_utils.dispatch_cpu_unquantized_gemm
    assert not getattr(wrapped.__wrapped_original__, vllm_cpu._PATCH_FLAG, False)

    layer = _Layer((16, 32))
    param = layer.weight
    wrapped(layer, remove_weight=True)
    assert layer.weight is param and layer.weight.shape == (16, 32)
    assert hasattr(layer.weight, "weight_loader")
    x = torch.randn(3, 32)
    new = torch.randn(16, 32)
    layer.weight.weight_loader(layer.weight, new)  # in-place update, as vLLM's loaders do
    torch.testing.assert_close(layer.cpu_linear(x, layer.weight, None), x @ new.t())


# --------------------------------------------------------------------------------------- end to end: a real vllm.LLM
def _hf_greedy(model, tok, prompt: str):
    """Greedy continuation of ``prompt`` with HF transformers: token ids and their log-probs."""
    ids = tok(prompt, return_tensors="pt").input_ids
    out, lps = [], []
    with torch.no_grad():
        for _ in range(MAX_NEW):
            logits = model(ids).logits[0, -1].float()
            logp = torch.log_softmax(logits, -1)
            nxt = int(torch.argmax(logp))
            out.append(nxt)
            lps.append(float(logp[nxt]))
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out, lps


def _vllm_greedy(llm):
    from vllm import SamplingParams

    sp = SamplingParams(temperature=0.0, max_tokens=MAX_NEW, ignore_eos=True, logprobs=0)
    res = []
    for o in llm.generate(PROMPTS, sp, use_tqdm=False):
        c = o.outputs[0]
        res.append((list(c.token_ids), [lp[t].logprob for t, lp in zip(c.token_ids, c.logprobs)]))
    return res


def _push_weights(llm, state_dict):
    """verl's in-place sync: ``model.load_weights(iterable of (hf_name, tensor))`` inside the vLLM worker."""
    items = [(k, v.detach().clone()) for k, v in state_dict.items()]

    def load(model):
        model.load_weights(items)
        return True

    # apply_model runs the function on the worker's model (in-process engine here, see the fixture)
    assert all(llm.apply_model(load))


def _perturb(model, seed: int, scale: float = 0.5) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.add_(torch.randn(p.shape, generator=gen) * scale)


@pytest.fixture(scope="module")
def two_tiny_models(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cadft_verl.demo.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    # hidden 128 / 2 heads -> head_dim 64 (vLLM's CPU attention needs >= 32). A freshly initialised tiny model
    # (std 0.02) just repeats the prompt's last token, so both models get large random perturbations to make
    # their greedy continuations non-trivial and different. B shares A's tokenizer and config.
    a = build_tiny_model(str(root / "a"), hidden_size=128, seed=0)
    tok = AutoTokenizer.from_pretrained(a)
    ma = AutoModelForCausalLM.from_pretrained(a, dtype=torch.float32).eval()
    _perturb(ma, seed=0)
    ma.save_pretrained(a)
    mb = copy.deepcopy(ma)
    _perturb(mb, seed=1)
    return a, tok, ma, mb


def _assert_matches(vllm_res, hf_res, what):
    for prompt, (v_ids, v_lps), (h_ids, h_lps) in zip(PROMPTS, vllm_res, hf_res):
        assert v_ids == h_ids, f"{what}: greedy tokens differ for {prompt!r}: vLLM {v_ids} vs HF {h_ids}"
        for v, h in zip(v_lps, h_lps):
            assert math.isclose(v, h, abs_tol=2e-3), f"{what}: log-prob {v} vs HF {h} for {prompt!r}"


def test_vllm_cpu_generates_with_pushed_weights(two_tiny_models, monkeypatch):
    from vllm import LLM

    path_a, tok, model_a, model_b = two_tiny_models
    # engine in this process so apply_model can run a local closure; the fix then only needs this process
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    assert vllm_cpu.apply()  # VLLM_TARGET_DEVICE=cpu -> on

    hf_a = [_hf_greedy(model_a, tok, p) for p in PROMPTS]
    hf_b = [_hf_greedy(model_b, tok, p) for p in PROMPTS]
    assert [ids for ids, _ in hf_a] != [ids for ids, _ in hf_b], "the two tiny models must generate differently"

    llm = LLM(
        model=path_a,
        dtype="float32",
        enforce_eager=True,
        max_model_len=256,
        max_num_seqs=4,
        tensor_parallel_size=1,
        seed=0,
    )
    try:
        _assert_matches(_vllm_greedy(llm), hf_a, "start-up weights (model A)")

        _push_weights(llm, model_b.state_dict())
        after = _vllm_greedy(llm)
        assert [ids for ids, _ in after] != [ids for ids, _ in hf_a], "vLLM still generates with the start-up weights"
        _assert_matches(after, hf_b, "after the weight push (model B)")

        # and back: a second sync is picked up too (verl syncs every step)
        _push_weights(llm, model_a.state_dict())
        _assert_matches(_vllm_greedy(llm), hf_a, "after pushing model A back")
    finally:
        del llm
        import gc

        gc.collect()
