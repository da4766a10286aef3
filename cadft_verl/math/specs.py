"""The registry of math dataset specs that conversion, decontamination and evaluation share.

A :class:`DatasetSpec` says which field holds a row's question, which holds its reference answer and how to read it
(:data:`GOLD_EXTRACTORS`), which holds its id, and, for an evaluation benchmark, where its file lives relative to the
benchmarks folder (the Qwen2.5-Math layout ``<dir>/<name>/test.jsonl``). Decontamination reads every benchmark file
through the spec its path belongs to (:func:`spec_for_file`); evaluation loads benchmarks by name (:func:`get_spec`).

Adding a benchmark = one :func:`register_dataset` call (at the end of this file). A file that matches no spec still
works: its fields are inferred from its first row (:func:`infer_spec`).

Reference answers are normalised by :func:`cadft_verl.math.answers.normalize_gold`: MATH ``answer`` strings, GSM8K
``#### N`` (commas removed), Minerva's last ``\\boxed{}`` of ``solution``, OlympiadBench's ``final_answer`` list
(``$`` removed), AMC floats (``27.0`` -> ``"27"``), AIME ints.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from cadft_verl.math import arith
from cadft_verl.math.answers import normalize_gold
from cadft_verl.math.extract import gsm8k_final, last_boxed


class BenchmarkError(Exception):
    """Bad benchmark name, missing file, unreadable row or file (the message names the file and line)."""


# ------------------------------------------------------------------------------------------- gold extractors
def _gold_answer_field(name: str) -> Callable[[dict], str | None]:
    def get(row: dict) -> str | None:
        return normalize_gold(row.get(name))

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
class DatasetSpec:
    name: str
    display: str
    default_path: str  # relative to the benchmarks folder ("" for a spec inferred from a file)
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
    builder: Callable[[], list[dict]] | None = None  # a generated benchmark's rows (no file needed)

    def gold(self, row: dict) -> str | None:
        return GOLD_EXTRACTORS[self.gold_kind](self.gold_field)(row)

    def question(self, row: dict) -> str | None:
        for f in self.question_fields:
            v = row.get(f)
            if isinstance(v, str) and v.strip():
                return v
        return None

    def problem_id(self, row: dict, position: int) -> str:
        """The row's id field, else its 0-based position in the file."""
        pid = row.get(self.id_field) if self.id_field else None
        return str(pid) if pid is not None else str(position)

    def relative_paths(self) -> list[str]:
        """Where the file may live below the benchmarks folder, most likely first."""
        rels = [self.default_path, *self.alt_paths, *(f"{a}/test.jsonl" for a in (self.name, *self.aliases))]
        return list(dict.fromkeys(r for r in rels if r))

    def fits(self, row: dict) -> bool:
        return self.question(row) is not None and row.get(self.gold_field) is not None


#: name -> spec of every registered benchmark, in registration order
REGISTRY: dict[str, DatasetSpec] = {}
_ALIASES: dict[str, str] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    if spec.gold_kind not in GOLD_EXTRACTORS:
        raise ValueError(
            f"dataset {spec.name!r}: unknown gold_kind {spec.gold_kind!r}; use one of {list(GOLD_EXTRACTORS)}"
        )
    for key in (spec.name, *spec.aliases):
        if key in _ALIASES:
            raise ValueError(f"dataset name {key!r} is already registered (by {_ALIASES[key]!r})")
        _ALIASES[key] = spec.name
    REGISTRY[spec.name] = spec
    return spec


def presets() -> dict[str, list[str]]:
    """Named selections for ``--benchmarks``: ``paper`` (the paper's average@16 set) and ``all``."""
    return {"paper": [s.name for s in REGISTRY.values() if s.in_paper_average], "all": list(REGISTRY)}


def available() -> str:
    names = ", ".join(f"{s.name} ({s.display})" for s in REGISTRY.values())
    return f"{names}; presets: {', '.join(f'{k}={v}' for k, v in presets().items())}; or NAME=PATH for any file"


def get_spec(name: str) -> DatasetSpec:
    key = _ALIASES.get(name) or _ALIASES.get(name.lower().replace("-", "_")) or _ALIASES.get(name.lower())
    if key is None:
        raise BenchmarkError(f"unknown benchmark {name!r}. Available: {available()}")
    return REGISTRY[key]


_QUESTION_CANDIDATES = ("problem", "question", "prompt", "input", "Problem", "Question", "query")
_GOLD_CANDIDATES = (
    "answer", "final_answer", "gold", "ground_truth", "target", "expected_answer", "Answer", "label", "solution",
)
_ID_CANDIDATES = ("id", "unique_id", "idx", "problem_id", "ID", "uid", "index")


def infer_spec(name: str, rows: list[dict], where: str = "", need_gold: bool = True) -> DatasetSpec:
    """Spec for an unregistered file, from the fields of its first row (``need_gold=False``: the question and id
    are enough, as for decontamination)."""
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
    if not g and not need_gold:
        g = ["answer"]
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
    return DatasetSpec(name, name, "", tuple(q), gold_field, kind, id_field, sol)


def spec_for_file(path: str, bench_dir: str) -> DatasetSpec | None:
    """The registered spec whose file ``path`` is (by its path relative to ``bench_dir``), else None."""
    try:
        rel = os.path.relpath(os.path.realpath(path), os.path.realpath(bench_dir)).replace(os.sep, "/")
    except ValueError:
        return None
    return next((s for s in REGISTRY.values() if rel in s.relative_paths()), None)


# ------------------------------------------------------------------------------------------ built-in specs
register_dataset(DatasetSpec(
    "math500", "MATH-500", "math/test.jsonl", ("problem",), "answer", "answer", "unique_id", "solution",
    aliases=("math_500", "math-500"), alt_paths=("math500/test.jsonl", "math_500/test.jsonl"),
    hub=("HuggingFaceH4/MATH-500", None, "test"), expected_rows=500, in_paper_average=True,
))
register_dataset(DatasetSpec(
    "minerva_math", "Minerva", "minerva_math/test.jsonl", ("problem",), "solution", "last_boxed", "idx",
    "solution", aliases=("minerva", "minervamath"), hub=("math-ai/minervamath", None, "test"),
    expected_rows=272, in_paper_average=True,
))
register_dataset(DatasetSpec(
    "olympiadbench", "OlympiadBench", "olympiadbench/test.jsonl", ("question", "problem"), "final_answer",
    "list", "id", None, aliases=("olympiad", "olympiad_bench"),
    hub=("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train"), expected_rows=675, in_paper_average=True,
))
register_dataset(DatasetSpec(
    "aime24", "AIME24", "aime24/test.jsonl", ("problem", "question"), "answer", "answer", "id", "solution",
    aliases=("aime2024", "aime_2024"), hub=("HuggingFaceH4/aime_2024", None, "train"), expected_rows=30,
    in_paper_average=True,
))
register_dataset(DatasetSpec(
    "amc23", "AMC23", "amc23/test.jsonl", ("problem", "question"), "answer", "answer", "id", None,
    aliases=("amc2023", "amc_2023", "amc"), hub=("math-ai/amc23", None, "test"), expected_rows=40,
    in_paper_average=True,
))
register_dataset(DatasetSpec(
    "aime25", "AIME25", "aime25/test.jsonl", ("problem", "question"), "answer", "answer", "id", None,
    aliases=("aime2025", "aime_2025"), hub=("math-ai/aime25", None, "test"), expected_rows=30,
))
register_dataset(DatasetSpec(
    "gsm8k", "GSM8K", "gsm8k/test.jsonl", ("question", "problem"), "answer", "gsm8k", None, "answer",
    hub=("openai/gsm8k", "main", "test"), expected_rows=1319,
))
register_dataset(DatasetSpec(
    "arith", "Arith", "", ("question",), "answer", "gsm8k", "id", "answer", expected_rows=arith.TEST_SIZE,
    builder=arith.test_rows,
))
