"""The datasets: one :class:`~cadft_verl.tasks.base.Task` per dataset, and the one registry of them (:data:`TASKS`).

Data conversion (``python -m cadft_verl.data convert --source NAME``), decontamination and evaluation
(``--benchmarks NAME``) all find a dataset here, by its name or an alias:

- :mod:`~cadft_verl.tasks.benchmarks`: ``math500`` (MATH-500; as training data, MATH), ``minerva_math``,
  ``olympiadbench``, ``aime24``, ``amc23``, ``aime25``;
- :mod:`~cadft_verl.tasks.gsm8k`: ``gsm8k``;
- :mod:`~cadft_verl.tasks.arith`: ``arith``, the embedded arithmetic task (generated: it needs no file);
- :mod:`~cadft_verl.tasks.corpora`: the training corpora ``numina``, ``openr1`` and ``generic`` (any file).

:data:`BENCHMARKS` and :data:`PRESETS` are live views of the registry: the tasks that have held-out problems, and
the named selections of them (``paper``: the paper's average@16 set; ``all``). Adding a dataset = a Task (in one of
these modules or a new one) and one :func:`register` call. What the tasks share, below them, is
:mod:`cadft_verl.math`: the row reader, answer extraction and normalisation, prompt templates, n-grams.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from cadft_verl.tasks import arith, benchmarks, corpora, gsm8k
from cadft_verl.tasks.base import BenchmarkError, Task

#: name -> task, in registration order
TASKS: dict[str, Task] = {}
_NAMES: dict[str, str] = {}  # name or alias -> name


def register(task: Task) -> Task:
    for key in (task.name, *task.aliases):
        if key in _NAMES:
            raise ValueError(f"task name {key!r} is already registered (by {_NAMES[key]!r})")
        _NAMES[key] = task.name
    TASKS[task.name] = task
    return task


def find_task(name: str) -> Task | None:
    """The task of a name or alias (case, ``-`` or ``_`` aside), or None."""
    key = _NAMES.get(name) or _NAMES.get(name.lower().replace("-", "_")) or _NAMES.get(name.lower())
    return TASKS[key] if key else None


def get_task(name: str) -> Task:
    task = find_task(name)
    if task is None:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return task


class _Benchmarks(Mapping):
    """name -> task of every registered task that is a benchmark (a file below the benchmarks folder, or a builder)."""

    def __getitem__(self, name: str) -> Task:
        task = TASKS[name]
        if not task.is_benchmark:
            raise KeyError(name)
        return task

    def __iter__(self) -> Iterator[str]:
        return (name for name, task in TASKS.items() if task.is_benchmark)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Presets(Mapping):
    """Named selections for ``--benchmarks``: ``paper`` (the paper's average@16 set) and ``all``."""

    _KEEP = {"paper": lambda task: task.in_paper_average, "all": lambda task: True}

    def __getitem__(self, name: str) -> list[str]:
        keep = self._KEEP[name]
        return [n for n, task in BENCHMARKS.items() if keep(task)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEEP)

    def __len__(self) -> int:
        return len(self._KEEP)


BENCHMARKS: Mapping[str, Task] = _Benchmarks()
PRESETS: Mapping[str, list[str]] = _Presets()


def available() -> str:
    names = ", ".join(f"{t.name} ({t.display})" for t in BENCHMARKS.values())
    return f"{names}; presets: {', '.join(f'{k}={v}' for k, v in PRESETS.items())}; or NAME=PATH for any file"


def get_benchmark(name: str) -> Task:
    task = find_task(name)
    if task is None or not task.is_benchmark:
        raise BenchmarkError(f"unknown benchmark {name!r}. Available: {available()}")
    return task


def task_for_file(path: str, bench_dir: str) -> Task | None:
    """The benchmark whose file ``path`` is (by its path relative to ``bench_dir``), else None."""
    try:
        rel = os.path.relpath(os.path.realpath(path), os.path.realpath(bench_dir)).replace(os.sep, "/")
    except ValueError:
        return None
    return next((t for t in BENCHMARKS.values() if rel in t.relative_paths()), None)


for _task in (benchmarks.MATH500, benchmarks.MINERVA, benchmarks.OLYMPIADBENCH, benchmarks.AIME24, benchmarks.AMC23,
              benchmarks.AIME25, gsm8k.GSM8K, arith.ARITH, corpora.NUMINA, corpora.OPENR1, corpora.GENERIC):
    register(_task)
del _task
