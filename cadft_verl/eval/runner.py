"""``run``: generate k responses per problem, score them, write samples / metrics / table / plot; ``rescore``: score
an existing samples file again.

Outputs are replaced whole (``cadft_verl.utils.files``): ``samples.jsonl`` is written to a temporary file and takes
the old one's place only once the run is complete, then ``metrics.md``, ``metrics.png`` and last ``metrics.json``; a
run that fails or is killed leaves the previous run's outputs as they were.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

from cadft_verl.eval.benchmarks import Benchmark, BenchmarkError, expand_benchmark_args, load_benchmark
from cadft_verl.eval.generation import SamplingSettings, make_generator, resolve_backend
from cadft_verl.eval.metrics import average_metrics, benchmark_metrics, check_metric_k, resolve_metric
from cadft_verl.math.prompts import get_template
from cadft_verl.eval.report import parse_labeled, plot_models, run_markdown
from cadft_verl.tasks import BENCHMARKS as REGISTRY
from cadft_verl.utils.files import atomic_path, read_json, read_jsonl, write_json, write_jsonl, write_text

DEFAULT_BENCHMARKS = ["paper"]
#: the fields every row of a samples.jsonl needs to be scored again
SAMPLE_FIELDS = ("benchmark", "problem_id", "sample", "response", "gold")


class SamplesError(ValueError):
    """A samples file that cannot be scored again; the message names the file and the row."""


@dataclass(kw_only=True)
class RunConfig(SamplingSettings):
    """One model's evaluation: the sampling settings of :class:`SamplingSettings` (``k``, ``temperature``, ``top_p``,
    ``max_new_tokens``, ``seed``, ``greedy``: defined once, there) and everything else, by keyword.

    A subclass rather than a ``sampling`` field, so that ``dataclasses.fields`` and ``asdict`` list every setting
    flat under the name the CLI, the eval block and ``metrics.json`` use (the eval stage builds a ``RunConfig`` from
    its block's keys and writes ``asdict`` to JSON). ``greedy`` sets ``k`` = 1 on the config itself, so what it
    records is what was run."""

    model: str
    out: str
    # what --model named when that was a verl checkpoint (``model`` is then its merged or exported HF folder)
    model_source: str | None = None
    benchmarks: list[str] = field(default_factory=lambda: list(DEFAULT_BENCHMARKS))
    label: str | None = None
    benchmarks_dir: str | None = None
    limit: int | None = None
    template: str = "qwen-boxed"
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


def check_out_folder(path: str, option: str = "--out") -> str:
    """``path`` as an output folder: refused (``ValueError`` naming it) when it, or a folder above it, is a file."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        where = "" if probe == os.path.abspath(path) else f" ({probe} is a file)"
        raise ValueError(f"{option} {path}: not a folder{where}; name a folder (it is created if missing)")
    return path


def _output_paths(out: str) -> dict[str, str]:
    return {key: os.path.join(out, name) for key, name in
            (("samples", "samples.jsonl"), ("metrics", "metrics.json"), ("table", "metrics.md"),
             ("plot", "metrics.png"))}


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
    benches = [
        load_benchmark(a, cfg.benchmarks_dir, limit=cfg.limit, hub_fallback=cfg.hub)
        for a in expand_benchmark_args(cfg.benchmarks)
    ]
    for bench in benches:  # samples are keyed by (benchmark, problem id, sample): ids must tell problems apart
        first: dict[str, str] = {}
        for p in bench.problems:
            if p.id in first:
                raise BenchmarkError(
                    f"{bench.source}: problem id {p.id!r} is used twice ({first[p.id]} and {p.location}); its samples "
                    "could not be told apart. Give each problem its own id")
            first[p.id] = p.location
    return benches


def run_eval(cfg: RunConfig, generator=None) -> dict:
    """Run the evaluation; returns the metrics dict (also written to ``cfg.out``/metrics.json).

    ``generator``: an object with ``tokenizer``, ``name`` and ``generate(prompts, settings, add_special_tokens,
    desc)`` (for tests or reuse); by default one is built from ``cfg.backend`` and ``cfg.model``.
    """
    from cadft_verl.reward import ScoringPool, score_batch

    t0 = time.time()
    check_out_folder(cfg.out)
    template = get_template(cfg.template)
    settings = cfg.sampling()
    check_metric_k(cfg.plot_metric, settings.k, "plot metric")
    benches = load_benchmarks(cfg)  # fail on bad names / files before loading the model
    extra = parse_labeled(cfg.compare_with) if cfg.compare_with else []
    backend = generator.name if generator is not None else resolve_backend(cfg.backend)
    label = cfg.label or os.path.basename(os.path.normpath(cfg.model))
    if generator is None:
        generator = make_generator(
            backend, cfg.model, dtype=cfg.dtype, batch_size=cfg.batch_size,
            tensor_parallel_size=cfg.tensor_parallel_size, gpu_memory_utilization=cfg.gpu_memory_utilization,
            max_model_len=cfg.max_model_len, seed=cfg.seed, trust_remote_code=cfg.trust_remote_code,
        )
    tokenizer = generator.tokenizer
    paths = _output_paths(cfg.out)
    per_bench: dict[str, dict] = {}
    bench_info: dict[str, dict] = {}
    # the samples go to a temporary file that replaces samples.jsonl only when everything below has worked
    with atomic_path(paths["samples"]) as samples_tmp:
        with open(samples_tmp, "w", encoding="utf-8") as fout, ScoringPool(
            num_workers=cfg.score_workers, timeout=cfg.score_timeout
        ) as pool:
            for bench in benches:
                prompts = [template.render(p.question, tokenizer) for p in bench.problems]
                print(f"[cadft_verl.eval] {bench.display}: {len(prompts)} problems x k={settings.k} "
                      f"({bench.source})", flush=True)
                responses, stats = _generate(generator, prompts, settings, not template.use_chat_template,
                                             bench.name)
                items = [(r, p.gold) for p, rs in zip(bench.problems, responses, strict=True) for r in rs]
                scored = score_batch(items, timeout=cfg.score_timeout, pool=pool, progress=f"scoring {bench.name}")
                per_problem, pos = [], 0
                for p, prompt, rs, st in zip(bench.problems, prompts, responses, stats, strict=True):
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
                            # the policy's mean per-token entropy on this response (nats; None: not measured)
                            "entropy": st[j]["entropy"],
                            "tokens": st[j]["tokens"],
                        }
                        fout.write(json.dumps(row, ensure_ascii=False) + "\n")
                        group.append({"correct": row["correct"], "pred": s["pred"], "no_answer": s["no_answer"],
                                      "timed_out": s["timed_out"], "error": s["error"],
                                      "entropy": row["entropy"], "tokens": row["tokens"]})
                    per_problem.append(group)
                m = benchmark_metrics(per_problem, greedy=settings.greedy)
                m["display"] = bench.display
                per_bench[bench.name] = m
                bench_info[bench.name] = {"source": bench.source, "n_problems": len(bench),
                                          "skipped": bench.skipped}
                key = f"avg@{settings.k}"
                print(f"[cadft_verl.eval] {bench.display}: {key} = {100 * m[key]['mean']:.2f} ± "
                      f"{100 * m[key]['se']:.2f} %, no answer {100 * m['no_answer_rate']:.1f} %", flush=True)
            score_stats = dict(pool.stats)

        result = {
            "settings": {
                "label": label,
                "model": os.path.abspath(cfg.model) if os.path.exists(cfg.model) else cfg.model,
                "model_source": os.path.abspath(cfg.model_source) if cfg.model_source else None,
                "template": template.record(),
                **asdict(settings),
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
        shown = resolve_metric(cfg.plot_metric, settings.k)
        result["_path"] = os.path.abspath(paths["metrics"])
        plot_models([(label, result), *extra], paths["plot"], metric=cfg.plot_metric,
                    title=f"{shown} ({template.name}, k={settings.k}, T={settings.temperature})")
        result.pop("_path")
    _write_results(result, paths)
    return _report_outputs(result, paths)


def _generate(generator, prompts: list[str], settings, add_special_tokens: bool, desc: str):
    """(responses, per response ``{entropy, tokens}``): a generator without ``generate_with_stats`` measures no
    entropy."""
    if hasattr(generator, "generate_with_stats"):
        return generator.generate_with_stats(prompts, settings, add_special_tokens=add_special_tokens, desc=desc)
    responses = generator.generate(prompts, settings, add_special_tokens=add_special_tokens, desc=desc)
    return responses, [[{"entropy": None, "tokens": None} for _ in rs] for rs in responses]


def _write_results(result: dict, paths: dict) -> None:
    """The table, then metrics.json: the last file written, the record of a complete run."""
    write_text(paths["table"], run_markdown(result))
    write_json(paths["metrics"], result)


def read_samples(src: str) -> list[dict]:
    """The rows of a samples file of :func:`run_eval`, checked: a JSON object each, with :data:`SAMPLE_FIELDS`, and
    each (benchmark, problem id, sample) once. Errors name the file and the row (1-based, blank lines not counted);
    a last line cut by a kill is dropped with a warning."""
    if not os.path.isfile(src):
        raise SamplesError(f"samples file not found: {src}")
    rows = read_jsonl(src)
    if not rows:
        raise SamplesError(f"{src}: no samples (the file is empty); nothing to score")
    seen: dict[tuple, int] = {}
    for n, r in enumerate(rows, 1):
        if not isinstance(r, dict):
            raise SamplesError(f"{src}: row {n} is not a JSON object")
        missing = [k for k in SAMPLE_FIELDS if k not in r]
        if missing:
            raise SamplesError(
                f"{src}: row {n} has no {', '.join(repr(k) for k in missing)} field; rows of "
                f"`python -m cadft_verl.eval run` have {', '.join(SAMPLE_FIELDS)}")
        if not isinstance(r["response"], str):
            raise SamplesError(f"{src}: row {n}: 'response' is {type(r['response']).__name__}, not text")
        key = (r["benchmark"], str(r["problem_id"]), r["sample"])
        if key in seen:
            raise SamplesError(
                f"{src}: rows {seen[key]} and {n} are both sample {r['sample']!r} of problem "
                f"{r['problem_id']!r} of {r['benchmark']!r}: a problem id used twice, whose samples would be scored "
                "as one problem's. Give each problem its own id")
        seen[key] = n
    return rows


def rescore(samples: str, out: str, score_timeout: float = 10.0, score_workers: int | None = None) -> dict:
    """Score an existing ``samples.jsonl`` again (no generation), e.g. after a grader change, and write the same
    outputs as :func:`run_eval` into ``out`` (which may be the samples' own folder: every file is replaced whole).
    Settings come from the ``metrics.json`` next to the samples file."""
    from cadft_verl.reward import score_batch

    check_out_folder(out)
    src = os.path.join(samples, "samples.jsonl") if os.path.isdir(samples) else samples
    rows = read_samples(src)
    old = read_json(os.path.join(os.path.dirname(os.path.abspath(src)), "metrics.json"), tolerant=True)
    settings = dict(old.get("settings") or {}) if isinstance(old, dict) else {}
    t0 = time.time()
    scored = score_batch([(r["response"], r["gold"]) for r in rows], timeout=score_timeout,
                         num_workers=score_workers, progress="rescoring")
    groups: dict[str, dict[str, list[dict]]] = {}
    for r, s in zip(rows, scored, strict=True):
        r.update(extracted_answer=s["pred"], correct=bool(s["acc"]), no_answer=s["no_answer"],
                 timed_out=s["timed_out"], error=s["error"])
        groups.setdefault(r["benchmark"], {}).setdefault(str(r["problem_id"]), []).append(
            {"correct": r["correct"], "pred": s["pred"], "no_answer": s["no_answer"],
             "timed_out": s["timed_out"], "error": s["error"], "entropy": r.get("entropy"),
             "tokens": r.get("tokens")})
    greedy = bool(settings.get("greedy"))
    per_bench = {}
    for name, probs in groups.items():
        m = benchmark_metrics(list(probs.values()), greedy=greedy)
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
    paths = _output_paths(out)
    write_jsonl(paths["samples"], rows)
    plot_models([(settings["label"], result)], paths["plot"], title=f"{settings['label']} (rescored)")
    _write_results(result, paths)
    return _report_outputs(result, paths)


def _report_outputs(result: dict, paths: dict) -> dict:
    """Print the run's table and where each output is; record the paths in the result."""
    print(run_markdown(result))
    print("[cadft_verl.eval] outputs:")
    for key, p in paths.items():
        print(f"  {key:8s} {os.path.abspath(p)}")
    result["outputs"] = {key: os.path.abspath(p) for key, p in paths.items()}
    return result
