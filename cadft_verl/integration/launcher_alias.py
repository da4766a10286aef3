"""Make ``python -m verl.trainer.main`` resolve to ``cadft_verl.main`` without adding files to verl.

verl 0.9.1 ships no ``verl.trainer.main``. The plugin (loaded by ``import verl``, which ``python -m`` performs
while importing the parent package) appends a meta-path finder that answers only for that one module name, and
only when no real module of that name exists: a future verl with its own ``verl.trainer.main`` wins.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

ALIASES = {"verl.trainer.main": os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "main.py")}


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        source = ALIASES.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def install() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
