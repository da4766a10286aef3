"""Typed ``eval:`` block of the one launch (docs/eval.md). Its YAML, with the same comment above every field, is in
``recipes/main.yaml``; ``tests/launcher/test_recipes_on_cpu.py`` keeps the two equal.

``EvalConfig.from_config(config)`` reads and validates the block of a launch config (values only: whether a
benchmark exists is checked by the eval stage, which knows where to look); ``run_kwargs()`` gives the settings
``cadft_verl.eval.runner.RunConfig`` takes under the same names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cadft_verl.config.block import TypedBlock
from cadft_verl.eval.metrics import check_metric_k

#: the models of a run the eval stage can evaluate, in report order
MODELS = ("base", "stage1", "stage2")
#: generation backends (auto: vLLM when a GPU and vLLM are present, else transformers)
BACKENDS = ("auto", "hf", "vllm")
#: model dtypes
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: report metrics: avg@k, pass@k, maj@k, greedy@1, with k or a number
_METRIC = re.compile(r"(avg|pass|maj|greedy)@(k|[1-9][0-9]*)")
#: keys passed to RunConfig under the same name (the rest: which benchmarks and models, and the report's metric)
RUN_KEYS = ("limit", "k", "greedy", "temperature", "top_p", "max_new_tokens", "template", "backend", "batch_size",
            "benchmarks_dir", "hub", "seed", "dtype", "tensor_parallel_size", "gpu_memory_utilization",
            "max_model_len", "score_timeout", "score_workers")


@dataclass
class EvalConfig(TypedBlock):
    """The eval stage: which models of the run, on which benchmarks, with which sampling, and the report's metric."""

    PREFIX = "eval"

    # benchmarks every model is evaluated on: registered names (python -m cadft_verl.eval list), presets (paper:
    # MATH-500, Minerva, OlympiadBench, AIME24, AMC23; all), NAME=PATH (any JSONL/JSON/parquet file or
    # hf://OWNER/NAME[:CONFIG][@SPLIT]); a missing file or an unknown name stops the launch before any worker starts
    benchmarks: list[str] = field(default_factory=lambda: ["paper"])

    # also evaluated when their file is found (benchmarks_dir, $CADFT_BENCHMARKS_DIR, ../shared/benchmarks, or the hub
    # with hub=true), otherwise skipped with a one-line notice; same forms as benchmarks
    optional_benchmarks: list[str] = field(default_factory=list)

    # which of the run's models to evaluate: base, stage1 (the warm start's HF export), stage2 (the RL model)
    models: list[str] = field(default_factory=lambda: list(MODELS))

    # only the first N problems of each benchmark (null: all)
    limit: int | None = None

    # samples per problem (the paper's average@16)
    k: int = 16

    # one greedy sample per problem instead (greedy pass@1; k is then 1)
    greedy: bool = False

    # sampling temperature
    temperature: float = 1.0

    # nucleus sampling top_p
    top_p: float = 1.0

    # longest response in tokens
    max_new_tokens: int = 4096

    # prompt template (qwen-boxed: chat template + "put your final answer within \boxed{}"; chat, raw-boxed, raw)
    template: str = "qwen-boxed"

    # generation: auto (vLLM when a GPU and vLLM are present, else transformers) | hf | vllm
    backend: str = "auto"

    # hf backend: prompts per generate() call
    batch_size: int = 8

    # folder with <name>/test.jsonl benchmark files (null: $CADFT_BENCHMARKS_DIR, else ../shared/benchmarks)
    benchmarks_dir: str | None = None

    # load a registered benchmark from the Hugging Face hub when its local file is missing (needs network access)
    hub: bool = False

    # sampling seed
    seed: int = 0

    # model dtype: auto (bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16
    dtype: str = "auto"

    # vllm backend: tensor parallel size
    tensor_parallel_size: int = 1

    # vllm backend: share of GPU memory vLLM may take
    gpu_memory_utilization: float = 0.9

    # vllm backend: longest prompt + response (null: the model's)
    max_model_len: int | None = None

    # seconds per response for math-verify scoring (hard deadline)
    score_timeout: float = 10.0

    # scoring processes (null: min(8, CPUs))
    score_workers: int | None = None

    # metric of the cold-start report: avg@k (the paper's average@16), pass@1, maj@k, pass@K (K <= k) ...
    metric: str = "avg@k"

    # RL readiness (docs/eval.md): also sample readiness_k answers per problem at the RL stage's rollout temperature
    # and top_p, and report avg@k, pass@k, headroom (pass@k - avg@k) and the policy's entropy on its samples beside
    # the report's metric (no second generation when the report's own samples are those)
    readiness: bool = True

    # samples per problem for RL readiness (the embedded CPU default: 8)
    readiness_k: int = 16

    # temperature of the readiness samples (null: the RL stage's actor_rollout_ref.rollout.temperature)
    readiness_temperature: float | None = None

    # benchmarks of the readiness samples, by name, among those evaluated (null: all of them)
    readiness_benchmarks: list[str] | None = None

    def __post_init__(self):
        self.benchmarks = _names(self.benchmarks)
        self.optional_benchmarks = _names(self.optional_benchmarks)
        self.models = _names(self.models)
        if self.readiness_benchmarks is not None:
            self.readiness_benchmarks = _names(self.readiness_benchmarks)
        self.validate()

    def validate(self) -> None:
        if not self.models or any(m not in MODELS for m in self.models):
            raise ValueError(f"eval.models: {self.models} is not a non-empty list of {list(MODELS)}")
        for key in ("k", "max_new_tokens", "batch_size", "tensor_parallel_size", "readiness_k"):
            _positive_int(key, getattr(self, key))
        for key in ("limit", "max_model_len"):
            if getattr(self, key) is not None:
                _positive_int(key, getattr(self, key), " or null")
        if self.score_workers is not None:  # 0: score in the launch's own process
            _positive_int("score_workers", self.score_workers, " (0: in this process) or null", least=0)
        for key in ("greedy", "hub", "readiness"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"eval.{key} must be true or false, got {getattr(self, key)!r}")
        for key in ("temperature", "readiness_temperature"):
            if getattr(self, key) is not None and _number(key, getattr(self, key)) < 0:
                raise ValueError(f"eval.{key} must be >= 0, got {getattr(self, key)!r}")
        if not 0.0 < _number("top_p", self.top_p) <= 1.0:
            raise ValueError(f"eval.top_p must be in (0, 1], got {self.top_p!r}")
        if not 0.0 < _number("gpu_memory_utilization", self.gpu_memory_utilization) <= 1.0:
            raise ValueError(f"eval.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization!r}")
        if _number("score_timeout", self.score_timeout) <= 0:
            raise ValueError(f"eval.score_timeout must be > 0, got {self.score_timeout!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"eval.backend: {self.backend!r} is not one of {list(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"eval.dtype: {self.dtype!r} is not one of {list(DTYPES)}")
        if not isinstance(self.metric, str) or not _METRIC.fullmatch(self.metric):
            raise ValueError(f"eval.metric: {self.metric!r} is not avg@k, pass@k, maj@k or greedy@1 (k or a number)")
        check_metric_k(self.metric, 1 if self.greedy else self.k, "eval.metric" + (" (eval.greedy: k is 1)"
                                                                                   if self.greedy else " (eval.k)"))

    def run_kwargs(self) -> dict:
        """The settings ``RunConfig`` takes under the same names; unset (null) ones are left to its defaults."""
        return {k: getattr(self, k) for k in RUN_KEYS if getattr(self, k) is not None}

    def readiness_sampling(self, rollout) -> dict | None:
        """The readiness run's sampling (``k``, ``temperature``, ``top_p``, ``greedy``: ``RunConfig``'s names), from
        this block and the RL stage's rollout config (``actor_rollout_ref.rollout``: its temperature unless
        ``readiness_temperature``, its top_p); None when ``readiness`` is off. A negative rollout temperature or a
        top_p outside (0, 1] is refused, naming the option."""
        if not self.readiness:
            return None
        rollout = rollout or {}
        temperature = self.readiness_temperature
        if temperature is None:
            temperature = _rollout_number(rollout, "temperature", 1.0)
            if temperature < 0:
                raise ValueError(f"actor_rollout_ref.rollout.temperature must be >= 0 (the eval stage samples its "
                                 f"RL-readiness answers at it), got {temperature!r}")
        top_p = _rollout_number(rollout, "top_p", 1.0)
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"actor_rollout_ref.rollout.top_p must be in (0, 1], got {top_p!r}")
        return {"k": self.readiness_k, "temperature": float(temperature), "top_p": top_p, "greedy": False}

    @classmethod
    def from_config(cls, config) -> "EvalConfig":
        """The ``eval`` block of a launch config, typed and validated; a config without one is an error."""
        block = config.get("eval")
        if block is None:
            raise ValueError("eval: the stages include eval but the config has no eval block (recipes/main.yaml)")
        return cls.from_mapping(block)


def _rollout_number(rollout, key: str, default: float) -> float:
    value = rollout.get(key, default)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"actor_rollout_ref.rollout.{key} must be a number, got {value!r}")
    return float(value)


def _names(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _number(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"eval.{key} must be a number, got {value!r}")
    return float(value)


def _positive_int(key: str, value, alt: str = "", least: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"eval.{key} must be an int >= {least}{alt}, got {value!r}")
