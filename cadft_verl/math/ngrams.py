"""Normalised problem text and the n-gram overlap index that decontamination uses.

- :func:`normalize_problem`: one canonical string per problem (exact / duplicate matching).
- :func:`problem_tokens`: the same normalisation, kept as tokens (words, numbers, LaTeX commands, operators).
- :class:`NgramIndex`: the n-grams of a set of reference problems (benchmarks); :meth:`NgramIndex.match` finds the
  reference problem a text contains (all of it, or a large part of it reworded).

How a match is decided (``n``, ``threshold``):
a reference problem of ``L`` tokens is cut into its ``n``-grams (below ``2 n`` tokens into grams of ``n // 2``, at
least ``MIN_TOKENS``; a problem shorter than that is one gram, so it must appear whole). A text matches it when the
reference tokens covered by grams that also occur in the text are at least ``threshold`` of ``L`` *and* every number
of the reference problem occurs in the text (as often). Wrapping a problem in a prefix, a suffix or a prompt template
keeps the coverage at 1; changing one word loses at most ``size - 1`` covered tokens on each side of it. A changed
number makes another problem (another answer), so it is not a match.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

#: defaults chosen by bench/bench_decontam.py (planted MATH-500 / GSM8K test problems vs clean GSM8K train)
DEFAULT_N = 8
DEFAULT_THRESHOLD = 0.5
#: reference problems with fewer tokens than this are matched exactly only (too short to tell apart by overlap)
MIN_TOKENS = 4

# LaTeX spacing / sizing commands that change nothing in a problem's meaning.
_LATEX_NOISE = re.compile(
    r"\\(?:[ ,!;:>]|(?:quad|qquad|enspace|thinspace|negthinspace|left|right|displaystyle|textstyle)(?![a-zA-Z]))"
)
_FRAC_VARIANTS = re.compile(r"\\[dt]frac(?![a-zA-Z])")


def _canonical(text: str) -> str:
    t = unicodedata.normalize("NFKC", text or "").lower()
    t = _FRAC_VARIANTS.sub(r"\\frac", t)
    return _LATEX_NOISE.sub(" ", t)


_WHITESPACE = re.compile(r"\s+")


def _key(canon: str) -> str:
    return _WHITESPACE.sub("", canon.replace("$", "").replace("~", ""))


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# a LaTeX command, a run of letters, a number, or one operator / bracket (punctuation, braces and $ are dropped)
_TOKEN = re.compile(r"\\[a-z]+|[^\W\d_]+|\d+(?:\.\d+)?|[-+*/=<>^_()\[\]|!%&#@]")


def _tokens(canon: str) -> list[str]:
    return _TOKEN.findall(_THOUSANDS.sub("", canon))


def normalize_problem(text: str) -> str:
    """Canonical form for duplicate / contamination matching: NFKC, lower case, ``\\dfrac``/``\\tfrac`` -> ``\\frac``,
    LaTeX spacing (``\\ ``, ``\\,``, ``\\!``, ``\\;``, ``\\quad``, ``\\left``/``\\right``...), ``$``, ``~`` and all
    whitespace removed."""
    return _key(_canonical(text))


def problem_tokens(text: str) -> list[str]:
    """Normalised tokens: as :func:`normalize_problem`, then words, numbers (thousands separators removed), LaTeX
    commands and single operators; punctuation, braces, ``$`` and ``~`` dropped."""
    return _tokens(_canonical(text))


def key_and_tokens(text: str) -> tuple[str, list[str]]:
    """``(normalize_problem(text), problem_tokens(text))``, normalising the text once."""
    canon = _canonical(text)
    return _key(canon), _tokens(canon)


_NUMBER = re.compile(r"\d")


def _numbers(tokens: Iterable[str]) -> Counter:
    return Counter(t for t in tokens if _NUMBER.match(t))


@dataclass(frozen=True)
class NgramMatch:
    ref: int  # index of the reference problem (order of ``NgramIndex.add``)
    coverage: float  # fraction of the reference problem's tokens covered by shared n-grams
    span: str  # the longest covered stretch of the reference problem (normalised tokens)


class NgramIndex:
    """n-grams of reference problems, for overlap matching (see the module docstring)."""

    def __init__(self, n: int = DEFAULT_N, threshold: float = DEFAULT_THRESHOLD, min_tokens: int = MIN_TOKENS):
        if n < 1:
            raise ValueError(f"n-gram size must be >= 1, got {n}")
        if not 0 < threshold <= 1:
            raise ValueError(f"overlap threshold must be in (0, 1], got {threshold}")
        self.n = n
        self.threshold = threshold
        self.min_tokens = min_tokens
        self._refs: list[tuple[list[str], int, Counter]] = []  # tokens, gram size, numbers
        self.short_n = max(min_tokens, n // 2)
        self._grams: dict[int, dict[tuple[str, ...], list[tuple[int, int]]]] = {}  # size -> gram -> [(ref, start)]

    def gram_size(self, length: int) -> int:
        """Gram size for a reference of ``length`` tokens: ``n``; ``n // 2`` (at least ``min_tokens``) below
        ``2 n`` tokens, so that one changed word cannot remove every gram; the whole problem below that."""
        if length >= 2 * self.n:
            return self.n
        return min(length, self.short_n)

    def add(self, text: str) -> int | None:
        """Index one reference problem; returns its index, or None when it is too short for overlap matching."""
        toks = problem_tokens(text)
        if len(toks) < self.min_tokens:
            return None
        ref = len(self._refs)
        size = self.gram_size(len(toks))
        self._refs.append((toks, size, _numbers(toks)))
        table = self._grams.setdefault(size, {})
        for start, gram in enumerate(zip(*(toks[j:] for j in range(size)))):
            table.setdefault(gram, []).append((ref, start))
        return ref

    def _starts(self, toks: list[str]) -> dict[int, set[int]]:
        """Reference -> start positions (in the reference) of its grams that occur in ``toks``."""
        starts: dict[int, set[int]] = {}
        for size, table in self._grams.items():
            if len(toks) < size:
                continue
            for gram in table.keys() & set(zip(*(toks[j:] for j in range(size)))):
                for ref, start in table[gram]:
                    starts.setdefault(ref, set()).add(start)
        return starts

    def match(self, text: str, tokens: list[str] | None = None) -> NgramMatch | None:
        """The reference problem ``text`` contains best (highest coverage at or above the threshold), or None.
        ``tokens``: ``problem_tokens(text)`` when the caller has them already."""
        toks = problem_tokens(text) if tokens is None else tokens
        starts = self._starts(toks)
        best: NgramMatch | None = None
        have: Counter | None = None
        for ref, found in starts.items():
            rtoks, size, rnums = self._refs[ref]
            covered = [False] * len(rtoks)
            for s in found:
                covered[s : s + size] = [True] * size
            cov = sum(covered) / len(rtoks)
            if cov < self.threshold or (best is not None and cov <= best.coverage):
                continue
            if rnums:
                have = _numbers(toks) if have is None else have
                if any(have[k] < v for k, v in rnums.items()):
                    continue
            best = NgramMatch(ref, cov, _longest_run(rtoks, covered))
        return best


def _longest_run(tokens: list[str], covered: list[bool]) -> str:
    best, cur_start, best_span = 0, None, (0, 0)
    for i, c in enumerate([*covered, False]):
        if c and cur_start is None:
            cur_start = i
        elif not c and cur_start is not None:
            if i - cur_start > best:
                best, best_span = i - cur_start, (cur_start, i)
            cur_start = None
    return " ".join(tokens[best_span[0] : best_span[1]])
