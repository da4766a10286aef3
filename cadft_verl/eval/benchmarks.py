"""Benchmark loading for evaluation: locate a benchmark's file, read it, turn its rows into problems with golds.

Benchmarks are the tasks of :mod:`cadft_verl.tasks` that have held-out problems (``BENCHMARKS``, by name or alias;
presets ``paper`` and ``all``); adding a benchmark = a task there. A benchmark that is not registered still works
when given a file (``--benchmarks myset=/path/test.jsonl``): its fields are inferred
(:func:`cadft_verl.tasks.base.infer_task`).

File layouts accepted (:mod:`cadft_verl.math.rows`): JSON lines (``.jsonl``; also any other extension holding
lines), a JSON array or ``{"data": [...]}`` (``.json``), parquet; a UTF-8 byte-order mark and CRLF line ends are
fine; the Qwen2.5-Math evaluation layout ``<benchmarks dir>/<name>/test.jsonl``; hub datasets
``hf://owner/name[:config][@split]`` through ``datasets`` (needs network access).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from cadft_verl.math.rows import ReadError, hub_uri, read_hub, read_jsonl, read_rows
from cadft_verl.tasks import PRESETS, get_benchmark
from cadft_verl.tasks.base import BenchmarkError, Task, infer_task
from cadft_verl.utils.paths import ENV_VAR as ENV_BENCHMARKS_DIR
from cadft_verl.utils.paths import benchmark_dir_candidates, find_benchmarks_dir

__all__ = [
    "Benchmark", "Problem", "benchmarks_dir", "default_path", "expand_benchmark_args", "file_rows", "hub_rows",
    "load_benchmark", "parse_benchmark_arg",
]


# ------------------------------------------------------------------------------------------------- locating
def benchmarks_dir(explicit: str | None = None) -> str:
    """``explicit``, else ``cadft_verl.utils.paths.find_benchmarks_dir()`` (env ``CADFT_BENCHMARKS_DIR``,
    ``<cwd>/../shared/benchmarks``, ``<repo root>/../shared/benchmarks``); the last candidate if none exists."""
    if explicit:
        return os.path.abspath(explicit)
    found = find_benchmarks_dir()
    return str(found) if found is not None else os.path.abspath(str(benchmark_dir_candidates()[-1]))


def default_path(spec: Task, bdir: str) -> str:
    rels = spec.relative_paths()
    tried = []
    for rel in rels:
        p = os.path.join(bdir, rel)
        if os.path.isfile(p):
            return p
        tried.append(p)
    raise BenchmarkError(
        f"benchmark file for {spec.name!r} not found: {tried[0]}"
        + (f" (also tried {', '.join(tried[1:])})" if len(tried) > 1 else "")
        + f". Set --benchmarks-dir or ${ENV_BENCHMARKS_DIR}, pass {spec.name}=PATH, or {spec.name}=hf://"
        + (spec.benchmark_hub.name if spec.benchmark_hub else "OWNER/NAME")
    )


# -------------------------------------------------------------------------------------------------- reading
def file_rows(path: str) -> tuple[list[dict], list[str]]:
    """Rows of a local file and their locations (``path:LINE``). Errors name the file and line."""
    if not os.path.exists(path):
        raise BenchmarkError(f"benchmark file not found: {path}")
    if os.path.isdir(path):
        for cand in ("test.jsonl", "test.json", "test.parquet"):
            if os.path.isfile(os.path.join(path, cand)):
                return file_rows(os.path.join(path, cand))
        raise BenchmarkError(f"{path} is a folder without test.jsonl / test.json / test.parquet")
    rows, locs = [], []
    try:
        for raw in read_rows(path, other=read_jsonl):
            if raw.error is not None:
                raise BenchmarkError(f"{raw.location}: {raw.error.message}")
            rows.append(raw.data)
            locs.append(raw.location)
    except ReadError as e:
        raise BenchmarkError(str(e)) from None
    return rows, locs


def hub_rows(uri: str, spec: Task | None) -> tuple[list[dict], list[str], str]:
    """Rows of ``hf://owner/name[:config][@split]`` (or of the task's hub copy for ``hf://``), their locations and
    the dataset's ``hf://`` name."""
    target = uri[len("hf://") :]
    hub = spec.benchmark_hub if spec else None
    if not target and hub:
        name, config, split = hub.name, hub.config, hub.test
    else:
        split = "test"
        if "@" in target:
            target, split = target.rsplit("@", 1)
        name, _, config = target.partition(":")
        config = config or None
        if hub and hub.name == name:
            config = config or hub.config
            split = split if "@" in uri else hub.test
    try:
        raws = list(read_hub(name, config, split)[0])
    except ReadError as e:
        raise BenchmarkError(f"{e}. Offline? Download the file and pass NAME=/path/to/test.jsonl instead.") from None
    return [r.data for r in raws], [r.location for r in raws], hub_uri(name, config, split)


# -------------------------------------------------------------------------------------------------- problems
@dataclass
class Problem:
    id: str
    question: str
    gold: str
    raw_gold: Any = None
    solution: str | None = None
    location: str = ""


@dataclass
class Benchmark:
    name: str
    display: str
    source: str  # file path or hf:// URI
    spec: Task
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "location: reason"

    def __len__(self) -> int:
        return len(self.problems)


def parse_benchmark_arg(arg: str) -> tuple[str, str | None]:
    """``name`` | ``name=path`` | ``path`` -> (name, path or None)."""
    if "=" in arg and not arg.startswith("hf://"):
        name, path = arg.split("=", 1)
        return name.strip(), path.strip() or None
    if arg.startswith("hf://") or os.path.sep in arg or os.path.exists(arg):
        base = arg.rstrip("/").split("/")[-1] if not arg.startswith("hf://") else arg[5:].split("@")[0]
        if base in ("test.jsonl", "test.json", "test.parquet"):
            base = os.path.basename(os.path.dirname(os.path.abspath(arg)))
        return os.path.splitext(base)[0].replace(":", "_").replace("/", "_"), arg
    return arg, None


def expand_benchmark_args(args: list[str]) -> list[str]:
    """Expand presets (``paper``, ``all``) and comma-separated lists."""
    out: list[str] = []
    for a in args:
        parts = [a] if "=" in a else [p for p in a.split(",") if p.strip()]
        for p in parts:
            out.extend(PRESETS[p] if p in PRESETS else [p])
    return list(dict.fromkeys(out))


def load_benchmark(
    arg: str, bdir: str | None = None, limit: int | None = None, hub_fallback: bool = False
) -> Benchmark:
    """Load one benchmark given as ``name``, ``name=path``, ``path`` or ``name=hf://...``."""
    name, path = parse_benchmark_arg(arg)
    try:
        spec: Task | None = get_benchmark(name)
    except BenchmarkError:
        if path is None:
            raise
        spec = None
    if path is None and spec is not None and spec.builder is not None:  # a generated benchmark (arith)
        rows = spec.builder()
        source = f"generated://{spec.name}"
        locs = [f"{source}:row {i}" for i in range(len(rows))]
    else:
        if path is None:
            assert spec is not None
            try:
                path = default_path(spec, benchmarks_dir(bdir))
            except BenchmarkError:
                if not (hub_fallback and spec.hub):
                    raise
                path = "hf://"
        if path.startswith("hf://"):
            rows, locs, source = hub_rows(path, spec)
        else:
            rows, locs = file_rows(path)
            source = os.path.abspath(path)
    if not rows:
        raise BenchmarkError(f"{source}: no rows")
    if spec is None or not spec.fits(rows[0]):
        inferred = infer_task(spec.name if spec else name, rows, where=source)
        spec = (
            inferred
            if spec is None
            else replace(
                spec,
                question_fields=inferred.question_fields,
                gold_field=inferred.gold_field,
                gold_kind=inferred.gold_kind,
                id_field=inferred.id_field,
                solution_field=inferred.solution_field,
            )
        )
    bench = Benchmark(spec.name, spec.display, source, spec)
    for i, (row, loc) in enumerate(zip(rows, locs, strict=True)):
        q = spec.question(row)
        raw = row.get(spec.gold_field)
        gold = spec.gold(row)
        if q is None:
            bench.skipped.append(f"{loc}: no question field {'/'.join(spec.question_fields)}")
            continue
        if gold is None:
            bench.skipped.append(f"{loc}: no reference answer in {spec.gold_field!r}")
            continue
        sol = row.get(spec.solution_field) if spec.solution_field else None
        if isinstance(sol, list):
            sol = "\n\n".join(str(s) for s in sol)
        bench.problems.append(
            Problem(spec.problem_id(row, i), q, gold, raw, sol if isinstance(sol, str) else None, loc)
        )
        if limit is not None and len(bench.problems) >= limit:
            break
    if not bench.problems:
        raise BenchmarkError(f"{source}: no usable row; the first ones: " + "; ".join(bench.skipped[:3]))
    return bench
