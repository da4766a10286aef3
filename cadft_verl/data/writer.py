"""Output folders a conversion owns.

- :class:`AtomicOutputs`: all-or-nothing output: every file goes to a temporary name in its own folder, then
  ``os.replace`` at the end.
- :func:`publish`: writes a conversion's files and its ``summary.json`` that way, the summary recording the files
  (``files``, relative to the folder). Then it removes the files that the folder's previous conversion recorded and
  this one did not write, so a folder holds one conversion: a rerun with other formats, or without a val split,
  leaves no stale ``sft/*.parquet`` or ``val.parquet`` for a recipe to train on. Files no conversion recorded are
  never touched.
"""

from __future__ import annotations

import json
import os

from cadft_verl.utils.files import read_json, temp_path

SUMMARY = "summary.json"
#: what a summary written before conversions recorded their files stands for: every file a conversion could write
_UNRECORDED = tuple(f"{fmt}/{split}.parquet" for fmt in ("sft", "rl") for split in ("train", "val"))


class AtomicOutputs:
    """Collects outputs; ``commit()`` renames them all into place, ``discard()`` (or an exception) removes them."""

    def __init__(self):
        self._pending: list[tuple[str, str]] = []  # (tmp, final)

    def _tmp(self, path: str) -> str:
        tmp = temp_path(path)
        self._pending.append((tmp, path))
        return tmp

    def parquet(self, path: str, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), self._tmp(path))

    def text(self, path: str, text: str) -> None:
        with open(self._tmp(path), "w", encoding="utf-8") as f:
            f.write(text)

    def json(self, path: str, obj) -> None:
        with open(self._tmp(path), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")

    def commit(self) -> None:
        for tmp, final in self._pending:
            os.replace(tmp, final)
        self._pending.clear()

    def discard(self) -> None:
        for tmp, _ in self._pending:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        self._pending.clear()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.discard()
        return False


def recorded_files(out: str) -> set[str]:
    """The files (relative to ``out``) that the conversion whose summary ``out`` holds wrote; none without one."""
    summary = read_json(os.path.join(out, SUMMARY), tolerant=True)
    files = summary.get("files", _UNRECORDED) if isinstance(summary, dict) else ()
    return {f for f in files if isinstance(f, str)} if isinstance(files, (list, tuple)) else set()


def publish(out: str, parquet: dict[str, list[dict]], summary: dict, also: tuple[str, ...] = ()) -> dict:
    """Write ``parquet`` (path relative to ``out`` -> rows) and ``out/summary.json`` all or nothing, the summary
    recording them and ``also`` (files the caller wrote into ``out`` before) as ``files``; then remove the files the
    previous summary recorded that this conversion did not write. Returns the summary written."""
    before = recorded_files(out)
    summary = {**summary, "files": sorted({*parquet, *also})}
    with AtomicOutputs() as w:
        for rel, rows in parquet.items():
            w.parquet(os.path.join(out, rel), rows)
        w.json(os.path.join(out, SUMMARY), summary)
        w.commit()
    _remove(out, before - set(summary["files"]))
    return summary


def _remove(out: str, stale: set[str]) -> None:
    """Remove ``stale`` files below ``out`` and the folders they leave empty (never ``out`` itself, never anything
    outside it)."""
    root = os.path.realpath(out)
    for rel in sorted(stale):
        path = os.path.realpath(os.path.join(root, rel))
        if os.path.commonpath([root, path]) != root or path == root or not os.path.isfile(path):
            continue
        os.unlink(path)
        folder = os.path.dirname(path)
        while folder != root and not os.listdir(folder):
            os.rmdir(folder)
            folder = os.path.dirname(folder)
