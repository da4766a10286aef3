"""Helpers of the data-preparation tests (a plain module: conftest.py is not imported by name)."""

from __future__ import annotations

import json
import os


def write_jsonl(path, rows) -> str:
    """Rows are dicts (dumped as JSON) or raw strings (written as-is, e.g. a malformed line)."""
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return str(path)


def read_summary(out) -> dict:
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        return json.load(f)


# Ways a benchmark problem reaches a training corpus reworded (shared with bench/bench_decontam.py).
_SWAP_WORDS = ("value", "number", "amount", "thing")


def _one_word_changed(problem: str, seed: int) -> str:
    """One plain word (letters only, 3+ long, not a LaTeX command or inside $...$) replaced by another word."""
    import random
    import re

    spans = [m.span() for m in re.finditer(r"(?<![\\\w$])[A-Za-z]{3,}(?![\w])", problem)]
    outside = [s for s in spans if problem[: s[0]].count("$") % 2 == 0]
    if not outside:
        return problem + " Thanks."
    a, b = random.Random(seed).choice(outside)
    word = next(w for w in _SWAP_WORDS if w != problem[a:b].lower())
    return problem[:a] + word + problem[b:]


PLANT_FORMS = {
    "verbatim": lambda p, s: p,
    "whitespace": lambda p, s: "  " + " \n ".join(p.split(" ")) + "\n",
    "prefix": lambda p, s: "Problem: " + p,
    "suffix": lambda p, s: p + "\nShow your work and give the final answer.",
    "template": lambda p, s: "Solve the following math problem step by step. " + p
    + "\nPlease reason step by step, and put your final answer within \\boxed{}.",
    "one_word_changed": _one_word_changed,
}


def plant(problem: str, form: str, seed: int = 0) -> str:
    return PLANT_FORMS[form](problem, seed)
