"""Stage 1's per-sample log, ``<stage dir>/samples.jsonl``: one line per optimizer step with every trained sample's
index, NLL, z, weight and token count. Appended after each step; a resume keeps the steps up to the checkpoint it
starts from, each exactly once (also a resume with no checkpoint yet, which keeps none), and a line cut by a kill is
dropped (``cadft_verl.utils.files``)."""

from __future__ import annotations

import os

from cadft_verl.utils.files import append_jsonl, read_jsonl, write_jsonl

SAMPLES_FILE = "samples.jsonl"


class SampleLog:
    def __init__(self, path: str):
        self.path = path

    def append(self, step: int, per_sample: dict) -> None:
        if per_sample.get("c"):
            append_jsonl(self.path, {"step": step, **per_sample})

    def keep_until(self, step: int) -> None:
        """Drop the steps after ``step`` (they are trained again) and a line cut by a kill."""
        if os.path.exists(self.path):
            write_jsonl(self.path, [row for row in read_jsonl(self.path) if int(row["step"]) <= step])

    def rows(self) -> list[dict]:
        return read_jsonl(self.path)
