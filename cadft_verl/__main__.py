"""``python -m cadft_verl check``: see cadft_verl/check.py."""

import sys

from cadft_verl.check import main

sys.exit(main())
