import sys

from cadft_verl.data.cli import main

sys.exit(main())
