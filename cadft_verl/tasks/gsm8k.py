"""GSM8K: grade-school word problems whose ``answer`` field is a worked solution with ``<<expr=result>>``
calculator annotations and a final ``#### x`` line.

As a benchmark, its 1,319 test problems (``gsm8k/test.jsonl``, gold: after ``####``, thousands separators removed).
As training data, each row's demonstration is the solution without its annotations and with the ``#### x`` line
replaced by a final ``\\boxed{x}`` line (:func:`gsm8k_response`), the answer format the reward reads.
"""

from __future__ import annotations

import re

from cadft_verl.math.answers import reference_answer
from cadft_verl.math.extract import gsm8k_final
from cadft_verl.math.rows import RowError
from cadft_verl.tasks.base import ANSWER_KINDS, Example, Hub, Task

_CALC_RE = re.compile(r"<<[^<>]*>>")


def gsm8k_steps(solution: str) -> str:
    """A GSM8K worked solution's steps: without ``<<expr=result>>`` annotations and without its ``#### x`` line."""
    body = _CALC_RE.sub("", solution)
    cut = body.rfind("####")
    return (body[:cut] if cut >= 0 else body).rstrip()


def gsm8k_response(solution: str, answer: str) -> str:
    """GSM8K worked solution without ``<<expr=result>>`` annotations, its ``#### x`` line replaced by ``\\boxed{x}``."""
    return gsm8k_steps(solution) + "\n\\boxed{" + answer + "}"


class GSM8KTask(Task):
    """A task in GSM8K's schema: the reference answer is the solution's ``####`` line (unless the user names another
    answer field), the demonstration the solution in boxed form."""

    def example(self, row: dict, need_response: bool) -> Example:
        problem = self.problem(row)
        solution = self.response(row, True)
        if self.gold_kind in ANSWER_KINDS and self.gold_field != self.solution_field \
                and row.get(self.gold_field) is not None:
            answer = self.answer(row, None)
        else:
            answer = reference_answer(gsm8k_final(solution))
            if answer is None:
                raise RowError("no_answer", "no '#### <answer>' line in the solution")
        if need_response and not gsm8k_steps(solution).strip():
            raise RowError("empty_response", "the solution has no worked steps before '####'")
        return Example(problem, gsm8k_response(solution, answer), answer)


GSM8K = GSM8KTask(
    "gsm8k", "GSM8K", "GSM8K: question, answer (worked solution, <<calc>> annotations, '#### x' final line)",
    ("question", "problem"), "answer", "gsm8k", None, "answer",
    hub=Hub("openai/gsm8k", "main"), default_path="gsm8k/test.jsonl", expected_rows=1319,
)
