"""Row filters: deduplication, decontamination against evaluation benchmarks, and max-length filtering."""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

# LaTeX spacing / sizing commands that change nothing in a problem's meaning.
_LATEX_NOISE = re.compile(
    r"\\(?:[ ,!;:>]|(?:quad|qquad|enspace|thinspace|negthinspace|left|right|displaystyle|textstyle)(?![a-zA-Z]))"
)
_FRAC_VARIANTS = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_WHITESPACE = re.compile(r"\s+")


def normalize_problem(text: str) -> str:
    """Canonical form for duplicate / contamination matching: NFKC, lower case, ``\\dfrac``/``\\tfrac`` -> ``\\frac``,
    LaTeX spacing (``\\ ``, ``\\,``, ``\\!``, ``\\;``, ``\\quad``, ``\\left``/``\\right``...), ``$``, ``~`` and all
    whitespace removed."""
    t = unicodedata.normalize("NFKC", text or "").lower()
    t = _FRAC_VARIANTS.sub(r"\\frac", t)
    t = _LATEX_NOISE.sub("", t)
    t = t.replace("$", "").replace("~", "")
    return _WHITESPACE.sub("", t)


class Deduplicator:
    """Keeps the first row of each normalised problem text."""

    def __init__(self):
        self.seen: set[str] = set()

    def is_duplicate(self, problem: str) -> bool:
        key = normalize_problem(problem)
        if key in self.seen:
            return True
        self.seen.add(key)
        return False


BENCHMARK_FIELDS = ("problem", "question")


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
    """Exact and normalised-text match of a problem against a set of benchmark problems."""

    def __init__(self, problems: Iterable[str] = (), origin: str = "given"):
        self.exact: dict[str, str] = {}
        self.normalized: dict[str, str] = {}
        self.files: list[str] = []
        self.add(problems, origin)

    def add(self, problems: Iterable[str], origin: str) -> None:
        for p in problems:
            if isinstance(p, str) and p.strip():
                self.exact.setdefault(p.strip(), origin)
                self.normalized.setdefault(normalize_problem(p), origin)

    def add_file(self, path: str | os.PathLike) -> int:
        """Add the ``problem``/``question`` texts of a benchmark JSONL file; returns how many texts were read."""
        texts = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict):
                    texts.extend(row[k] for k in BENCHMARK_FIELDS if isinstance(row.get(k), str))
        self.add(texts, str(path))
        self.files.append(str(path))
        return len(texts)

    @classmethod
    def from_dir(cls, bench_dir: str | os.PathLike, exclude: Iterable[str] = ()) -> Decontaminator:
        d = cls()
        for p in benchmark_files(bench_dir, exclude):
            d.add_file(p)
        return d

    def __len__(self) -> int:
        return len(self.normalized)

    def match(self, problem: str) -> str | None:
        """Where the problem was found (benchmark file), or None if it is clean."""
        hit = self.exact.get(problem.strip())
        if hit is None:
            hit = self.normalized.get(normalize_problem(problem))
        return hit


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"cannot load tokenizer {path!r}: {type(e).__name__}: {e}") from None


def chat_lengths(tokenizer, conversations: list[list[dict]], batch_size: int = 512) -> list[int]:
    """Token count of each chat-templated conversation (prompt + response, as the SFT dataset tokenizes it)."""
    lengths: list[int] = []
    for i in range(0, len(conversations), batch_size):
        texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations[i : i + batch_size]]
        enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        lengths.extend(len(ids) for ids in enc)
    return lengths
