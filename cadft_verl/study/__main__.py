"""``python -m cadft_verl.study``: see cadft_verl/study/cli.py."""

import sys

from cadft_verl.study.cli import main

sys.exit(main())
