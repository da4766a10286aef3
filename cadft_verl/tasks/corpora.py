"""Training corpora: NuminaMath-CoT, OpenR1-Math-220k, and ``generic`` (any file, its fields named by the user).

They are not benchmarks; what sets NuminaMath and OpenR1 apart is where a row's demonstration is
(:meth:`~cadft_verl.tasks.base.Task.response`).
"""

from __future__ import annotations

from cadft_verl.tasks.base import Hub, Task, assistant_from_messages, require_text


class NuminaTask(Task):
    """The demonstration is the solution, else the assistant turn of ``messages``."""

    def response(self, row: dict, required: bool) -> str | None:
        f = self.solution_field
        solution = row.get(f) if f else None
        if not (isinstance(solution, str) and solution.strip()):
            solution = assistant_from_messages(row.get("messages"))
        return require_text(solution, "empty_response", f"empty solution ({f!r} and messages)") if required \
            else solution


class OpenR1Task(Task):
    """The demonstration is the user's ``--response-field`` if named, else the first generation math-verify marked
    correct (and, where recorded, complete), else the assistant turn of ``messages``, else the short ``solution``."""

    def response(self, row: dict, required: bool) -> str | None:
        if self.solution_field != "generations":
            response = row.get(self.solution_field)
        else:
            gens = row.get("generations") or []
            ok = row.get("correctness_math_verify") or []
            complete = row.get("is_reasoning_complete") or []
            response = next((g for i, g in enumerate(gens) if i < len(ok) and ok[i]
                             and (i >= len(complete) or complete[i]) and isinstance(g, str) and g.strip()), None)
            if not response:
                response = assistant_from_messages(row.get("messages")) or row.get("solution")
        if required:
            return require_text(response, "empty_response", "no correct generation, assistant message or solution")
        return response if isinstance(response, str) else None


NUMINA = NuminaTask(
    "numina", "NuminaMath-CoT", "NuminaMath-CoT: source, problem, solution (\\boxed{} answer), messages",
    ("problem",), "solution", "last_boxed", solution_field="solution", hub=Hub("AI-MO/NuminaMath-CoT"),
)
OPENR1 = OpenR1Task(
    "openr1", "OpenR1-Math", "OpenR1-Math-220k: problem, solution, answer, generations + correctness_math_verify, "
    "messages", ("problem",), "answer", "answer", solution_field="generations",
    hub=Hub("open-r1/OpenR1-Math-220k", "default", test=None),
)
GENERIC = Task(
    "generic", "generic", "any JSONL/JSON/parquet: --question-field, --response-field, --answer-field (answer "
    "optional: else the last \\boxed{} / #### of the response)", ("question",), "answer", "answer",
    solution_field="response",
)
