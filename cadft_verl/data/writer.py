"""All-or-nothing output: every file goes to a temporary name in its own folder, then ``os.replace`` at the end."""

from __future__ import annotations

import json
import os


class AtomicOutputs:
    """Collects outputs; ``commit()`` renames them all into place, ``discard()`` (or an exception) removes them."""

    def __init__(self):
        self._pending: list[tuple[str, str]] = []  # (tmp, final)

    def _tmp(self, path: str) -> str:
        folder, name = os.path.split(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
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
