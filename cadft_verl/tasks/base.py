"""What a dataset is to this project: a :class:`Task`, the one object that knows it.

A task says where the dataset is (its benchmark file below the benchmarks folder, its copy on the Hugging Face Hub,
or, for a generated task, the function that builds its held-out rows), which fields hold what (the question, the
reference answer and how to read it, the id, the worked solution), and what a row becomes:

- a benchmark problem: its question (:meth:`Task.question`), its id (:meth:`Task.problem_id`) and its gold answer
  (:meth:`Task.gold`, normalised for comparison by :func:`cadft_verl.math.answers.normalize_gold`);
- a training example (:meth:`Task.example`): the problem, the demonstration (the SFT response) and the reference
  answer as training data stores it (:func:`cadft_verl.math.answers.reference_answer`), or a :class:`RowError`
  whose reason the data summary counts.

The prompt a problem is asked with, in training and in evaluation, is one template of :mod:`cadft_verl.math.prompts`.
The tasks and their registry are :mod:`cadft_verl.tasks`; a file that belongs to no task is read through a task
inferred from its first row (:func:`infer_task`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cadft_verl.math.answers import normalize_gold, reference_answer
from cadft_verl.math.extract import gsm8k_final, last_boxed
from cadft_verl.math.rows import RowError


class BenchmarkError(Exception):
    """Bad benchmark name, missing file, unreadable row or file (the message names the file and line)."""


@dataclass(frozen=True)
class Hub:
    """A dataset on the Hugging Face Hub (``datasets.load_dataset(name, config, split=...)``) and its splits of
    training rows and of held-out rows (None: it has no such split)."""

    name: str
    config: str | None = None
    train: str | None = "train"
    test: str | None = "test"


@dataclass
class Example:
    """One training example: what the SFT and RL rows are made of."""

    problem: str
    response: str | None
    answer: str
    extra: dict = field(default_factory=dict)  # task-specific fields carried into extra_info (e.g. arith's kind)


# ----------------------------------------------------------------------------------------------------- gold answers
def _gold_last_boxed(value) -> str | None:
    if isinstance(value, list):
        value = "\n".join(str(x) for x in value)
    boxed = last_boxed(value) if isinstance(value, str) else None
    return normalize_gold(boxed) if boxed else None


def _gold_gsm8k(value) -> str | None:
    if isinstance(value, str) and "####" in value:
        return normalize_gold(gsm8k_final(value))
    return normalize_gold(value)  # already a bare answer (some hub copies)


#: how a gold field is read, by ``Task.gold_kind``
GOLD_EXTRACTORS: dict[str, Callable[[object], str | None]] = {
    # the field holds the answer itself (str / int / float), `$..$` removed, numbers stringified (27.0 -> "27")
    "answer": normalize_gold,
    # the field holds a solution: the gold is its last \boxed{} (Minerva)
    "last_boxed": _gold_last_boxed,
    # the field holds a GSM8K solution: the gold follows the final "####", thousands separators removed
    "gsm8k": _gold_gsm8k,
    # the field is a list of answers (OlympiadBench final_answer, `$..$`-wrapped): joined with ", "
    "list": normalize_gold,
}
#: gold kinds whose field holds the answer itself (else a solution the answer is read from)
ANSWER_KINDS = ("answer", "list")


# ------------------------------------------------------------------------------------------------------ row helpers
def _fields_of(row: dict) -> str:
    return ", ".join(sorted(row)) or "nothing"


def require_text(value, reason: str, message: str) -> str:
    """``value`` as text, or a :class:`RowError` of ``reason`` when it is missing or blank."""
    if value is None or not str(value).strip():
        raise RowError(reason, message)
    return str(value)


def assistant_from_messages(messages) -> str | None:
    """Content of the last assistant turn of a chat list, or None."""
    if not isinstance(messages, (list, tuple)):
        return None
    for m in reversed(list(messages)):
        if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), str):
            return m["content"]
    return None


# ------------------------------------------------------------------------------------------------------------- task
@dataclass(frozen=True)
class Task:
    name: str
    display: str
    description: str  # what its rows hold (the data CLI's --source help)
    question_fields: tuple[str, ...]  # the first one a row fills is its question
    gold_field: str  # holds the reference answer, or the solution it is read from (``gold_kind``)
    gold_kind: str = "answer"  # key of GOLD_EXTRACTORS
    id_field: str | None = None
    solution_field: str | None = None  # the worked solution: the SFT demonstration
    aliases: tuple[str, ...] = ()
    hub: Hub | None = None  # the dataset on the Hub: the data CLI's default --input, and the benchmark's hub copy
    test_hub: Hub | None = None  # the benchmark's hub copy, when it is another hub dataset than ``hub``
    default_path: str = ""  # the benchmark file below the benchmarks folder ("" and no builder: not a benchmark)
    alt_paths: tuple[str, ...] = ()  # other relative paths tried (Qwen2.5-Math layout names)
    expected_rows: int | None = None
    in_paper_average: bool = False
    builder: Callable[[], list[dict]] | None = None  # a generated benchmark's rows (no file needed)

    def __post_init__(self):
        if self.gold_kind not in GOLD_EXTRACTORS:
            raise ValueError(f"task {self.name!r}: unknown gold_kind {self.gold_kind!r}; use one of "
                             f"{list(GOLD_EXTRACTORS)}")

    # -------------------------------------------------------------------------------------------- where it is
    @property
    def is_benchmark(self) -> bool:
        return bool(self.default_path or self.builder)

    @property
    def hub_name(self) -> str | None:
        """The hub dataset of its training rows (the data CLI's default ``--input``), if any."""
        return self.hub.name if self.hub and self.hub.train else None

    @property
    def benchmark_hub(self) -> Hub | None:
        """The hub copy of its held-out problems, if any."""
        return self.test_hub or (self.hub if self.hub and self.hub.test else None)

    def relative_paths(self) -> list[str]:
        """Where the benchmark file may live below the benchmarks folder, most likely first."""
        rels = [self.default_path, *self.alt_paths, *(f"{a}/test.jsonl" for a in (self.name, *self.aliases))]
        return list(dict.fromkeys(r for r in rels if r))

    # ------------------------------------------------------------------------------------------- benchmark rows
    def question(self, row: dict) -> str | None:
        for f in self.question_fields:
            v = row.get(f)
            if isinstance(v, str) and v.strip():
                return v
        return None

    def gold(self, row: dict) -> str | None:
        """The row's reference answer, normalised for comparison (None when it has none)."""
        return GOLD_EXTRACTORS[self.gold_kind](row.get(self.gold_field))

    def problem_id(self, row: dict, position: int) -> str:
        """The row's id field, else its 0-based position in the file."""
        pid = row.get(self.id_field) if self.id_field else None
        return str(pid) if pid is not None else str(position)

    def fits(self, row: dict) -> bool:
        return self.question(row) is not None and row.get(self.gold_field) is not None

    # -------------------------------------------------------------------------------------------- training rows
    def with_fields(self, question: str | None = None, response: str | None = None,
                    answer: str | None = None) -> Task:
        """This task with the fields a user named (``--question-field`` ...); a named answer field holds the answer
        itself."""
        changes = {}
        if question:
            changes["question_fields"] = (question,)
        if response:
            changes["solution_field"] = response
        if answer:
            changes.update(gold_field=answer, gold_kind="answer")
        return replace(self, **changes)

    def example(self, row: dict, need_response: bool) -> Example:
        """The training example of a row (``need_response``: the SFT format needs a demonstration)."""
        problem = self.problem(row)
        response = self.response(row, need_response)
        return Example(problem, response, self.answer(row, response))

    def problem(self, row: dict) -> str:
        """The question, or a :class:`RowError` saying why there is none."""
        text = self.question(row)
        if text is not None:
            return text
        present = next((f for f in self.question_fields if row.get(f) is not None), None)
        if present is None:
            names = "/".join(repr(f) for f in self.question_fields)
            raise RowError("missing_field", f"no question field {names} (row has: {_fields_of(row)})")
        if not isinstance(row[present], str):
            raise RowError("missing_field",
                           f"question field {present!r} is {type(row[present]).__name__}, not a string")
        raise RowError("missing_field", f"question field {present!r} is empty")

    def response(self, row: dict, required: bool) -> str | None:
        """The demonstration: the solution field's text (``required``: else a :class:`RowError`)."""
        f = self.solution_field
        value = row.get(f) if f else None
        if not required:
            return value if isinstance(value, str) else None
        if value is None:
            raise RowError("missing_field", f"no response field {f!r} (row has: {_fields_of(row)})")
        return require_text(value, "empty_response", f"response field {f!r} is empty")

    def answer(self, row: dict, response: str | None) -> str:
        """The reference answer as training data stores it: the gold field's when it holds the answer itself and the
        row fills it, else the final answer of the demonstration (last ``\\boxed{}``, else ``####``)."""
        if self.gold_kind in ANSWER_KINDS and row.get(self.gold_field) is not None:
            value = row[self.gold_field]
            ans = reference_answer(value)
            if ans is None:
                raise RowError("no_answer", f"answer field {self.gold_field!r} holds no usable answer "
                                            f"({str(value)[:60]!r})")
            return ans
        ans = None
        if response:
            ans = reference_answer(last_boxed(response)) or reference_answer(gsm8k_final(response))
        if ans is None:
            raise RowError("no_answer",
                           "cannot extract a reference answer (no answer field, no \\boxed{} or #### answer)")
        return ans


# --------------------------------------------------------------------------------------------- a file of no task
_QUESTION_CANDIDATES = ("problem", "question", "prompt", "input", "Problem", "Question", "query")
_GOLD_CANDIDATES = (
    "answer", "final_answer", "gold", "ground_truth", "target", "expected_answer", "Answer", "label", "solution",
)
_ID_CANDIDATES = ("id", "unique_id", "idx", "problem_id", "ID", "uid", "index")


def infer_task(name: str, rows: list[dict], where: str = "", need_gold: bool = True) -> Task:
    """The task of a file that belongs to no registered one, from the fields of its first row (``need_gold=False``:
    the question and id are enough, as for decontamination)."""
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
    return Task(name, name, f"fields of {where or name}", tuple(q), gold_field, kind, id_field, sol)
