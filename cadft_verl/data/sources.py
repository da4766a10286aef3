"""Training-data sources: inputs (local files through :mod:`cadft_verl.math.rows`, or Hugging Face hub names) and
the registry of conversion specs.

A *source spec* turns one raw row into an ``Example`` (problem, response, reference answer) or raises ``RowError``
with a reason that the summary counts. Reference answers are cleaned by
:func:`cadft_verl.math.answers.reference_answer`. Adding a dataset = one ``register_source(SourceSpec(...))`` call
at the end of this file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from cadft_verl.math.answers import reference_answer
from cadft_verl.math.extract import gsm8k_final, last_boxed
from cadft_verl.math.rows import READERS, FileFormatError, RawRow, RowError, count_rows, read_rows
from cadft_verl.math.specs import get_spec

__all__ = ["SOURCES", "DataError", "Example", "RawRow", "RowError", "SourceSpec", "get_source", "open_input",
           "register_source"]


class DataError(Exception):
    """Input-level problem (file missing, hub unreachable, bad option, --strict row error). The CLI exits non-zero."""


@dataclass
class Example:
    problem: str
    response: str | None
    answer: str
    extra: dict = field(default_factory=dict)  # source-specific fields carried into extra_info (e.g. arith's kind)


# --------------------------------------------------------------------------------------------------- readers
def _read_file(path: str) -> Iterator[RawRow]:
    try:
        yield from read_rows(path)
    except FileFormatError as e:
        raise DataError(str(e)) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


_HUB_NAME_RE = re.compile(r"^[\w.-]+/[\w.-]+$")


def _read_hub(name: str, split: str, config: str | None) -> tuple[Iterator[RawRow], int | None]:
    try:
        import datasets

        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # noqa: BLE001 - offline / unknown name / auth: all reported the same way
        raise DataError(
            f"cannot load {name!r} (config={config!r}, split={split!r}) from the Hugging Face Hub: "
            f"{type(e).__name__}: {e}\n"
            "If this machine is offline, download the data elsewhere and pass the local .jsonl/.json/.parquet file "
            "instead of the hub name (HF_DATASETS_OFFLINE=1 uses an existing local cache)."
        ) from None

    def rows() -> Iterator[RawRow]:
        for i, obj in enumerate(ds):
            yield RawRow(f"hub:{name}[{split}]:row {i}", i, dict(obj))

    return rows(), len(ds)


def open_input(spec: str, split: str = "train", config: str | None = None) -> tuple[Iterator[RawRow], int | None]:
    """Rows of a local file (by extension) or, if no such file exists and ``spec`` looks like ``owner/name``,
    of a hub dataset loaded through ``datasets.load_dataset``. Returns (rows, total or None)."""
    if os.path.isfile(spec):
        ext = os.path.splitext(spec)[1].lower()
        if ext not in READERS:
            raise DataError(f"{spec}: unsupported file type {ext!r}; use one of {sorted(READERS)}")
        return _read_file(spec), count_rows(spec)
    if os.path.exists(spec):
        raise DataError(f"{spec}: is a directory; pass a data file ({', '.join(sorted(READERS))})")
    if _HUB_NAME_RE.match(spec) and os.path.splitext(spec)[1].lower() not in READERS:
        return _read_hub(spec, split, config)
    raise DataError(f"{spec}: no such file (and not a hub dataset name of the form owner/name)")


# ----------------------------------------------------------------------------------------------- row helpers
def get_field(row: dict, name: str, what: str):
    if name not in row or row[name] is None:
        raise RowError("missing_field", f"no {what} field {name!r} (row has: {', '.join(sorted(row)) or 'nothing'})")
    return row[name]


def get_text(row: dict, name: str, what: str) -> str:
    value = get_field(row, name, what)
    if not isinstance(value, str):
        raise RowError("missing_field", f"{what} field {name!r} is {type(value).__name__}, not a string")
    return value


def require_text(value: str | None, reason: str, message: str) -> str:
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


_CALC_RE = re.compile(r"<<[^<>]*>>")


def gsm8k_steps(solution: str) -> str:
    """A GSM8K worked solution's steps: without ``<<expr=result>>`` annotations and without its ``#### x`` line."""
    body = _CALC_RE.sub("", solution)
    cut = body.rfind("####")
    return (body[:cut] if cut >= 0 else body).rstrip()


def gsm8k_response(solution: str, answer: str) -> str:
    """GSM8K worked solution without ``<<expr=result>>`` annotations, its ``#### x`` line replaced by ``\\boxed{x}``."""
    return gsm8k_steps(solution) + "\n\\boxed{" + answer + "}"


# ------------------------------------------------------------------------------------------------ source specs
@dataclass(frozen=True)
class Fields:
    question: str
    response: str | None
    answer: str | None


    @classmethod
    def of_dataset(cls, name: str) -> Fields:
        """The fields of a registered dataset spec (:mod:`cadft_verl.math.specs`): its first question field, its
        worked solution as the response, its answer field when that holds the answer itself (else the answer comes
        from the response, e.g. GSM8K's ``####`` line)."""
        spec = get_spec(name)
        answer = spec.gold_field if spec.gold_kind == "answer" else None
        return cls(spec.question_fields[0], spec.solution_field, answer)


ToExample = Callable[[dict, Fields, bool], Example]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    description: str
    fields: Fields
    to_example: ToExample
    hub_name: str | None = None
    hub_config: str | None = None
    hub_val_split: str | None = None

    def with_fields(self, question=None, response=None, answer=None) -> SourceSpec:
        f = self.fields
        return replace(
            self,
            fields=Fields(question or f.question, response or f.response, answer or f.answer),
        )


def _problem(row: dict, f: Fields) -> str:
    return require_text(
        get_text(row, f.question, "question"), "missing_field", f"question field {f.question!r} is empty"
    )


def _answer(row: dict, f: Fields, fallback_text: str | None) -> str:
    """Answer field when the spec/user names one and the row has it, else extracted from ``fallback_text``."""
    ans = None
    if f.answer and row.get(f.answer) is not None:
        ans = reference_answer(row[f.answer])
        if ans is None:
            raise RowError(
                "no_answer", f"answer field {f.answer!r} holds no usable answer ({str(row[f.answer])[:60]!r})"
            )
    elif fallback_text:
        ans = reference_answer(last_boxed(fallback_text)) or reference_answer(gsm8k_final(fallback_text))
    if ans is None:
        raise RowError("no_answer", "cannot extract a reference answer (no answer field, no \\boxed{} or #### answer)")
    return ans


def _gsm8k(row: dict, f: Fields, need_response: bool) -> Example:
    problem = _problem(row, f)
    solution = get_text(row, f.response, "solution")
    if f.answer and f.answer != f.response and row.get(f.answer) is not None:
        answer = _answer(row, f, None)
    else:
        answer = reference_answer(gsm8k_final(solution))
        if answer is None:
            raise RowError("no_answer", "no '#### <answer>' line in the solution")
    body = _CALC_RE.sub("", solution)
    body = body[: body.rfind("####")] if "####" in body else body
    if need_response and not body.strip():
        raise RowError("empty_response", "the solution has no worked steps before '####'")
    return Example(problem, gsm8k_response(solution, answer), answer)


def _arith(row: dict, f: Fields, need_response: bool) -> Example:
    """The embedded arithmetic task (:mod:`cadft_verl.math.arith`): GSM8K's schema, plus the demonstration's kind
    and step count, kept in ``extra_info``."""
    ex = _gsm8k(row, f, need_response)
    ex.extra = {k: row[k] for k in ("kind", "steps") if row.get(k) is not None}
    return ex


def _math(row: dict, f: Fields, need_response: bool) -> Example:
    problem = _problem(row, f)
    solution = row.get(f.response) if f.response else None
    if need_response:
        solution = require_text(solution, "empty_response", f"empty or missing solution field {f.response!r}")
    return Example(problem, solution, _answer(row, f, solution if isinstance(solution, str) else None))


def _numina(row: dict, f: Fields, need_response: bool) -> Example:
    problem = _problem(row, f)
    solution = row.get(f.response) if f.response else None
    if not (isinstance(solution, str) and solution.strip()):
        solution = assistant_from_messages(row.get("messages"))
    if need_response:
        solution = require_text(solution, "empty_response", f"empty solution ({f.response!r} and messages)")
    return Example(problem, solution, _answer(row, f, solution))


def _openr1(row: dict, f: Fields, need_response: bool) -> Example:
    """Response: the user's --response-field if named, else the first generation math-verify marked correct (and,
    where recorded, complete), else the assistant turn of ``messages``, else the short ``solution``."""
    problem = _problem(row, f)
    response = None
    if f.response != "generations":
        response = row.get(f.response)
    else:
        gens = row.get("generations") or []
        ok = row.get("correctness_math_verify") or []
        complete = row.get("is_reasoning_complete") or []
        for i, g in enumerate(gens):
            if i < len(ok) and ok[i] and (i >= len(complete) or complete[i]) and isinstance(g, str) and g.strip():
                response = g
                break
        if not response:
            response = assistant_from_messages(row.get("messages")) or row.get("solution")
    if need_response:
        response = require_text(response, "empty_response", "no correct generation, assistant message or solution")
    return Example(problem, response, _answer(row, f, response if isinstance(response, str) else None))


def _generic(row: dict, f: Fields, need_response: bool) -> Example:
    problem = _problem(row, f)
    response = None
    if need_response:
        response = require_text(
            get_field(row, f.response, "response"), "empty_response", f"response field {f.response!r} is empty"
        )
    else:
        response = row.get(f.response) if f.response else None
    return Example(problem, response, _answer(row, f, response if isinstance(response, str) else None))


#: name -> conversion spec; adding a dataset = one ``register_source(SourceSpec(...))`` call below
SOURCES: dict[str, SourceSpec] = {}


def register_source(spec: SourceSpec) -> SourceSpec:
    if spec.name in SOURCES:
        raise ValueError(f"source {spec.name!r} is already registered")
    SOURCES[spec.name] = spec
    return spec


register_source(SourceSpec(
    "gsm8k",
    "GSM8K: question, answer (worked solution, <<calc>> annotations, '#### x' final line)",
    Fields.of_dataset("gsm8k"),
    _gsm8k,
    hub_name="openai/gsm8k",
    hub_config="main",
    hub_val_split="test",
))
register_source(SourceSpec(
    "arith",
    "the embedded arithmetic task (GSM8K schema + kind, steps; python -m cadft_verl.data arith writes it)",
    Fields.of_dataset("arith"),
    _arith,
))
register_source(SourceSpec(
    "math",
    "MATH / MATH-500: problem, solution (with \\boxed{}), optional answer",
    Fields.of_dataset("math500"),
    _math,
    hub_name="DigitalLearningGmbH/MATH-lighteval",
    hub_val_split="test",
))
register_source(SourceSpec(
    "numina",
    "NuminaMath-CoT: source, problem, solution (\\boxed{} answer), messages",
    Fields("problem", "solution", None),
    _numina,
    hub_name="AI-MO/NuminaMath-CoT",
    hub_val_split="test",
))
register_source(SourceSpec(
    "openr1",
    "OpenR1-Math-220k: problem, solution, answer, generations + correctness_math_verify, messages",
    Fields("problem", "generations", "answer"),
    _openr1,
    hub_name="open-r1/OpenR1-Math-220k",
    hub_config="default",
))
register_source(SourceSpec(
    "generic",
    "any JSONL/JSON/parquet: --question-field, --response-field, --answer-field (answer optional: "
    "else the last \\boxed{} / #### of the response)",
    Fields("question", "response", "answer"),
    _generic,
))


def get_source(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(f"unknown source {name!r}; choose one of {sorted(SOURCES)}") from None
