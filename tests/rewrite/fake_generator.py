"""A deterministic rewrite generator for tests (``cadft.rewrite.generator=fake_generator:FakeGenerator``).

It knows each training row's reference answer (read from ``cadft.data.train_files``) and answers every request with
``n`` texts: odd candidates carry a wrong final answer, even ones the right one (mode ``mixed``); ``CADFT_FAKE_GEN``
selects other behaviours: ``wrong`` (every answer wrong), ``raise`` (generation fails), ``hang`` (never returns).
"""

from __future__ import annotations

import os
import time

import pandas as pd


class FakeGenerator:
    needs_rollout_workers = False

    def __init__(self, config=None, worker_group=None, tokenizer=None, gold=None):
        self.mode = os.environ.get("CADFT_FAKE_GEN", "mixed")
        if gold is None:
            files = config.cadft.data.train_files
            files = [files] if isinstance(files, str) else list(files)
            frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
            gold = [dict(x).get("ground_truth") if x is not None else None for x in frame["extra_info"]]
        self.gold = gold
        self.prepared = []
        self.released = 0
        self.calls = []

    def prepare(self, step):
        self.prepared.append(step)

    def generate(self, requests, timeout):
        self.calls.append([r.index for r in requests])
        if self.mode == "raise":
            raise RuntimeError("fake rollout engine crashed")
        if self.mode == "hang":
            time.sleep(3600)
        out = []
        for r in requests:
            gt = self.gold[r.index]
            texts = []
            for k in range(r.n):
                if self.mode == "wrong" or k % 2 == 1:
                    texts.append(f"Let me think. The result is {gt}1 apples.\n#### {gt}1")
                else:
                    texts.append(f"Let me think step by step. So the total is {gt}.\n#### {gt}")
            out.append(texts)
        return out

    def release(self):
        self.released += 1

    def shutdown(self):
        pass
