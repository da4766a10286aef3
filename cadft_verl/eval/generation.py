"""Response generation: vLLM on GPU (lazy import) or transformers ``generate`` (CPU or GPU, batched).

Both take already-rendered prompt strings and return, per prompt, a list of n decoded responses
(``generate_with_stats`` also returns, per response, the policy's mean per-token entropy and its token count:
:func:`sample_stats`). Sampling follows
the settings exactly (temperature, top_p, no top-k, no repetition penalty, max new tokens); generation stops at
the tokenizer's / model's end-of-sequence tokens and the chat end markers (``<|im_end|>``, ``<|endoftext|>``,
``<|eot_id|>``, ``<|end_of_text|>``) when the vocabulary has them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

_STOP_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>")


@dataclass(kw_only=True)
class SamplingSettings:
    """How responses are sampled, by keyword; :class:`cadft_verl.eval.runner.RunConfig` extends it with the run's
    other settings.

    ``greedy``: one greedy sample per problem, so ``k`` becomes 1, ``temperature`` 0 and ``top_p`` 1 here, where the
    settings are made, and every record of them (metrics.json, the eval stage's key) says what was run."""

    k: int = 16  # samples per problem
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 4096
    seed: int = 0
    greedy: bool = False

    def __post_init__(self):
        if self.greedy:
            self.k = 1
            self.temperature = 0.0
            self.top_p = 1.0
        if self.k < 1:
            raise ValueError(f"k (samples per problem) must be >= 1, got {self.k}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def sampling(self) -> SamplingSettings:
        """These settings alone (a plain :class:`SamplingSettings`, also of a ``RunConfig``)."""
        return SamplingSettings(**{f.name: getattr(self, f.name) for f in fields(SamplingSettings)})


def stop_token_ids(tokenizer, model_path: str | None = None) -> list[int]:
    ids: list[int] = []

    def add(x):
        if x is None:
            return
        for i in x if isinstance(x, (list, tuple)) else [x]:
            if isinstance(i, int) and i >= 0 and i not in ids:
                ids.append(i)

    add(getattr(tokenizer, "eos_token_id", None))
    if model_path:
        try:
            from transformers import GenerationConfig

            add(GenerationConfig.from_pretrained(model_path).eos_token_id)
        except Exception:  # noqa: BLE001 - no generation_config.json
            pass
    vocab = tokenizer.get_vocab()
    for m in _STOP_MARKERS:
        if m in vocab:
            add(vocab[m])
    return ids


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


def resolve_backend(backend: str) -> str:
    if backend == "auto":
        return "vllm" if cuda_available() and vllm_available() else "hf"
    if backend not in ("hf", "vllm"):
        raise ValueError(f"unknown backend {backend!r} (auto, hf, vllm)")
    return backend


def sample_stats(entropy_sum: float | None, tokens: int) -> dict:
    """One response's record: ``entropy`` (nats per token, None when not measured) and ``tokens``."""
    return {"entropy": None if entropy_sum is None or tokens == 0 else entropy_sum / tokens, "tokens": tokens}


class EntropyMeter:
    """A transformers logits processor that adds up, per generated row, the entropy of the policy it samples from:
    softmax(logits / temperature) over the whole vocabulary (top_p does not truncate it, as in verl's
    ``actor/entropy``). It sees the logits before the temperature warper (transformers puts a caller's processors
    first) and changes nothing. A row counts until it has produced a stop token (that token included, as in verl's
    response mask); the tokens after it are padding."""

    def __init__(self, temperature: float, stop_ids: list[int]):
        self.temperature, self.stop_ids = temperature, list(stop_ids)
        self.sums = self.tokens = self.done = None

    def __call__(self, input_ids, scores):
        import torch

        if self.sums is None:
            rows = scores.shape[0]
            self.sums = torch.zeros(rows, dtype=torch.float64, device=scores.device)
            self.tokens = torch.zeros(rows, dtype=torch.long, device=scores.device)
            self.done = torch.zeros(rows, dtype=torch.bool, device=scores.device)
        else:  # the token chosen at the previous step: a stop token ends its row
            stops = torch.tensor(self.stop_ids, device=input_ids.device)
            self.done |= torch.isin(input_ids[:, -1], stops)
        z = scores.float() / self.temperature
        logp = torch.log_softmax(z, dim=-1)
        p = logp.exp()
        entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)
        live = ~self.done
        self.sums += torch.where(live, entropy.double(), torch.zeros_like(self.sums))
        self.tokens += live.long()
        return scores

    def stats(self) -> list[dict]:
        if self.sums is None:
            return []
        return [sample_stats(float(s), int(t)) for s, t in zip(self.sums.tolist(), self.tokens.tolist())]


class HFGenerator:
    """transformers ``generate``: batches of ``batch_size`` prompts, ``n`` sequences each, left padding."""

    name = "hf"

    def __init__(self, model_path: str, dtype: str = "auto", device: str | None = None, batch_size: int = 8,
                 trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = model_path
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=torch_dtype, trust_remote_code=trust_remote_code
        ).to(self.device)
        self.model.eval()
        self.batch_size = max(1, batch_size)
        self.stop_ids = stop_token_ids(self.tokenizer, model_path)

    def generate(self, prompts: list[str], s: SamplingSettings, add_special_tokens: bool = False,
                 desc: str = "generating") -> list[list[str]]:
        return self.generate_with_stats(prompts, s, add_special_tokens, desc)[0]

    def generate_with_stats(self, prompts: list[str], s: SamplingSettings, add_special_tokens: bool = False,
                            desc: str = "generating") -> tuple[list[list[str]], list[list[dict]]]:
        """(responses, per response ``{entropy, tokens}``): the exact mean per-token entropy of the sampling policy
        (:class:`EntropyMeter`); None for a greedy run."""
        import torch
        from tqdm.auto import tqdm
        from transformers import GenerationConfig, LogitsProcessorList
        from transformers import set_seed as hf_set_seed

        hf_set_seed(s.seed)
        sample = not s.greedy and s.temperature > 0
        gen_cfg = GenerationConfig(
            do_sample=sample,
            temperature=s.temperature if sample else None,
            top_p=s.top_p if sample else None,
            top_k=0 if sample else None,
            repetition_penalty=1.0,
            max_new_tokens=s.max_new_tokens,
            num_return_sequences=s.k,
            eos_token_id=self.stop_ids or None,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        # longest prompts first: less padding inside a batch, and an out-of-memory error shows up early
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out: list[list[str]] = [[] for _ in prompts]
        stats: list[list[dict]] = [[] for _ in prompts]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for idx in tqdm(batches, desc=desc, unit="batch"):
            enc = self.tokenizer(
                [prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=add_special_tokens
            ).to(self.device)
            meter = EntropyMeter(s.temperature, self.stop_ids) if sample else None
            with torch.no_grad():
                seqs = self.model.generate(**enc, generation_config=gen_cfg,
                                           logits_processor=LogitsProcessorList([meter] if meter else []))
            new = seqs[:, enc["input_ids"].shape[1] :]
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            rows = meter.stats() if meter else [sample_stats(None, _length(t, self.stop_ids)) for t in new.tolist()]
            for j, i in enumerate(idx):
                out[i] = texts[j * s.k : (j + 1) * s.k]
                stats[i] = rows[j * s.k : (j + 1) * s.k]
        return out, stats


def _length(ids: list[int], stop_ids: list[int]) -> int:
    """Generated tokens of one row, up to and including its first stop token."""
    for n, t in enumerate(ids):
        if t in stop_ids:
            return n + 1
    return len(ids)


class VLLMGenerator:
    """vLLM ``LLM.generate`` with ``SamplingParams(n=k, ...)`` (GPU)."""

    name = "vllm"

    def __init__(self, model_path: str, dtype: str = "auto", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None, seed: int = 0,
                 trust_remote_code: bool = False):
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError(
                "vLLM is not installed (pip install 'cadft-verl[vllm]' or pip install vllm); "
                "use --backend hf for transformers generation"
            ) from e
        from transformers import AutoTokenizer

        self.model_path = model_path
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        kwargs = dict(
            model=model_path,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            trust_remote_code=trust_remote_code,
            # the sampled tokens' log-probabilities under the sampling distribution (after the temperature), from
            # which generate_with_stats estimates the policy's entropy
            logprobs_mode="processed_logprobs",
        )
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self.llm = LLM(**kwargs)
        self.stop_ids = stop_token_ids(self.tokenizer, model_path)

    def generate(self, prompts: list[str], s: SamplingSettings, add_special_tokens: bool = False,
                 desc: str = "generating") -> list[list[str]]:
        return self.generate_with_stats(prompts, s, add_special_tokens, desc)[0]

    def generate_with_stats(self, prompts: list[str], s: SamplingSettings, add_special_tokens: bool = False,
                            desc: str = "generating") -> tuple[list[list[str]], list[list[dict]]]:
        """(responses, per response ``{entropy, tokens}``). vLLM does not return the whole distribution, so the
        entropy is estimated: the mean of the sampled tokens' negative log-probabilities under the sampling
        distribution (``logprobs_mode=processed_logprobs``), whose expectation is the policy's per-token entropy
        (with ``top_p`` < 1 that of the truncated distribution); None for a greedy run."""
        from vllm import SamplingParams

        params = SamplingParams(
            n=s.k,
            temperature=0.0 if s.greedy else s.temperature,
            top_p=1.0 if s.greedy else s.top_p,
            max_tokens=s.max_new_tokens,
            stop_token_ids=self.stop_ids or None,
            repetition_penalty=1.0,
            skip_special_tokens=True,
            logprobs=None if s.greedy or s.temperature == 0 else 0,  # 0: the sampled token's only
        )
        # token ids, so that the chat template's special tokens are not added twice (add_special_tokens=False)
        token_prompts = [
            {"prompt_token_ids": self.tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"]}
            for p in prompts
        ]
        print(f"[cadft_verl.eval] vLLM {desc}: {len(prompts)} prompts x k={s.k}", flush=True)
        outs = self.llm.generate(token_prompts, params, use_tqdm=True)
        texts = [[o.text for o in r.outputs] for r in outs]
        return texts, [[_vllm_stats(o) for o in r.outputs] for r in outs]


def _vllm_stats(output) -> dict:
    """One vLLM completion's ``{entropy, tokens}``: the mean negative log-probability of its sampled tokens."""
    ids, logprobs = list(getattr(output, "token_ids", None) or []), getattr(output, "logprobs", None)
    if not logprobs:
        return sample_stats(None, len(ids))
    total = -sum(step[tok].logprob for tok, step in zip(ids, logprobs, strict=True))
    return sample_stats(total, len(ids))


def make_generator(backend: str, model_path: str, **kw):
    """``backend`` in {auto, hf, vllm}; keyword arguments not used by that backend are ignored."""
    backend = resolve_backend(backend)
    if backend == "vllm":
        keys = ("dtype", "tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "seed",
                "trust_remote_code")
        return VLLMGenerator(model_path, **{k: v for k, v in kw.items() if k in keys and v is not None})
    keys = ("dtype", "device", "batch_size", "trust_remote_code")
    return HFGenerator(model_path, **{k: v for k, v in kw.items() if k in keys and v is not None})

