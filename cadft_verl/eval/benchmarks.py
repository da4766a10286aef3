"""Math benchmark registry and loaders.

A :class:`BenchmarkSpec` says where a benchmark's file lives (relative to the benchmarks folder), which field
holds the question, which holds the reference answer and how to read it. Adding a benchmark = adding one spec to
:data:`REGISTRY`. A benchmark that is not registered still works when given a file
(``--benchmarks myset=/path/test.jsonl``): its fields are inferred (:func:`infer_spec`).

File layouts accepted: JSON lines (``.jsonl``; also ``.json`` holding lines), a JSON array or ``{"data": [...]}``
(``.json``), parquet; the Qwen2.5-Math evaluation layout ``<benchmarks dir>/<name>/test.jsonl``; hub datasets
``hf://owner/name[:config][@split]`` through ``datasets`` (needs network access).

Reference answers are normalised by :func:`cadft_verl.reward.normalize_gold`: MATH ``answer`` strings, GSM8K
``#### N`` (commas removed), Minerva's last ``\\boxed{}`` of ``solution``, OlympiadBench's ``final_answer`` list
(``$`` removed), AMC floats (``27.0`` -> ``"27"``), AIME ints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cadft_verl.reward.extract import gsm8k_final, last_boxed
from cadft_verl.reward.normalize import normalize_gold
from cadft_verl.utils.paths import ENV_VAR as ENV_BENCHMARKS_DIR
from cadft_verl.utils.paths import benchmark_dir_candidates, find_benchmarks_dir


class BenchmarkError(Exception):
    """Bad benchmark name, missing file, unreadable row (message names the file and line)."""


# ------------------------------------------------------------------------------------------- gold extractors
def _gold_answer_field(name: str) -> Callable[[dict], str | None]:
    def get(row: dict) -> str | None:
        return normalize_gold(row.get(name))

    get.__doc__ = f"normalised `{name}` field"
    return get


def _gold_last_boxed(name: str) -> Callable[[dict], str | None]:
    def get(row: dict) -> str | None:
        v = row.get(name)
        if isinstance(v, list):
            v = "\n".join(str(x) for x in v)
        boxed = last_boxed(v) if isinstance(v, str) else None
        return normalize_gold(boxed) if boxed else None

    return get


def _gold_gsm8k(name: str) -> Callable[[dict], str | None]:
    def get(row: dict) -> str | None:
        v = row.get(name)
        if isinstance(v, str) and "####" in v:
            return normalize_gold(gsm8k_final(v))
        return normalize_gold(v)  # already a bare answer (some hub copies)

    return get


GOLD_EXTRACTORS: dict[str, Callable[[str], Callable[[dict], str | None]]] = {
    # field holds the answer itself (str / int / float), `$..$` removed, numbers stringified (27.0 -> "27")
    "answer": _gold_answer_field,
    # field holds a solution: the gold is its last \boxed{} (Minerva)
    "last_boxed": _gold_last_boxed,
    # field holds a GSM8K solution: the gold follows the final "####", thousands separators removed
    "gsm8k": _gold_gsm8k,
    # field is a list of answers (OlympiadBench final_answer, `$..$`-wrapped): joined with ", "
    "list": _gold_answer_field,
}


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    display: str
    default_path: str  # relative to the benchmarks folder
    question_fields: tuple[str, ...]
    gold_field: str
    gold_kind: str = "answer"  # key of GOLD_EXTRACTORS
    id_field: str | None = None
    solution_field: str | None = None  # a worked solution (used by self-tests), if any
    aliases: tuple[str, ...] = ()
    alt_paths: tuple[str, ...] = ()  # other relative paths tried (Qwen2.5-Math layout names)
    hub: tuple[str, str | None, str] | None = None  # (dataset, config, split) for hf:// loading
    expected_rows: int | None = None
    in_paper_average: bool = False

    def gold(self, row: dict) -> str | None:
        return GOLD_EXTRACTORS[self.gold_kind](self.gold_field)(row)

    def question(self, row: dict) -> str | None:
        for f in self.question_fields:
            v = row.get(f)
            if isinstance(v, str) and v.strip():
                return v
        return None


REGISTRY: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in [
        BenchmarkSpec(
            "math500", "MATH-500", "math/test.jsonl", ("problem",), "answer", "answer", "unique_id", "solution",
            aliases=("math_500", "math-500"), alt_paths=("math500/test.jsonl", "math_500/test.jsonl"),
            hub=("HuggingFaceH4/MATH-500", None, "test"), expected_rows=500, in_paper_average=True,
        ),
        BenchmarkSpec(
            "minerva_math", "Minerva", "minerva_math/test.jsonl", ("problem",), "solution", "last_boxed", "idx",
            "solution", aliases=("minerva", "minervamath"), hub=("math-ai/minervamath", None, "test"),
            expected_rows=272, in_paper_average=True,
        ),
        BenchmarkSpec(
            "olympiadbench", "OlympiadBench", "olympiadbench/test.jsonl", ("question", "problem"), "final_answer",
            "list", "id", None, aliases=("olympiad", "olympiad_bench"),
            hub=("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train"), expected_rows=675, in_paper_average=True,
        ),
        BenchmarkSpec(
            "aime24", "AIME24", "aime24/test.jsonl", ("problem", "question"), "answer", "answer", "id", "solution",
            aliases=("aime2024", "aime_2024"), hub=("HuggingFaceH4/aime_2024", None, "train"), expected_rows=30,
            in_paper_average=True,
        ),
        BenchmarkSpec(
            "amc23", "AMC23", "amc23/test.jsonl", ("problem", "question"), "answer", "answer", "id", None,
            aliases=("amc2023", "amc_2023", "amc"), hub=("math-ai/amc23", None, "test"), expected_rows=40,
            in_paper_average=True,
        ),
        BenchmarkSpec(
            "aime25", "AIME25", "aime25/test.jsonl", ("problem", "question"), "answer", "answer", "id", None,
            aliases=("aime2025", "aime_2025"), hub=("math-ai/aime25", None, "test"), expected_rows=30,
        ),
        BenchmarkSpec(
            "gsm8k", "GSM8K", "gsm8k/test.jsonl", ("question", "problem"), "answer", "gsm8k", None, "answer",
            hub=("openai/gsm8k", "main", "test"), expected_rows=1319,
        ),
    ]
}
_ALIASES = {a: s.name for s in REGISTRY.values() for a in (s.name, *s.aliases)}

#: named selections for ``--benchmarks``
PRESETS: dict[str, list[str]] = {
    "paper": [s.name for s in REGISTRY.values() if s.in_paper_average],  # the paper's average@16 set
    "all": list(REGISTRY),
}

_QUESTION_CANDIDATES = ("problem", "question", "prompt", "input", "Problem", "Question", "query")
_GOLD_CANDIDATES = (
    "answer", "final_answer", "gold", "ground_truth", "target", "expected_answer", "Answer", "label", "solution",
)
_ID_CANDIDATES = ("id", "unique_id", "idx", "problem_id", "ID", "uid", "index")


def available() -> str:
    names = ", ".join(f"{s.name} ({s.display})" for s in REGISTRY.values())
    return f"{names}; presets: {', '.join(f'{k}={v}' for k, v in PRESETS.items())}; or NAME=PATH for any file"


def get_spec(name: str) -> BenchmarkSpec:
    key = _ALIASES.get(name) or _ALIASES.get(name.lower().replace("-", "_")) or _ALIASES.get(name.lower())
    if key is None:
        raise BenchmarkError(f"unknown benchmark {name!r}. Available: {available()}")
    return REGISTRY[key]


def infer_spec(name: str, rows: list[dict], where: str = "") -> BenchmarkSpec:
    """Spec for an unregistered benchmark file, from the fields of its first row."""
    if not rows:
        raise BenchmarkError(f"{where or name}: no rows")
    first = rows[0]
    q = [f for f in _QUESTION_CANDIDATES if isinstance(first.get(f), str)]
    g = [f for f in _GOLD_CANDIDATES if first.get(f) is not None]
    if not q:
        raise BenchmarkError(
            f"{where or name}: cannot find a question field (tried {', '.join(_QUESTION_CANDIDATES)}); "
            f"fields: {sorted(first)}"
        )
    if not g:
        raise BenchmarkError(
            f"{where or name}: cannot find a reference answer field (tried {', '.join(_GOLD_CANDIDATES)}); "
            f"fields: {sorted(first)}"
        )
    gold_field = g[0]
    kind = "answer"
    if gold_field == "solution":
        kind = "last_boxed"
    elif isinstance(first.get(gold_field), list):
        kind = "list"
    elif isinstance(first.get(gold_field), str) and "####" in first[gold_field]:
        kind = "gsm8k"
    id_field = next((f for f in _ID_CANDIDATES if f in first), None)
    sol = "solution" if isinstance(first.get("solution"), str) else None
    return BenchmarkSpec(name, name, "", tuple(q), gold_field, kind, id_field, sol)


def _fits(spec: BenchmarkSpec, row: dict) -> bool:
    return spec.question(row) is not None and row.get(spec.gold_field) is not None


# ------------------------------------------------------------------------------------------------- locating
def benchmarks_dir(explicit: str | None = None) -> str:
    """``explicit``, else ``cadft_verl.utils.paths.find_benchmarks_dir()`` (env ``CADFT_BENCHMARKS_DIR``,
    ``<cwd>/../shared/benchmarks``, ``<repo root>/../shared/benchmarks``); the last candidate if none exists."""
    if explicit:
        return os.path.abspath(explicit)
    found = find_benchmarks_dir()
    return str(found) if found is not None else os.path.abspath(str(benchmark_dir_candidates()[-1]))


def default_path(spec: BenchmarkSpec, bdir: str) -> str:
    rels = [spec.default_path, *spec.alt_paths, *(f"{a}/test.jsonl" for a in (spec.name, *spec.aliases))]
    tried = []
    for rel in dict.fromkeys(r for r in rels if r):
        p = os.path.join(bdir, rel)
        if os.path.isfile(p):
            return p
        tried.append(p)
    raise BenchmarkError(
        f"benchmark file for {spec.name!r} not found: {tried[0]}"
        + (f" (also tried {', '.join(tried[1:])})" if len(tried) > 1 else "")
        + f". Set --benchmarks-dir or ${ENV_BENCHMARKS_DIR}, pass {spec.name}=PATH, or {spec.name}=hf://"
        + (f"{spec.hub[0]}" if spec.hub else "OWNER/NAME")
    )


# -------------------------------------------------------------------------------------------------- reading
def read_rows(path: str) -> tuple[list[dict], list[str]]:
    """Rows of a local file and their locations (``path:LINE``). Errors name the file and line."""
    if not os.path.exists(path):
        raise BenchmarkError(f"benchmark file not found: {path}")
    if os.path.isdir(path):
        for cand in ("test.jsonl", "test.json", "test.parquet"):
            if os.path.isfile(os.path.join(path, cand)):
                return read_rows(os.path.join(path, cand))
        raise BenchmarkError(f"{path} is a folder without test.jsonl / test.json / test.parquet")
    if path.endswith(".parquet"):
        import pandas as pd

        df = pd.read_parquet(path)
        rows = [{k: _plain(v) for k, v in r.items()} for r in df.to_dict(orient="records")]
        return rows, [f"{path}:row {i}" for i in range(len(rows))]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    stripped = text.lstrip()
    if path.endswith(".json") and stripped[:1] in ("[", "{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            if stripped[:1] == "[":
                raise BenchmarkError(f"{path}:{e.lineno}: malformed JSON ({e.msg}, column {e.colno})") from None
            obj = None  # JSON lines in a .json file
        if obj is not None:
            if isinstance(obj, dict):
                keys = ("data", "rows", "examples", "test")
                obj = next((obj[k] for k in keys if isinstance(obj.get(k), list)), [obj])
            if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
                raise BenchmarkError(f"{path}: expected a JSON array of objects")
            return obj, [f"{path}:item {i}" for i in range(len(obj))]
    rows, locs = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchmarkError(f"{path}:{lineno}: malformed JSON line ({e.msg}, column {e.colno})") from None
        if not isinstance(obj, dict):
            raise BenchmarkError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        rows.append(obj)
        locs.append(f"{path}:{lineno}")
    return rows, locs


def _plain(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


def read_hub(uri: str, spec: BenchmarkSpec | None) -> tuple[list[dict], list[str], str]:
    """Rows of ``hf://owner/name[:config][@split]`` (or the spec's hub entry for ``hf://``)."""
    target = uri[len("hf://") :]
    if not target and spec and spec.hub:
        name, config, split = spec.hub
    else:
        split = "test"
        if "@" in target:
            target, split = target.rsplit("@", 1)
        name, _, config = target.partition(":")
        config = config or None
        if spec and spec.hub and spec.hub[0] == name:
            config = config or spec.hub[1]
            split = split if "@" in uri else spec.hub[2]
    desc = f"hf://{name}{':' + config if config else ''}@{split}"
    try:
        import datasets

        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # noqa: BLE001 - offline, missing dataset, auth
        raise BenchmarkError(
            f"cannot load {desc} from the Hugging Face hub ({type(e).__name__}: {str(e)[:300]}). "
            "Offline? Download the file and pass NAME=/path/to/test.jsonl instead."
        ) from None
    rows = [dict(r) for r in ds]
    return rows, [f"{desc}:row {i}" for i in range(len(rows))], desc


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
    spec: BenchmarkSpec
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
        spec: BenchmarkSpec | None = get_spec(name)
    except BenchmarkError:
        if path is None:
            raise
        spec = None
    if path is None:
        assert spec is not None
        try:
            path = default_path(spec, benchmarks_dir(bdir))
        except BenchmarkError:
            if not (hub_fallback and spec.hub):
                raise
            path = "hf://"
    if path.startswith("hf://"):
        rows, locs, source = read_hub(path, spec)
    else:
        rows, locs = read_rows(path)
        source = os.path.abspath(path)
    if not rows:
        raise BenchmarkError(f"{source}: no rows")
    if spec is None or not _fits(spec, rows[0]):
        inferred = infer_spec(spec.name if spec else name, rows, where=source)
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
        pid = row.get(spec.id_field) if spec.id_field else None
        sol = row.get(spec.solution_field) if spec.solution_field else None
        if isinstance(sol, list):
            sol = "\n\n".join(str(s) for s in sol)
        bench.problems.append(
            Problem(str(pid) if pid is not None else str(i), q, gold, raw, sol if isinstance(sol, str) else None, loc)
        )
        if limit is not None and len(bench.problems) >= limit:
            break
    if not bench.problems:
        raise BenchmarkError(f"{source}: no usable rows ({bench.skipped[:3]})")
    return bench
