"""Decontamination: drop training rows whose problem is an evaluation benchmark's problem, verbatim or reworded.

Two tests, both against every benchmark file of a folder (:func:`benchmark_files`), each file read through the
task its path belongs to (:func:`cadft_verl.tasks.task_for_file`: question field, problem id):

- ``exact``: the same text, or the same after normalisation (:func:`cadft_verl.math.ngrams.normalize_problem`);
- ``ngram``: n-gram overlap on normalised tokens (:class:`cadft_verl.math.ngrams.NgramIndex`): a benchmark problem
  wrapped in a prefix, a suffix or a prompt template, or with a word changed. ``n=0`` turns it off.

Every hit names the benchmark file, the problem id and the overlapping span.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from cadft_verl.math.ngrams import DEFAULT_N, DEFAULT_THRESHOLD, NgramIndex, key_and_tokens, normalize_problem
from cadft_verl.math.rows import ReadError, read_rows
from cadft_verl.tasks import task_for_file
from cadft_verl.tasks.base import BenchmarkError, infer_task

#: how many unusable rows a "no usable row" error quotes
ERROR_EXAMPLES = 3


class DecontaminationError(ValueError):
    """A benchmark file cannot be used (unreadable, or no row with a question); the message names the file."""


@dataclass(frozen=True)
class Hit:
    file: str  # benchmark file (or the ``origin`` given to ``add``)
    id: str  # problem id in that file (its id field, else its 0-based row position)
    match: str  # "exact" or "ngram"
    coverage: float  # fraction of the benchmark problem's tokens found in the training problem (1.0 for exact)
    span: str  # the overlapping text (normalised tokens; the whole problem for exact)

    def record(self, location: str) -> dict:
        return {"location": location, **asdict(self)}


def benchmark_files(bench_dir: str | os.PathLike, exclude: Iterable[str] = ()) -> list[Path]:
    """Evaluation files of a benchmark folder: every ``*.jsonl`` below it except ``train*`` files (GSM8K's train
    split lives there too) and except the files named in ``exclude`` (the inputs being converted)."""
    excluded = {os.path.realpath(p) for p in exclude if p and os.path.exists(p)}
    out = []
    for p in sorted(Path(bench_dir).rglob("*.jsonl")):
        if p.name.startswith("train") or os.path.realpath(p) in excluded:
            continue
        out.append(p)
    return out


class Decontaminator:
    """Exact, normalised-text and n-gram-overlap match of a problem against a set of benchmark problems."""

    def __init__(
        self,
        problems: Iterable[str] = (),
        origin: str = "given",
        n: int = DEFAULT_N,
        threshold: float = DEFAULT_THRESHOLD,
    ):
        self.exact: dict[str, tuple[str, str]] = {}  # text -> (file, id)
        self.normalized: dict[str, tuple[str, str]] = {}
        self.ngrams = NgramIndex(n, threshold) if n else None
        self._ref_ids: list[tuple[str, str]] = []  # NgramIndex ref -> (file, id)
        self.files: list[str] = []
        self.add(problems, origin)

    def _add_one(self, text: str, file: str, pid: str) -> None:
        self.exact.setdefault(text.strip(), (file, pid))
        key = normalize_problem(text)
        if key in self.normalized:
            return
        self.normalized[key] = (file, pid)
        if self.ngrams is not None and self.ngrams.add(text) is not None:
            self._ref_ids.append((file, pid))

    def add(self, problems: Iterable[str], origin: str) -> None:
        for i, p in enumerate(problems):
            if isinstance(p, str) and p.strip():
                self._add_one(p, origin, str(i))

    def add_file(self, path: str | os.PathLike, bench_dir: str | os.PathLike | None = None) -> int:
        """Add the problems of one benchmark file; returns how many were read. The question field and id come
        from the task of the file's path below ``bench_dir``, else from the fields of its first row."""
        path = str(path)
        task = task_for_file(path, str(bench_dir)) if bench_dir is not None else None
        bad: list[str] = []
        count = 0
        try:
            for raw in read_rows(path):
                if raw.error is not None:
                    bad.append(f"{raw.location}: {raw.error.message}")
                    continue
                if task is None:
                    try:
                        task = infer_task(os.path.basename(path), [raw.data], where=raw.location, need_gold=False)
                    except BenchmarkError as e:
                        bad.append(str(e))
                        continue
                text = task.question(raw.data)
                if text is None:
                    bad.append(f"{raw.location}: no question field {'/'.join(task.question_fields)}")
                    continue
                self._add_one(text, path, task.problem_id(raw.data, raw.position))
                count += 1
        except (ReadError, OSError) as e:
            raise DecontaminationError(f"benchmark file {path}: cannot be read ({e})") from None
        if count == 0:
            raise DecontaminationError(
                f"benchmark file {path}: no usable row; the first ones: " + "; ".join(bad[:ERROR_EXAMPLES])
                if bad else f"benchmark file {path}: no rows"
            )
        self.files.append(path)
        return count

    @classmethod
    def from_dir(
        cls,
        bench_dir: str | os.PathLike,
        exclude: Iterable[str] = (),
        n: int = DEFAULT_N,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> Decontaminator:
        d = cls(n=n, threshold=threshold)
        for p in benchmark_files(bench_dir, exclude):
            d.add_file(p, bench_dir)
        return d

    def __len__(self) -> int:
        return len(self.normalized)

    def find(self, problem: str) -> Hit | None:
        """Where the problem was found, or None if it is clean."""
        text = problem.strip()
        where = self.exact.get(text)
        tokens = None
        if where is None:
            key, tokens = key_and_tokens(problem)
            where = self.normalized.get(key)
        if where is not None:
            return Hit(where[0], where[1], "exact", 1.0, " ".join(text.split())[:200])
        if self.ngrams is None:
            return None
        m = self.ngrams.match(problem, tokens)
        if m is None:
            return None
        file, pid = self._ref_ids[m.ref]
        return Hit(file, pid, "ngram", round(m.coverage, 3), m.span[:200])

    def match(self, problem: str) -> str | None:
        """The benchmark file the problem was found in, or None if it is clean."""
        hit = self.find(problem)
        return None if hit is None else hit.file
