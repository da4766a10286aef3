"""The embedded arithmetic task: seeded multi-step word problems a tiny CPU model can learn, in the GSM8K schema.

    "Ava has 7 apples. Ava buys 5 more. Then Ava gives away 3. How many apples does Ava have now?"
    answer: "7 + 5 = 12\\n12 - 3 = 9\\n#### 9"

One object per concern of the task, all here: the problem space (a start value and 1-3 add/subtract steps), the split
of that space into training and held-out problems (by a hash of the numbers and operations, so no held-out problem
is seen in training under any name or wording), the renderings of a solution (``KINDS``), the rows, and the task:

- ``train_rows``: the training mix. Most demonstrations are ``clean``; the rest are incompatible in the ways real data
  is: ``wrong_step`` (an intermediate result is wrong, the final answer is right), ``style`` (numbers in words, a
  different solution style) and ``answer_only`` (no worked steps). Each row records its ``kind``.
- ``pretrain_rows``: clean demonstrations of part of the task (``max_steps`` 2 by default) for the base model
  (:mod:`cadft_verl.demo.pretrain`).
- ``test_rows``: the held-out problems, the benchmark ``arith`` (it needs no file).
- ``ARITH``: the task (:class:`cadft_verl.tasks.base.Task`): GSM8K's schema, and its examples carry each row's
  ``kind``, step count and the problem's clean ``chain`` of equations into ``extra_info`` (the RL reward checks it).

Everything is a pure function of its seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from cadft_verl.tasks.base import Example
from cadft_verl.tasks.gsm8k import GSM8KTask

NAMES = ("Ava", "Ben", "Cara", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Milo", "Nora",
         "Omar", "Pia")
ITEMS = ("apples", "marbles", "stickers", "coins", "books", "pens", "cards", "shells")
ADD_PHRASES = ("buys {n} more", "finds {n} more", "gets {n} more from a friend")
SUB_PHRASES = ("gives away {n}", "loses {n}", "uses {n}")
START = range(2, 10)  # the first number
OPERAND = range(1, 10)  # every later number
LIMIT = 10  # every intermediate value stays in [0, LIMIT): one digit, one token
HELD_OUT = 8  # one problem in HELD_OUT (by the hash of its numbers) is held out for testing

#: demonstration kinds and their default share of the training mix
KINDS = ("clean", "wrong_step", "style", "answer_only")
DEFAULT_MIX = {"clean": 0.7, "wrong_step": 0.1, "style": 0.1, "answer_only": 0.1}

_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen").split()
_TENS = {2: "twenty", 3: "thirty", 4: "forty"}


def words(n: int) -> str:
    """0..49 in English words ("twenty-three")."""
    if n < 20:
        return _WORDS[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_WORDS[ones]}" if ones else "")


@dataclass(frozen=True)
class Problem:
    start: int
    steps: tuple[tuple[str, int], ...]  # ("+", 5), ("-", 3)
    name: str
    item: str
    phrases: tuple[str, ...]

    @property
    def values(self) -> list[int]:
        """The running values: start, after step 1, ..."""
        out = [self.start]
        for op, n in self.steps:
            out.append(out[-1] + n if op == "+" else out[-1] - n)
        return out

    @property
    def answer(self) -> int:
        return self.values[-1]

    @property
    def key(self) -> str:
        """The problem's identity: its numbers and operations (not its name, item or wording)."""
        return f"{self.start}" + "".join(f"{op}{n}" for op, n in self.steps)

    @property
    def held_out(self) -> bool:
        return int(hashlib.sha256(self.key.encode()).hexdigest(), 16) % HELD_OUT == 0

    def question(self) -> str:
        parts = [f"{self.name} has {self.start} {self.item}."]
        for i, (phrase, (_, n)) in enumerate(zip(self.phrases, self.steps)):
            parts.append(("Then " if i else "") + f"{self.name} {phrase.format(n=n)}.")
        parts.append(f"How many {self.item} does {self.name} have now?")
        return " ".join(parts)

    def equations(self, wrong_at: int | None = None, slip: int = 0) -> list[str]:
        vals = self.values
        lines = []
        for i, (op, n) in enumerate(self.steps):
            result = vals[i + 1] + (slip if i == wrong_at else 0)
            lines.append(f"{vals[i]} {op} {n} = {result}")
        return lines

    def solution(self, kind: str = "clean", rng: random.Random | None = None) -> str:
        """The GSM8K-schema answer field of this problem as a demonstration of ``kind``."""
        rng = rng or random.Random(0)
        final = f"#### {self.answer}"
        if kind == "clean":
            return "\n".join([*self.equations(), final])
        if kind == "wrong_step":  # a wrong intermediate result; the next step goes on from the right one
            at = rng.randrange(len(self.steps) - 1) if len(self.steps) > 1 else 0
            wrong = self.values[at + 1] if len(self.steps) > 1 else self.start  # the value that is misstated
            slip = rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if wrong + d >= 0])
            if len(self.steps) == 1:  # no intermediate step: the slip is in a restated start value
                return "\n".join([f"{self.start + slip} {self.steps[0][0]} {self.steps[0][1]} = {self.answer}", final])
            return "\n".join([*self.equations(wrong_at=at, slip=slip), final])
        if kind == "style":  # the same reasoning in words, as prose
            vals = self.values
            text = [f"Start with {words(self.start)} {self.item}."]
            for i, (op, n) in enumerate(self.steps):
                verb = "Add" if op == "+" else "Take away"
                text.append(f"{verb} {words(n)} to get {words(vals[i + 1])}.")
            text.append(f"So {self.name} has {words(self.answer)} {self.item}.")
            return " ".join(text) + "\n" + final
        if kind == "answer_only":
            return f"The answer is {self.answer}.\n{final}"
        raise ValueError(f"unknown demonstration kind {kind!r}; choose one of {KINDS}")


def random_problem(rng: random.Random, steps: int) -> Problem:
    """A uniformly drawn problem with ``steps`` operations whose values stay in [0, LIMIT)."""
    while True:
        start = rng.choice(START)
        value, ops = start, []
        for _ in range(steps):
            op = rng.choice("+-")
            n = rng.choice(OPERAND)
            value = value + n if op == "+" else value - n
            ops.append((op, n))
        if all(0 <= v < LIMIT for v in Problem(start, tuple(ops), "", "", ()).values):
            phrases = tuple(rng.choice(ADD_PHRASES if op == "+" else SUB_PHRASES) for op, _ in ops)
            return Problem(start, tuple(ops), rng.choice(NAMES), rng.choice(ITEMS), phrases)


def problems(n: int, seed: int, held_out: bool, min_steps: int = 1, max_steps: int = 3) -> Iterator[Problem]:
    """``n`` distinct problems (by key) of the training or the held-out part, step counts in turn (a step count
    whose problems are used up, such as the few hundred one-step ones, drops out)."""
    if not 1 <= min_steps <= max_steps:
        raise ValueError(f"steps must satisfy 1 <= min_steps <= max_steps (got {min_steps}, {max_steps})")
    rng = random.Random(seed)
    seen: set[str] = set()
    counts = list(range(min_steps, max_steps + 1))
    turn = misses = 0
    while len(seen) < n:
        if not counts:
            raise ValueError(f"cannot draw {n} distinct problems with {min_steps}-{max_steps} steps")
        steps = counts[turn % len(counts)]
        p = random_problem(rng, steps)
        if p.held_out == held_out and p.key not in seen:
            seen.add(p.key)
            turn, misses = turn + 1, 0
            yield p
        else:
            misses += 1
            if misses > 2000:  # this step count is used up
                counts.remove(steps)
                misses = 0


def _row(p: Problem, uid: str, kind: str, rng: random.Random) -> dict:
    return {"id": uid, "question": p.question(), "answer": p.solution(kind, rng), "kind": kind, "steps": len(p.steps),
            "item": p.item, "chain": "\n".join(p.equations())}


def _kinds(n: int, mix: dict[str, float], rng: random.Random) -> list[str]:
    bad = [k for k in mix if k not in KINDS]
    if bad or any(v < 0 for v in mix.values()) or not sum(mix.values()):
        raise ValueError(f"arith mix {mix}: shares of {KINDS} that are >= 0 and not all 0")
    total = sum(mix.values())
    kinds = [k for k in KINDS for _ in range(round(n * mix.get(k, 0) / total))]
    kinds = (kinds + ["clean"] * n)[:n]
    rng.shuffle(kinds)
    return kinds


def train_rows(n: int, seed: int = 0, mix: dict[str, float] | None = None, min_steps: int = 1,
               max_steps: int = 3) -> list[dict]:
    """The training mix: ``n`` distinct training-part problems, each a demonstration of its kind."""
    rng = random.Random(seed + 1)
    kinds = _kinds(n, dict(DEFAULT_MIX if mix is None else mix), rng)
    return [_row(p, f"arith-train-{seed}-{i}", k, rng)
            for i, (p, k) in enumerate(zip(problems(n, seed, False, min_steps, max_steps), kinds))]


def pretrain_rows(n: int, seed: int = 0, max_steps: int = 2, long_share: float | None = None) -> list[dict]:
    """Clean demonstrations of part of the task (training-part problems with at most ``max_steps`` steps, the
    same numbers may come back in other words), for the base model. Step counts are equally likely, unless
    ``long_share`` is given: then that share of the problems has ``max_steps`` steps and the rest fewer."""
    if long_share is not None and not (0 <= long_share <= 1 and max_steps > 1):
        raise ValueError(f"long_share must be in [0, 1] with max_steps > 1 (got {long_share}, {max_steps})")
    rng = random.Random(seed + 10_000)
    out = []
    while len(out) < n:
        if long_share is None:
            steps = rng.randint(1, max_steps)
        else:
            steps = max_steps if rng.random() < long_share else rng.randint(1, max_steps - 1)
        p = random_problem(rng, steps)
        if not p.held_out:
            out.append(_row(p, f"arith-pretrain-{seed}-{len(out)}", "clean", rng))
    return out


#: the held-out benchmark ``arith``: its size and seed
TEST_SIZE = 150
TEST_SEED = 1234


def test_rows(n: int = TEST_SIZE, seed: int = TEST_SEED) -> list[dict]:
    """The held-out problems (never in ``train_rows``/``pretrain_rows``), equal shares of 1, 2 and 3 steps."""
    rng = random.Random(seed + 1)
    return [_row(p, f"arith-test-{i}", "clean", rng) for i, p in enumerate(problems(n, seed, True))]


class ArithTask(GSM8KTask):
    """GSM8K's schema, plus the demonstration's kind, step count and the problem's (clean) chain of equations, kept
    in ``extra_info`` (the chain is what the RL reward checks: cadft_verl.reward.chain)."""

    def example(self, row: dict, need_response: bool) -> Example:
        ex = super().example(row, need_response)
        ex.extra = {k: row[k] for k in ("kind", "steps", "chain") if row.get(k) is not None}
        return ex


ARITH = ArithTask(
    "arith", "Arith", "the embedded arithmetic task (GSM8K schema + kind, steps; python -m cadft_verl.data arith "
    "writes it)", ("question",), "answer", "gsm8k", "id", "answer", expected_rows=TEST_SIZE, builder=test_rows,
)
