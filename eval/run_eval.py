#!/usr/bin/env python
"""Evaluate one model on math benchmarks: ``python eval/run_eval.py --model PATH --out DIR [options]``.

Thin wrapper over ``python -m cadft_verl.eval run`` (all options: ``--help``; docs/eval.md).
"""

import sys

from cadft_verl.eval.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
