"""Conversion pipeline, driven by a task (:mod:`cadft_verl.tasks`): read its rows (a file, or its hub dataset),
make each a training example, filter them (bad input, decontamination, val overlap, length, duplicates), split, and
write verl's SFT and RL parquet files.

Layout written under ``out``::

    out/sft/train.parquet   messages (system?, user, assistant), data_source, extra_info
    out/sft/val.parquet
    out/rl/train.parquet    data_source, prompt (chat list), ability, reward_model{style, ground_truth}, extra_info
    out/rl/val.parquet
    out/summary.json        counts, drops, options, and ``files``: what this conversion wrote

The conversion owns ``out``: a rerun into it removes the files the previous one wrote and it does not
(:func:`cadft_verl.data.writer.publish`).

``extra_info`` (same in both formats): index (row position in its input file: stable, unique per output file),
uid ("<task>/<input split>/<index>"), split, source (the task), data_source, ground_truth, question, location
(file:line).
"""

from __future__ import annotations

import itertools
import os
import random
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from cadft_verl.data.decontaminate import DecontaminationError, Decontaminator
from cadft_verl.data.writer import SUMMARY, publish
from cadft_verl.math.ngrams import DEFAULT_N, DEFAULT_THRESHOLD, normalize_problem
from cadft_verl.math.prompts import DEFAULT_TEMPLATE, chat_templates, get_template
from cadft_verl.math.rows import HubError, RawRow, ReadError, RowError, open_rows
from cadft_verl.tasks import get_task
from cadft_verl.tasks.base import Example
from cadft_verl.utils.paths import find_benchmarks_dir

FORMATS = ("sft", "rl")
# Drop reasons: bad input (warned about; --strict stops) and filters (silent, counted).
BAD_INPUT_REASONS = ("malformed_json", "missing_field", "empty_response", "no_answer")
FILTER_REASONS = ("contaminated", "val_overlap", "too_long", "duplicate")
MAX_WARNINGS = 20
EXAMPLES_PER_REASON = 5


class DataError(Exception):
    """Input-level problem (file missing, hub unreachable, bad option, --strict row error). The CLI exits non-zero."""


def check_out(out: str) -> None:
    """Refuse an output folder that names a file, or lies below one."""
    path = os.path.abspath(out)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        what = "is a file" if path == os.path.abspath(out) else f"lies below the file {path}"
        raise DataError(f"--out {out}: {what}; name a folder (it is created when missing)")


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"cannot load tokenizer {path!r}: {type(e).__name__}: {e}") from None


def chat_lengths(tokenizer, conversations: list[list[dict]], batch_size: int = 512) -> list[int]:
    """Token count of each chat-templated conversation (prompt + response, as the SFT dataset tokenizes it)."""
    lengths: list[int] = []
    for i in range(0, len(conversations), batch_size):
        texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations[i : i + batch_size]]
        enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        lengths.extend(len(ids) for ids in enc)
    return lengths


@dataclass
class ConvertConfig:
    out: str
    source: str = "generic"  # the task (name or alias)
    input: str | None = None  # file, or hub name; default: the task's hub dataset
    val_input: str | None = None  # explicit validation file / hub name (not decontaminated: it is held out)
    split: str | None = None  # hub split of ``input`` (default: the task's training split, else "train")
    val_split: str | None = None  # hub split of ``val_input`` (default: the task's held-out split, else "test")
    hub_config: str | None = None
    question_field: str | None = None
    response_field: str | None = None
    answer_field: str | None = None
    template: str = DEFAULT_TEMPLATE
    formats: tuple[str, ...] = FORMATS
    data_source: str | None = None  # default "cadft/<task>"
    limit: int | None = None  # first N input rows (after --shuffle)
    shuffle: bool = False
    seed: int = 0
    val_size: float | None = None  # count (>= 1) or fraction (< 1) held out of ``input``
    max_length: int | None = None
    tokenizer: str | None = None
    dedup: bool = True
    decontaminate: bool = True
    decontaminate_dir: str | None = None  # default: find_benchmarks_dir()
    decontaminate_ngram: int = DEFAULT_N  # n of the n-gram overlap test (0: exact / normalised match only)
    decontaminate_threshold: float = DEFAULT_THRESHOLD  # fraction of a benchmark problem's tokens that must overlap
    strict: bool = False
    append_boxed: bool = True  # add a final "\boxed{answer}" line to SFT responses that have none
    target_rows: int | None = None  # stop reading once this many rows are kept (used by `sample`)
    progress: bool | None = None  # None: tqdm decides (off when not a terminal)
    quiet: bool = False


@dataclass
class _Kept:
    raw: RawRow
    ex: Example
    input_split: str


@dataclass
class _Stats:
    rows_in: Counter = field(default_factory=Counter)
    dropped: dict = field(default_factory=dict)  # input split -> Counter(reason)
    examples: dict = field(default_factory=dict)  # reason -> ["loc: message", ...]
    warned: int = 0

    def drop(self, input_split: str, reason: str, loc: str, message: str) -> None:
        self.dropped.setdefault(input_split, Counter())[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES_PER_REASON:
            ex.append(f"{loc}: {message}")


class Converter:
    def __init__(self, cfg: ConvertConfig):
        self.cfg = cfg
        for f in cfg.formats:
            if f not in FORMATS:
                raise DataError(f"unknown format {f!r}; choose from {FORMATS}")
        if not cfg.formats:
            raise DataError("no output format selected")
        check_out(cfg.out)
        try:
            task = get_task(cfg.source)
            self.template = get_template(cfg.template)
        except ValueError as e:
            raise DataError(str(e)) from None
        self.task = task.with_fields(cfg.question_field, cfg.response_field, cfg.answer_field)
        if not self.template.use_chat_template:
            raise DataError(
                f"--template {cfg.template}: has no chat form (evaluation of base models only); training rows are "
                f"chat messages, use one of {chat_templates()}"
            )
        self.data_source = cfg.data_source or f"cadft/{self.task.name}"
        self.need_response = "sft" in cfg.formats
        if cfg.val_input and cfg.val_size:
            raise DataError("use either --val-input (a held-out file) or --val-size (carved out of --input), not both")
        if cfg.val_size is not None and cfg.val_size < 0:
            raise DataError(f"--val-size must be >= 0, got {cfg.val_size}")
        if cfg.limit is not None and cfg.limit < 0:
            raise DataError(f"--limit must be >= 0, got {cfg.limit}")
        if cfg.max_length is not None and not cfg.tokenizer:
            raise DataError("--max-length needs --tokenizer (a local tokenizer folder or hub name)")
        self.tokenizer = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
        self.input = cfg.input or self.task.hub_name
        if not self.input:
            raise DataError(f"source {self.task.name!r} needs --input FILE")
        self.stats = _Stats()
        self.decon, self.decon_info = self._decontaminator()
        self.val_problems: set[str] = set()

    # ------------------------------------------------------------------------------------------------ setup
    def _decontaminator(self) -> tuple[Decontaminator | None, dict]:
        cfg = self.cfg
        if not cfg.decontaminate:
            return None, {"enabled": False}
        if cfg.decontaminate_dir:
            bench = cfg.decontaminate_dir
            if not os.path.isdir(bench):
                raise DataError(f"--decontaminate-dir {bench}: no such folder")
        else:
            found = find_benchmarks_dir()
            if found is None:
                self._warn(
                    "no benchmark folder found (CADFT_BENCHMARKS_DIR, ../shared/benchmarks): decontamination skipped"
                )
                return None, {"enabled": False, "reason": "no benchmark folder found"}
            bench = str(found)
        if cfg.decontaminate_ngram < 0:
            raise DataError(f"--decontaminate-ngram must be >= 0 (0 = exact match only), got {cfg.decontaminate_ngram}")
        if not 0 < cfg.decontaminate_threshold <= 1:
            raise DataError(f"--decontaminate-threshold must be in (0, 1], got {cfg.decontaminate_threshold}")
        try:
            decon = Decontaminator.from_dir(
                bench,
                exclude=[self.input, cfg.val_input or ""],
                n=cfg.decontaminate_ngram,
                threshold=cfg.decontaminate_threshold,
            )
        except DecontaminationError as e:
            raise DataError(str(e)) from None
        info = {
            "enabled": True,
            "dir": os.path.abspath(bench),
            "files": decon.files,
            "problems": len(decon),
            "ngram": cfg.decontaminate_ngram,
            "threshold": cfg.decontaminate_threshold,
            "dropped_by_match": {"exact": 0, "ngram": 0},
            "dropped": [],  # one record per dropped training row: location, file, id, match, coverage, span
        }
        return decon, info

    def _warn(self, msg: str) -> None:
        if not self.cfg.quiet:
            print(f"warning: {msg}", file=sys.stderr)

    # ----------------------------------------------------------------------------------------------- reading
    def _rows(self, source: str, split: str, limit: int | None, shuffle: bool) -> tuple[Iterable[RawRow], int | None]:
        hub = self.task.hub
        try:
            rows, total = open_rows(source, split=split, config=self.cfg.hub_config or (hub.config if hub else None))
        except HubError as e:
            raise DataError(f"{e}\nIf this machine is offline, download the data elsewhere and pass the local "
                            ".jsonl/.json/.parquet file instead of the hub name (HF_DATASETS_OFFLINE=1 uses an "
                            "existing local cache).") from None
        except ReadError as e:
            raise DataError(str(e)) from None
        rows = _checked(rows)
        if shuffle:
            rows = list(rows)
            random.Random(self.cfg.seed).shuffle(rows)
            total = len(rows)
        if limit is not None:
            rows = itertools.islice(rows, limit)
            total = min(total, limit) if total is not None else limit
        return rows, total

    def _bad(self, input_split: str, raw: RawRow, err: RowError) -> None:
        if self.cfg.strict:
            raise DataError(f"{raw.location}: {err.message} [{err.reason}]")
        self.stats.drop(input_split, err.reason, raw.location, err.message)
        if self.stats.warned < MAX_WARNINGS:
            self._warn(f"{raw.location}: {err.message}; row skipped [{err.reason}]")
        elif self.stats.warned == MAX_WARNINGS:
            self._warn("more rows skipped; not printing each (counts and examples in summary.json)")
        self.stats.warned += 1

    def _convert_input(self, source: str, input_split: str, hub_split: str, limit, shuffle, target) -> list[_Kept]:
        from tqdm import tqdm

        rows, total = self._rows(source, hub_split, limit, shuffle)
        seen: set[str] = set()
        kept: list[_Kept] = []
        bar = tqdm(rows, total=total, desc=f"{self.task.name} {input_split}", unit="row", disable=self._no_bar())
        for raw in bar:
            self.stats.rows_in[input_split] += 1
            if raw.error is not None:
                self._bad(input_split, raw, raw.error)
                continue
            try:
                ex = self.task.example(raw.data, self.need_response)
            except RowError as err:
                self._bad(input_split, raw, err)
                continue
            if self.need_response and self.cfg.append_boxed and ex.response and "\\boxed" not in ex.response:
                ex.response = ex.response.rstrip() + "\n\\boxed{" + ex.answer + "}"
            if input_split == "train" and self.decon is not None:
                hit = self.decon.find(ex.problem)
                if hit is not None:
                    self.stats.drop(
                        input_split,
                        "contaminated",
                        raw.location,
                        f"problem found in {hit.file} (id {hit.id}, {hit.match} match, coverage {hit.coverage:g})",
                    )
                    self.decon_info["dropped_by_match"][hit.match] += 1
                    self.decon_info["dropped"].append(hit.record(raw.location))
                    continue
            key = normalize_problem(ex.problem)
            if input_split == "train" and key in self.val_problems:
                self.stats.drop(input_split, "val_overlap", raw.location, "problem also in the validation input")
                continue
            if self.cfg.max_length is not None:
                n = chat_lengths(self.tokenizer, [self._conversation(ex)])[0]
                if n > self.cfg.max_length:
                    self.stats.drop(input_split, "too_long", raw.location, f"{n} tokens > {self.cfg.max_length}")
                    continue
            if self.cfg.dedup:
                if key in seen:
                    self.stats.drop(input_split, "duplicate", raw.location, "same normalised problem as an earlier row")
                    continue
                seen.add(key)
            kept.append(_Kept(raw, ex, input_split))
            if target is not None and len(kept) >= target:
                break
        bar.close()
        return kept

    def _no_bar(self):
        return None if self.cfg.progress is None else not self.cfg.progress

    def _conversation(self, ex: Example) -> list[dict]:
        msgs = self.template.messages(ex.problem)
        if self.need_response:
            msgs.append({"role": "assistant", "content": ex.response})
        return msgs

    # ----------------------------------------------------------------------------------------------- output
    def _extra(self, k: _Kept, split: str) -> dict:
        return {
            "index": k.raw.position,
            "uid": f"{self.task.name}/{k.input_split}/{k.raw.position}",
            "split": split,
            "source": self.task.name,
            "data_source": self.data_source,
            "ground_truth": k.ex.answer,
            "question": k.ex.problem,
            "location": k.raw.location,
            **k.ex.extra,
        }

    def sft_row(self, k: _Kept, split: str) -> dict:
        return {
            "data_source": self.data_source,
            "messages": self._conversation(k.ex),
            "extra_info": self._extra(k, split),
        }

    def rl_row(self, k: _Kept, split: str) -> dict:
        return {
            "data_source": self.data_source,
            "prompt": self.template.messages(k.ex.problem),
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": k.ex.answer},
            "extra_info": self._extra(k, split),
        }

    def _carve_val(self, kept: list[_Kept]) -> tuple[list[_Kept], list[_Kept]]:
        vs = self.cfg.val_size
        if not vs:
            return kept, []
        if vs >= 1 and vs != int(vs):
            raise DataError(f"--val-size {vs}: use a whole count or a fraction below 1")
        n = int(vs) if vs >= 1 else int(round(vs * len(kept)))
        if n >= len(kept):
            raise DataError(f"--val-size {vs} leaves no training rows ({len(kept)} rows after filtering)")
        chosen = set(random.Random(self.cfg.seed + 1).sample(range(len(kept)), n))
        return [k for i, k in enumerate(kept) if i not in chosen], [k for i, k in enumerate(kept) if i in chosen]

    def collect(self) -> tuple[dict[str, list[dict]], dict]:
        """Read, filter and split the input: the parquet files to write (path relative to ``out`` -> rows) and the
        summary (without ``files``, which :func:`~cadft_verl.data.writer.publish` adds)."""
        cfg = self.cfg
        hub = self.task.hub
        val: list[_Kept] = []
        if cfg.val_input:
            val_split = cfg.val_split or (hub.test if hub else None) or "test"
            val = self._convert_input(cfg.val_input, "val", val_split, None, False, None)
            self.val_problems = {normalize_problem(k.ex.problem) for k in val}
        split = cfg.split or (hub.train if hub else None) or "train"
        train = self._convert_input(self.input, "train", split, cfg.limit, cfg.shuffle, cfg.target_rows)
        if not cfg.val_input:
            train, val = self._carve_val(train)
        if not train:
            raise DataError(
                f"no training rows left from {self.input} (dropped: {dict(self.stats.dropped.get('train', {}))})"
            )
        files: dict[str, list[dict]] = {}
        paths: dict[str, str] = {}
        for fmt in cfg.formats:
            make = self.sft_row if fmt == "sft" else self.rl_row
            for part, kept in (("train", train), ("val", val)):
                if kept:
                    rel = f"{fmt}/{part}.parquet"
                    files[rel] = [make(k, part) for k in kept]
                    paths[f"{fmt}_{part}"] = os.path.abspath(os.path.join(cfg.out, rel))
        return files, self._summary(train, val, paths)

    def run(self) -> dict:
        files, summary = self.collect()
        return publish(self.cfg.out, files, summary)

    def _summary(self, train, val, paths) -> dict:
        dropped = {
            s: {r: c[r] for r in (*BAD_INPUT_REASONS, *FILTER_REASONS) if c[r]} for s, c in self.stats.dropped.items()
        }
        total = Counter()
        for c in self.stats.dropped.values():
            total.update(c)
        opts = {k: v for k, v in asdict(self.cfg).items() if k not in ("progress", "quiet", "out")}
        opts["formats"] = list(self.cfg.formats)
        return {
            "source": self.task.name,
            "input": self.input,
            "val_input": self.cfg.val_input,
            "template": self.template.name,
            "data_source": self.data_source,
            "rows_in": dict(self.stats.rows_in),
            "rows_out": {"train": len(train), "val": len(val)},
            "dropped": dropped,
            "dropped_total": dict(total),
            "dropped_examples": self.stats.examples,
            "decontamination": self.decon_info,
            "outputs": paths,
            "summary": os.path.abspath(os.path.join(self.cfg.out, SUMMARY)),
            "options": opts,
        }


def _checked(rows: Iterable[RawRow]) -> Iterator[RawRow]:
    """``rows``, a source that turns out unreadable while being read (a malformed JSON array, text that is not UTF-8)
    as a :class:`DataError`."""
    try:
        yield from rows
    except ReadError as e:
        raise DataError(str(e)) from None


def convert(cfg: ConvertConfig) -> dict:
    """Run one conversion; returns the summary (also written to ``<out>/summary.json``). Raises ``DataError``."""
    return Converter(cfg).run()


def format_summary(s: dict) -> str:
    lines = [f"source {s['source']}: {s['input']}" + (f" (val: {s['val_input']})" if s.get("val_input") else "")]
    lines.append("rows in:  " + ", ".join(f"{k} {v}" for k, v in s["rows_in"].items()))
    lines.append("rows out: " + ", ".join(f"{k} {v}" for k, v in s["rows_out"].items()))
    if s["dropped"]:
        for split, reasons in s["dropped"].items():
            lines.append(f"dropped ({split}): " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
    else:
        lines.append("dropped: none")
    d = s["decontamination"]
    if d.get("enabled"):
        how = f"{d['ngram']}-gram overlap >= {d['threshold']:g} or exact" if d.get("ngram") else "exact match"
        lines.append(
            f"decontaminated against {len(d['files'])} benchmark files in {d['dir']} ({d['problems']} problems, "
            f"{how}): dropped {d['dropped_by_match']['exact']} exact, {d['dropped_by_match']['ngram']} by n-gram "
            "overlap (each listed in summary.json)"
        )
    else:
        lines.append(f"decontamination: off ({d.get('reason', 'disabled')})")
    lines.append("outputs:")
    lines.extend(f"  {k:10s} {v}" for k, v in s["outputs"].items())
    lines.append(f"  {'summary':10s} {s['summary']}")
    return "\n".join(lines)
