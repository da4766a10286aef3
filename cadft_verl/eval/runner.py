"""``run``: generate k responses per problem, score them, write samples / metrics / table / plot."""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

from cadft_verl.eval.benchmarks import Benchmark, expand_benchmark_args, load_benchmark
from cadft_verl.eval.generation import SamplingSettings, make_generator, resolve_backend
from cadft_verl.eval.metrics import average_metrics, benchmark_metrics, resolve_metric
from cadft_verl.math.prompts import get_template
from cadft_verl.eval.report import parse_labeled, plot_models, run_markdown

DEFAULT_BENCHMARKS = ["paper"]


@dataclass
class RunConfig:
    model: str
    out: str
    # what --model named when that was a verl checkpoint (``model`` is then its merged or exported HF folder)
    model_source: str | None = None
    benchmarks: list[str] = field(default_factory=lambda: list(DEFAULT_BENCHMARKS))
    label: str | None = None
    benchmarks_dir: str | None = None
    limit: int | None = None
    template: str = "qwen-boxed"
    k: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 4096
    seed: int = 0
    greedy: bool = False
    backend: str = "auto"
    batch_size: int = 8
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    trust_remote_code: bool = False
    score_timeout: float = 10.0
    score_workers: int | None = None
    hub: bool = False
    compare_with: list[str] = field(default_factory=list)
    plot_metric: str = "avg@k"


def _versions(backend: str) -> dict:
    out = {}
    mods = ("cadft_verl", "transformers", "torch", "math_verify", "verl") + (("vllm",) if backend == "vllm" else ())
    for mod in mods:
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception:  # noqa: BLE001
            out[mod] = None
    return out


def load_benchmarks(cfg: RunConfig) -> list[Benchmark]:
    return [
        load_benchmark(a, cfg.benchmarks_dir, limit=cfg.limit, hub_fallback=cfg.hub)
        for a in expand_benchmark_args(cfg.benchmarks)
    ]


def run_eval(cfg: RunConfig, generator=None) -> dict:
    """Run the evaluation; returns the metrics dict (also written to ``cfg.out``/metrics.json).

    ``generator``: an object with ``tokenizer``, ``name`` and ``generate(prompts, settings, add_special_tokens,
    desc)`` (for tests or reuse); by default one is built from ``cfg.backend`` and ``cfg.model``.
    """
    from cadft_verl.reward import ScoringPool, score_batch

    t0 = time.time()
    template = get_template(cfg.template)
    settings = SamplingSettings(cfg.k, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed, cfg.greedy)
    benches = load_benchmarks(cfg)  # fail on bad names / files before loading the model
    extra = parse_labeled(cfg.compare_with) if cfg.compare_with else []
    os.makedirs(cfg.out, exist_ok=True)
    backend = generator.name if generator is not None else resolve_backend(cfg.backend)
    label = cfg.label or os.path.basename(os.path.normpath(cfg.model))
    if generator is None:
        generator = make_generator(
            backend, cfg.model, dtype=cfg.dtype, batch_size=cfg.batch_size,
            tensor_parallel_size=cfg.tensor_parallel_size, gpu_memory_utilization=cfg.gpu_memory_utilization,
            max_model_len=cfg.max_model_len, seed=cfg.seed, trust_remote_code=cfg.trust_remote_code,
        )
    tokenizer = generator.tokenizer
    samples_path = os.path.join(cfg.out, "samples.jsonl")
    per_bench: dict[str, dict] = {}
    bench_info: dict[str, dict] = {}
    with open(samples_path, "w", encoding="utf-8") as fout, ScoringPool(
        num_workers=cfg.score_workers, timeout=cfg.score_timeout
    ) as pool:
        for bench in benches:
            prompts = [template.render(p.question, tokenizer) for p in bench.problems]
            print(f"[cadft_verl.eval] {bench.display}: {len(prompts)} problems x k={settings.n} ({bench.source})",
                  flush=True)
            responses = generator.generate(
                prompts, settings, add_special_tokens=not template.use_chat_template, desc=bench.name
            )
            items = [(r, p.gold) for p, rs in zip(bench.problems, responses, strict=True) for r in rs]
            scored = score_batch(items, timeout=cfg.score_timeout, pool=pool, progress=f"scoring {bench.name}")
            per_problem, pos = [], 0
            for p, prompt, rs in zip(bench.problems, prompts, responses, strict=True):
                group = []
                for j, r in enumerate(rs):
                    s = scored[pos]
                    pos += 1
                    row = {
                        "benchmark": bench.name,
                        "problem_id": p.id,
                        "sample": j,
                        "prompt": prompt,
                        "response": r,
                        "extracted_answer": s["pred"],
                        "gold": p.gold,
                        "correct": bool(s["acc"]),
                        "no_answer": s["no_answer"],
                        "timed_out": s["timed_out"],
                        "error": s["error"],
                    }
                    fout.write(json.dumps(row, ensure_ascii=False) + "\n")
                    group.append({"correct": row["correct"], "pred": s["pred"], "no_answer": s["no_answer"],
                                  "timed_out": s["timed_out"], "error": s["error"]})
                per_problem.append(group)
            fout.flush()
            m = benchmark_metrics(per_problem, greedy=settings.greedy)
            m["display"] = bench.display
            per_bench[bench.name] = m
            bench_info[bench.name] = {"source": bench.source, "n_problems": len(bench), "skipped": bench.skipped}
            key = f"avg@{settings.n}"
            print(f"[cadft_verl.eval] {bench.display}: {key} = {100 * m[key]['mean']:.2f} ± "
                  f"{100 * m[key]['se']:.2f} %, no answer {100 * m['no_answer_rate']:.1f} %", flush=True)
        score_stats = dict(pool.stats)

    result = {
        "settings": {
            "label": label,
            "model": os.path.abspath(cfg.model) if os.path.exists(cfg.model) else cfg.model,
            "model_source": os.path.abspath(cfg.model_source) if cfg.model_source else None,
            "template": template.record(),
            "k": settings.n,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_new_tokens": settings.max_new_tokens,
            "seed": settings.seed,
            "greedy": settings.greedy,
            "backend": backend,
            "limit": cfg.limit,
            "benchmarks": bench_info,
            "score_timeout": cfg.score_timeout,
            "scoring": score_stats,
            "config": asdict(cfg),
            "command": " ".join(sys.argv),
            "versions": _versions(backend),
            "started": _dt.datetime.fromtimestamp(t0, _dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - t0, 1),
        },
        "benchmarks": per_bench,
        "average": average_metrics(per_bench),
    }
    paths = {
        "samples": samples_path,
        "metrics": os.path.join(cfg.out, "metrics.json"),
        "table": os.path.join(cfg.out, "metrics.md"),
        "plot": os.path.join(cfg.out, "metrics.png"),
    }
    with open(paths["metrics"], "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    with open(paths["table"], "w", encoding="utf-8") as f:
        f.write(run_markdown(result))
    result["_path"] = os.path.abspath(paths["metrics"])
    shown = resolve_metric(cfg.plot_metric, settings.n)
    plot_models([(label, result), *extra], paths["plot"], metric=cfg.plot_metric,
                title=f"{shown} ({template.name}, k={settings.n}, T={settings.temperature})")
    result.pop("_path")
    return _report_outputs(result, paths)


def rescore(samples: str, out: str, score_timeout: float = 10.0, score_workers: int | None = None) -> dict:
    """Score an existing ``samples.jsonl`` again (no generation), e.g. after a grader change, and write the same
    outputs as :func:`run_eval` into ``out``. Settings come from the ``metrics.json`` next to the samples file."""
    from cadft_verl.eval.benchmarks import BenchmarkError
    from cadft_verl.math.rows import read_jsonl
    from cadft_verl.reward import score_batch

    src = os.path.join(samples, "samples.jsonl") if os.path.isdir(samples) else samples
    if not os.path.isfile(src):
        raise BenchmarkError(f"samples file not found: {src}")
    rows = []
    for raw in read_jsonl(src):
        if raw.error is not None:
            raise BenchmarkError(f"{raw.location}: {raw.error.message}")
        rows.append(raw.data)
    old_metrics = os.path.join(os.path.dirname(os.path.abspath(src)), "metrics.json")
    settings = {}
    if os.path.isfile(old_metrics):
        with open(old_metrics, encoding="utf-8") as f:
            settings = json.load(f).get("settings", {})
    t0 = time.time()
    scored = score_batch([(r["response"], r["gold"]) for r in rows], timeout=score_timeout,
                         num_workers=score_workers, progress="rescoring")
    os.makedirs(out, exist_ok=True)
    groups: dict[str, dict[str, list[dict]]] = {}
    paths = {k: os.path.join(out, v) for k, v in
             (("samples", "samples.jsonl"), ("metrics", "metrics.json"), ("table", "metrics.md"),
              ("plot", "metrics.png"))}
    same = os.path.abspath(paths["samples"]) == os.path.abspath(src)
    with open(paths["samples"] + (".tmp" if same else ""), "w", encoding="utf-8") as fout:
        for r, s in zip(rows, scored, strict=True):
            r.update(extracted_answer=s["pred"], correct=bool(s["acc"]), no_answer=s["no_answer"],
                     timed_out=s["timed_out"], error=s["error"])
            fout.write(json.dumps(r, ensure_ascii=False) + "\n")
            groups.setdefault(r["benchmark"], {}).setdefault(str(r["problem_id"]), []).append(
                {"correct": r["correct"], "pred": s["pred"], "no_answer": s["no_answer"],
                 "timed_out": s["timed_out"], "error": s["error"]})
    if same:
        os.replace(paths["samples"] + ".tmp", paths["samples"])
    greedy = bool(settings.get("greedy"))
    per_bench = {}
    for name, probs in groups.items():
        m = benchmark_metrics(list(probs.values()), greedy=greedy)
        from cadft_verl.tasks import BENCHMARKS as REGISTRY

        m["display"] = REGISTRY[name].display if name in REGISTRY else name
        per_bench[name] = m
    k = max(m["k"] for m in per_bench.values())
    settings = {**settings, "k": settings.get("k", k), "rescored_from": os.path.abspath(src),
                "score_timeout": score_timeout, "seconds_rescoring": round(time.time() - t0, 1)}
    settings.setdefault("label", os.path.basename(os.path.dirname(os.path.abspath(src))))
    settings.setdefault("template", {"name": "?"})
    for key in ("temperature", "top_p", "max_new_tokens", "seed", "backend", "model"):
        settings.setdefault(key, None)
    settings.setdefault("greedy", greedy)
    result = {"settings": settings, "benchmarks": per_bench, "average": average_metrics(per_bench)}
    with open(paths["metrics"], "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    with open(paths["table"], "w", encoding="utf-8") as f:
        f.write(run_markdown(result))
    plot_models([(settings["label"], result)], paths["plot"], title=f"{settings['label']} (rescored)")
    return _report_outputs(result, paths)


def _report_outputs(result: dict, paths: dict) -> dict:
    """Print the run's table and where each output is; record the paths in the result."""
    print(run_markdown(result))
    print("[cadft_verl.eval] outputs:")
    for key, p in paths.items():
        print(f"  {key:8s} {os.path.abspath(p)}")
    result["outputs"] = {key: os.path.abspath(p) for key, p in paths.items()}
    return result
