"""``python -m cadft_verl.eval {run,compare,list}``."""

import sys

from cadft_verl.eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
