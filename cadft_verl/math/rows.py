"""The one row reader of math data: local files (JSON lines, a JSON array or ``{"data": [...]}``, parquet) and
Hugging Face Hub datasets.

Every reader yields :class:`RawRow` (location, position, dict). A line that cannot be read is yielded with its
:class:`RowError` instead of a dict, so a caller decides whether to skip it (data conversion) or stop (evaluation).
A source that cannot be read as a whole (unsupported file type, malformed JSON array, text that is not UTF-8, a hub
dataset that does not load) raises :class:`ReadError` naming it.
Text files may start with a UTF-8 byte-order mark and use CRLF line ends; blank lines are skipped.
Locations: ``path:LINE`` (1-based) for JSON lines, ``path:row N`` (0-based) for JSON arrays and parquet,
``hf://owner/name[:config]@split:row N`` for the hub.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: keys of a JSON object file whose list holds the rows (``{"data": [...]}``)
WRAPPER_KEYS = ("data", "rows", "examples", "test", "train")


class RowError(Exception):
    """One row cannot be used; ``reason`` is the summary key (e.g. ``malformed_json``, ``missing_field``)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class ReadError(Exception):
    """A file or hub dataset cannot be read as a whole; the message names it."""


class HubError(ReadError):
    """A hub dataset does not load (offline, unknown name, no access)."""


@dataclass
class RawRow:
    location: str  # "path:LINE" for JSONL (1-based line), "path:row N" for parquet / JSON arrays, "hub:...:row N"
    position: int  # 0-based position among the file's rows: the stable ``index`` of a converted row
    data: dict | None
    error: RowError | None = None  # set when the line itself is unreadable (malformed JSON, not an object)


def _decode_line(path: str, lineno: int, pos: int, line: str) -> RawRow:
    loc = f"{path}:{lineno}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return RawRow(loc, pos, None, RowError("malformed_json", f"malformed JSON line ({e.msg} at column {e.colno})"))
    if not isinstance(obj, dict):
        return RawRow(loc, pos, None, RowError("malformed_json", f"line is JSON {type(obj).__name__}, not an object"))
    return RawRow(loc, pos, obj)


def read_jsonl(path: str) -> Iterator[RawRow]:
    """Rows of a JSON-lines file (BOM, CRLF and blank lines handled)."""
    with open(path, encoding="utf-8-sig", newline=None) as f:
        pos = 0
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            yield _decode_line(path, lineno, pos, line)
            pos += 1


def _array_rows(path: str, items: list) -> Iterator[RawRow]:
    for i, obj in enumerate(items):
        loc = f"{path}:row {i}"
        if isinstance(obj, dict):
            yield RawRow(loc, i, obj)
        else:
            yield RawRow(loc, i, None, RowError("malformed_json", f"item is JSON {type(obj).__name__}, not an object"))


def read_json(path: str) -> Iterator[RawRow]:
    """Rows of a ``.json`` file: a JSON array, an object wrapping one (``{"data": [...]}``), or JSON lines."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    head = text.lstrip()[:1]
    if head == "[" or head == "{":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            if head == "[":
                raise ReadError(f"{path}:{e.lineno}: malformed JSON file ({e.msg}, column {e.colno})") from None
            obj = None  # "{" on the first line and more objects below: JSON lines in a .json file
        if isinstance(obj, list):
            yield from _array_rows(path, obj)
            return
        if isinstance(obj, dict):
            items = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), list)), None)
            yield from _array_rows(path, items if items is not None else [obj])
            return
    yield from read_jsonl(path)


def _plain(v):
    return v.tolist() if hasattr(v, "tolist") else v


def read_parquet(path: str) -> Iterator[RawRow]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as e:
        raise ReadError(f"{path}: not a parquet file ({e})") from None
    pos = 0
    for batch in table.iter_batches(batch_size=4096):
        for obj in batch.to_pylist():
            yield RawRow(f"{path}:row {pos}", pos, {k: _plain(v) for k, v in obj.items()})
            pos += 1


READERS: dict[str, Callable[[str], Iterator[RawRow]]] = {
    ".jsonl": read_jsonl,
    ".json": read_json,
    ".parquet": read_parquet,
}


def read_rows(path: str, other: Callable[[str], Iterator[RawRow]] | None = None) -> Iterator[RawRow]:
    """Rows of a local file, chosen by its extension (see :data:`READERS`); a file of another extension is read by
    ``other``, else refused."""
    ext = os.path.splitext(path)[1].lower()
    reader = READERS.get(ext, other)
    if reader is None:
        raise ReadError(f"{path}: unsupported file type {ext!r}; use one of {sorted(READERS)}")
    return _utf8(path, reader(path))


def _utf8(path: str, rows: Iterator[RawRow]) -> Iterator[RawRow]:
    try:
        yield from rows
    except UnicodeDecodeError as e:
        raise ReadError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def hub_uri(name: str, config: str | None, split: str) -> str:
    """``hf://owner/name[:config]@split``: how a hub dataset is named in locations and messages."""
    return f"hf://{name}{':' + config if config else ''}@{split}"


def read_hub(name: str, config: str | None = None, split: str = "train") -> tuple[Iterator[RawRow], int]:
    """Rows of a hub dataset (``datasets.load_dataset(name, config, split=split)``, network or local cache) and
    their number."""
    uri = hub_uri(name, config, split)
    try:
        import datasets

        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # noqa: BLE001 - offline / unknown name / auth: all reported the same way
        raise HubError(f"cannot load {uri} from the Hugging Face Hub ({type(e).__name__}: {str(e)[:300]})") from None
    return (RawRow(f"{uri}:row {i}", i, dict(obj)) for i, obj in enumerate(ds)), len(ds)


_HUB_NAME_RE = re.compile(r"^[\w.-]+/[\w.-]+$")


def open_rows(source: str, split: str = "train", config: str | None = None) -> tuple[Iterator[RawRow], int | None]:
    """Rows of a local data file or, when no such file exists and ``source`` looks like ``owner/name``, of that hub
    dataset; and their number where it is known without reading them."""
    if os.path.isfile(source):
        return read_rows(source), count_rows(source)
    if os.path.exists(source):
        raise ReadError(f"{source}: is a directory; pass a data file ({', '.join(sorted(READERS))})")
    if _HUB_NAME_RE.match(source) and os.path.splitext(source)[1].lower() not in READERS:
        return read_hub(source, config, split)
    raise ReadError(f"{source}: no such file (and not a hub dataset name of the form owner/name)")


def count_rows(path: str) -> int | None:
    """Number of rows without parsing them (parquet metadata, non-blank JSONL lines); None for ``.json``."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if ext == ".jsonl":
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip() and line.strip() != b"\xef\xbb\xbf")
    return None
