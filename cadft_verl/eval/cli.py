"""Command line: ``python -m cadft_verl.eval {run,compare,rescore,list} ...`` (see docs/eval.md)."""

from __future__ import annotations

import argparse
import os
import sys

from cadft_verl.tasks import BENCHMARKS as REGISTRY, PRESETS, BenchmarkError, available
from cadft_verl.math.prompts import TEMPLATES
from cadft_verl.eval.report import ReportError


def _run_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="HF model folder, verl FSDP checkpoint folder (.../global_step_N or .../global_step_N/actor: "
                   "merged with verl's model merger into huggingface_merged/ next to it), or hub name where online")
    p.add_argument("--out", required=True, help="output folder (samples.jsonl, metrics.json/.md/.png)")
    p.add_argument("--benchmarks", "--benchmark", nargs="+", default=["paper"], metavar="B",
                   help="names (" + ", ".join(REGISTRY) + "), presets (" + ", ".join(PRESETS)
                   + "), NAME=PATH (any JSONL/JSON/parquet file, or hf://OWNER/NAME[:CONFIG][@SPLIT]); "
                   "default: paper (MATH-500, Minerva, OlympiadBench, AIME24, AMC23)")
    p.add_argument("--benchmarks-dir", default=None,
                   help="folder with <name>/test.jsonl files (default: $CADFT_BENCHMARKS_DIR, "
                   "<cwd>/../shared/benchmarks, <repo>/../shared/benchmarks)")
    p.add_argument("--limit", type=int, default=None, help="only the first N problems of each benchmark")
    p.add_argument("--label", default=None, help="name of this model in tables/plots (default: model folder name)")
    p.add_argument("--template", default="qwen-boxed", choices=list(TEMPLATES), help="prompt template")
    p.add_argument("--k", "-k", "--n", type=int, default=16, dest="k", help="samples per problem (default 16)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy", action="store_true", help="one greedy sample per problem (greedy pass@1)")
    p.add_argument("--backend", default="auto", choices=["auto", "hf", "vllm"],
                   help="auto: vLLM when a GPU and vLLM are present, else transformers")
    p.add_argument("--batch-size", type=int, default=8, help="hf backend: prompts per generate() call")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--tensor-parallel-size", "--tp", type=int, default=1, help="vllm backend")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm backend")
    p.add_argument("--max-model-len", type=int, default=None, help="vllm backend")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--score-timeout", type=float, default=10.0, help="seconds per response (math-verify)")
    p.add_argument("--score-workers", type=int, default=None, help="scoring processes (default min(8, CPUs))")
    p.add_argument("--hub", action="store_true",
                   help="load a registered benchmark from the Hugging Face hub when its local file is missing")
    p.add_argument("--compare-with", nargs="*", default=[], metavar="LABEL=METRICS_JSON",
                   help="other runs to draw next to this one in metrics.png")
    p.add_argument("--plot-metric", default="avg@k", help="metric of the plot (avg@k, pass@1, maj@k, ...)")


def _compare_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--before", nargs="+", required=True, metavar="LABEL=METRICS_JSON",
                   help="one run per row, before GRPO, e.g. base=runs/base/metrics.json sft=... dft=... cadft=...")
    p.add_argument("--after", nargs="*", default=[], metavar="LABEL=METRICS_JSON",
                   help="the same rows after GRPO (labels must match --before)")
    p.add_argument("--out", required=True, help="output folder (cold_start.md/.json/.png)")
    p.add_argument("--metric", default="avg@k", help="avg@k (default, the paper's average@16), pass@1, maj@k ...")
    p.add_argument("--benchmarks", nargs="*", default=None, help="columns (default: those in every file)")
    p.add_argument("--title", default=None)
    p.add_argument("--name", default="cold_start", help="file name stem of the outputs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cadft_verl.eval", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _run_parser(sub.add_parser("run", help="generate + score + metrics/table/plot for one model"))
    _compare_parser(sub.add_parser("compare", help="cold-start table (base/SFT/DFT/CADFT, before/after GRPO)"))
    rs = sub.add_parser("rescore", help="score an existing samples.jsonl again (no generation)")
    rs.add_argument("--samples", required=True, help="samples.jsonl of a run (or its folder)")
    rs.add_argument("--out", required=True, help="output folder (may be the run folder itself)")
    rs.add_argument("--score-timeout", type=float, default=10.0)
    rs.add_argument("--score-workers", type=int, default=None)
    sub.add_parser("list", help="list registered benchmarks, presets and prompt templates")
    return parser


def _default_label(model: str) -> str:
    """The model's folder name; for a verl checkpoint, its global_step_N folder's."""
    path = os.path.abspath(model)
    for part in reversed(path.split(os.sep)):
        if part.startswith("global_step_"):
            return part
    return os.path.basename(os.path.normpath(model))


def check_sampling_args(args: argparse.Namespace) -> None:
    """Refuse, before any model work, ``--k`` < 1, a negative ``--temperature`` and a ``--plot-metric`` pass@K
    with K larger than the samples per problem (1 with ``--greedy``), naming the option."""
    from cadft_verl.eval.metrics import check_metric_k

    if args.k < 1:
        raise ValueError(f"--k must be >= 1 (samples per problem), got {args.k}")
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0, got {args.temperature}")
    check_metric_k(args.plot_metric, 1 if args.greedy else args.k, "--plot-metric")


def cmd_run(args: argparse.Namespace) -> int:
    from cadft_verl.eval.benchmarks import expand_benchmark_args, load_benchmark
    from cadft_verl.eval.model_path import resolve_model
    from cadft_verl.eval.runner import RunConfig, check_out_folder, run_eval

    check_out_folder(args.out)
    check_sampling_args(args)
    for arg in expand_benchmark_args(args.benchmarks):  # a bad benchmark is named before any model work
        load_benchmark(arg, args.benchmarks_dir, limit=1, hub_fallback=args.hub)
    model = resolve_model(args.model, fallback_cache=os.path.join(args.out, "merged_model"))
    source = args.model if os.path.abspath(os.path.expanduser(args.model)) != model else None
    cfg = RunConfig(
        model=model, model_source=source, out=args.out, benchmarks=args.benchmarks,
        label=args.label or _default_label(args.model),
        benchmarks_dir=args.benchmarks_dir, limit=args.limit, template=args.template, k=args.k,
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed,
        greedy=args.greedy, backend=args.backend, batch_size=args.batch_size, dtype=args.dtype,
        tensor_parallel_size=args.tensor_parallel_size, gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len, trust_remote_code=args.trust_remote_code,
        score_timeout=args.score_timeout, score_workers=args.score_workers, hub=args.hub,
        compare_with=args.compare_with, plot_metric=args.plot_metric,
    )
    run_eval(cfg)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from cadft_verl.eval.report import cold_start_markdown, cold_start_plot, cold_start_table, parse_labeled
    from cadft_verl.eval.runner import check_out_folder
    from cadft_verl.utils.files import write_json, write_text

    check_out_folder(args.out)
    table = cold_start_table(parse_labeled(args.before), parse_labeled(args.after), args.metric, args.benchmarks)
    paths = {k: os.path.abspath(os.path.join(args.out, f"{args.name}.{k}")) for k in ("md", "json", "png")}
    md = cold_start_markdown(table, args.title)
    write_text(paths["md"], md)
    write_json(paths["json"], table)
    cold_start_plot(table, paths["png"], args.title)
    print(md)
    print("[cadft_verl.eval] outputs:")
    for k, p in paths.items():
        print(f"  {k:4s} {p}")
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from cadft_verl.eval.runner import rescore

    rescore(args.samples, args.out, args.score_timeout, args.score_workers)
    return 0


def cmd_list(_: argparse.Namespace) -> int:
    from cadft_verl.eval.benchmarks import benchmarks_dir, default_path

    bdir = benchmarks_dir()
    print(f"benchmarks folder: {bdir}")
    for s in REGISTRY.values():
        try:
            where = default_path(s, bdir)
        except BenchmarkError:
            where = f"(missing: {os.path.join(bdir, s.default_path)})"
        print(f"  {s.name:14s} {s.display:14s} question={'/'.join(s.question_fields)} gold={s.gold_kind}"
              f"({s.gold_field}) {where}")
    print("presets: " + "; ".join(f"{k} = {' '.join(v)}" for k, v in PRESETS.items()))
    print("templates: " + ", ".join(TEMPLATES))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"run": cmd_run, "compare": cmd_compare, "rescore": cmd_rescore, "list": cmd_list}[args.cmd](args)
    except (BenchmarkError, ReportError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


__all__ = ["available", "build_parser", "main"]
