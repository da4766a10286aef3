#!/usr/bin/env python
"""Cold-start table from several metrics.json files:
``python eval/compare.py --before base=A sft=B dft=C cadft=D --after base=E sft=F dft=G cadft=H --out DIR``.

Thin wrapper over ``python -m cadft_verl.eval compare`` (all options: ``--help``; docs/eval.md).
"""

import sys

from cadft_verl.eval.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
